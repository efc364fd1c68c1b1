"""The model card built from given facts: every section with those values, in Markdown and in
self-contained, escaped HTML."""

import re
from html.parser import HTMLParser

import pytest

from mlops_assets.core.model_card import NO_INTERVAL, build_card, feature_roles, fmt, to_html, to_markdown
from mlops_assets.core.spec import load_spec

PNG = b"\x89PNG\r\n\x1a\nfake-png-bytes"
HOSTILE = "<script>alert(1)</script>"
SECTIONS = (
    "Model details", "Intended use and limits", "Factors: groups and features", "Training data", "Evaluation data",
    "Metrics: candidates compared and why this one won", "Quantitative analyses: overall and per group, with baselines",
    "Prediction intervals", "Explanations: SHAP top features", "Ethical considerations: fairness",
    "Release gate: blocking checks", "Caveats and recommendations", "Lineage", "How to reproduce",
)


def metrics(mae: float) -> dict:
    return {"mae": mae, "rmse": mae * 1.3, "mase": mae / 100, "skill": 0.25, "skill_day_before": 0.1, "mape": 3.5, "r2": 0.9, "n": 72}


def facts(groups=("A", HOSTILE), intervals=None) -> dict:
    splits = [
        {"split": name, "rows": rows, "first": first, "last": last, "groups": list(groups)}
        for name, rows, first, last in (
            ("train_set", 1000, "2024-01-01 00:00:00+00:00", "2024-01-21 23:00:00+00:00"),
            ("validation_set", 200, "2024-01-22 00:00:00+00:00", "2024-01-25 23:00:00+00:00"),
            ("test_set", 210, "2024-01-26 00:00:00+00:00", "2024-01-30 23:00:00+00:00"),
        )
    ]
    run = {"dagster_run_id": "dagrun42", "dagster_run_url": "http://127.0.0.1:3000/runs/dagrun42", "mlflow_run_id": "mlrun7", "mlflow_run_url": "http://127.0.0.1:5000/#/experiments/1/runs/mlrun7"}
    verdicts = [{"check": f"check_{i}", "passed": i != 2, "reason": f"reason number {i}"} for i in range(6)]
    return {
        "model": {"name": "load_forecaster", "version": "3", "kind": "xgboost", "model_uri": "models:/load_forecaster/3", "registered_at": "2024-02-01T00:00:00+00:00", "code_version": "abc123-dirty", "decision": "refused: check_2 failed", "mitigation": "none", **run},
        "spec": {"name": "demo_load", "description": "Day-ahead load per subregion.", "target": "load_mw", "timestamp": "ts", "group": "zone", "frequency": "1h", "timezone": "UTC", "horizon_hours": 24, "groups": list(groups), "sensitive_features": []},
        "features": {"known_in_advance": ["zone", "hour", "temperature"], "observed": ["load_mw_lag_24h"]},
        "data": {"versions": {"train_set": "v-train", "validation_set": "v-val", "test_set": "v-test"}, "splits": splits},
        "candidates": {"selection_metric": "rmse", "comparison": [
            {"model": "xgboost", "val_rmse": 10.5, "test_mae": 8.25, "test_rmse": 11.0, "test_mase": 0.5, "test_skill": 0.3, "chosen": True},
            {"model": "linear", "val_rmse": 12.75, "test_mae": 9.5, "test_rmse": 13.0, "test_mase": 0.6, "test_skill": 0.2, "chosen": False},
            {"model": "lstm", "val_rmse": 20.125, "test_mae": 15.0, "test_rmse": 21.0, "test_mase": 0.9, "test_skill": -0.1, "chosen": False},
        ]},
        "evaluation": {
            "rows": 210, "metrics": metrics(8.25), "champion": None, "paired_difference": None,
            "by_group": [{"group": g, **metrics(7.0 + i), "baseline_seasonal_naive_mae": 11.5, "baseline_day_before_mae": 10.5} for i, g in enumerate(groups)],
            "baselines": {"seasonal_naive": metrics(11.0), "day_before": metrics(10.0)},
        },
        "intervals": intervals,
        "fairness": {"report": {"passed": True, "biased": False, "rule": "normalized", "limit": 0.5, "flagged": [], "reasons": ["no group beyond the limit"],
                                "groups": [{"group": g, "count": 105, "mae": 7.5, "gap": 0.05, "gap_ci_low": -0.1, "gap_ci_high": 0.2, "status": "ok"} for g in groups]},
                     "mitigation": "no group flagged", "sensitive_features": {}},
        "shap": {"method": "tree", "rows": 100, "importance": [{"feature": "load_mw_lag_24h", "mean_abs_shap": 40.0, "share": 0.5}, {"feature": "hour", "mean_abs_shap": 20.0, "share": 0.25}], "plot_png": PNG},
        "verdicts": verdicts,
        "lineage": {**run, "card_run_id": "cardrun", "code_version": "abc123-dirty", "data_versions": {"train_set": "v-train"}},
        "reproduce": {"code_version": "abc123-dirty", "seed": 42, "profile": "fast"},
    }


def sections(markdown: str) -> dict[str, str]:
    parts = re.split(r"^## ", markdown, flags=re.M)[1:]
    return {part.split("\n", 1)[0]: part.split("\n", 1)[1] for part in parts}


def test_every_section_is_there_in_the_papers_order():
    found = sections(to_markdown(build_card(facts())))
    assert tuple(found) == SECTIONS


def test_the_sections_hold_the_values_given():
    given = facts()
    found = sections(to_markdown(build_card(given)))
    assert "load_forecaster" in found["Model details"] and "models:/load_forecaster/3" in found["Model details"]
    assert "[dagrun42](http://127.0.0.1:3000/runs/dagrun42)" in found["Model details"]
    assert "24 h ahead" in found["Intended use and limits"] and "Day-ahead load per subregion." in found["Intended use and limits"]
    assert "2024-01-01 00:00:00+00:00 to 2024-01-30 23:00:00+00:00" in found["Intended use and limits"]
    assert "| known in advance (3) | zone, hour, temperature |" in found["Factors: groups and features"]
    assert "| observed only, as lags at least the horizon old (1) | load_mw_lag_24h |" in found["Factors: groups and features"]
    for name, version in given["data"]["versions"].items():
        assert f"| {name} | {version} |" in found["Training data"]
    assert "| train_set | 1000 | 2024-01-01 00:00:00+00:00 |" in found["Training data"]
    assert "| test_set | 210 |" in found["Evaluation data"]
    chosen = found["Metrics: candidates compared and why this one won"]
    assert "| xgboost | 10.5 | 8.25 | 11 | 0.5 | 0.3 | yes |" in chosen
    assert "Chosen: xgboost, the lowest validation rmse (10.5; linear 12.75, lstm 20.12)" in chosen
    quantitative = found["Quantitative analyses: overall and per group, with baselines"]
    assert "| this version | 8.25 |" in quantitative and "| seasonal naive | 11 |" in quantitative and "| day before | 10 |" in quantitative
    assert "| A | 72 | 7 |" in quantitative
    assert NO_INTERVAL in found["Prediction intervals"]
    shap = found["Explanations: SHAP top features"]
    assert "| 1 | load_mw_lag_24h | 40 | 0.5 |" in shap and "data:image/png;base64," in shap
    assert "PASS: no group beyond the limit" in found["Ethical considerations: fairness"]
    assert "| A | 105 | 7.5 | 0.05 | -0.1 | 0.2 | ok |" in found["Ethical considerations: fairness"]
    gate = found["Release gate: blocking checks"]
    assert "5 of 6 blocking checks passed" in gate
    for v in given["verdicts"]:
        assert f"| {v['check']} | {'pass' if v['passed'] else 'FAIL'} | {v['reason']} |" in gate
    assert "refused by the release gate (check_2)" in found["Caveats and recommendations"]
    assert "v-train" in found["Lineage"] and "cardrun" in found["Lineage"]
    reproduce = found["How to reproduce"]
    assert "git checkout abc123" in reproduce and "MLOPS_PROFILE=fast mlops-assets demo" in reproduce
    assert "mlflow models serve -m models:/load_forecaster/3" in reproduce and "seed 42" in reproduce and "uncommitted" in reproduce


def test_recorded_intervals_are_shown_overall_and_per_group():
    intervals = {"level": 0.8, "method": "conformal", "coverage": 0.81, "mean_width": 412.0, "pinball_loss": 55.1,
                 "by_group": [{"group": "A", "rows": 300, "coverage": 0.79, "mean_width": 390.0}]}
    found = sections(to_markdown(build_card(facts(intervals=intervals))))["Prediction intervals"]
    assert NO_INTERVAL not in found
    assert "**Coverage on test**: 0.81" in found and "**Method**: conformal" in found and "| A | 300 | 0.79 | 390 |" in found


class Resources(HTMLParser):
    """Every URL the page would fetch (src, link href, CSS url()) and every anchor href."""

    def __init__(self):
        super().__init__()
        self.fetched, self.anchors, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "a":
            self.anchors.append(values.get("href"))
        for name in ("src", "srcset", "poster", "data", "background"):
            if name in values:
                self.fetched.append(values[name])
        if tag == "link":
            self.fetched.append(values.get("href"))


def test_the_html_is_self_contained_and_escapes_every_value():
    page = to_html(build_card(facts()))
    parsed = Resources()
    parsed.feed(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "iframe" not in parsed.tags
    assert parsed.fetched and all(url.startswith("data:image/png;base64,") for url in parsed.fetched)
    assert "url(" not in page and "@import" not in page
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    external = [a for a in parsed.anchors if a.startswith("http")]
    assert external == ["http://127.0.0.1:3000/runs/dagrun42", "http://127.0.0.1:5000/#/experiments/1/runs/mlrun7"] * 2
    # Outside anchors, http(s) appears only as text, never as an attribute that loads something.
    without_anchors = re.sub(r'<a href="[^"]*">', "<a>", page)
    assert not re.search(r'=\s*"https?:', without_anchors)
    assert "<title>Model card: load_forecaster version 3</title>" in page


def test_a_hostile_label_is_escaped_in_markdown():
    markdown = to_markdown(build_card(facts()))
    assert HOSTILE not in markdown and "\\<script\\>" in markdown


def test_single_series_and_many_groups():
    single = facts(groups=())
    single["spec"]["group"] = None
    found = sections(to_markdown(build_card(single)))
    assert "single series" in found["Intended use and limits"]
    many = sections(to_markdown(build_card(facts(groups=tuple(f"g{i:03d}" for i in range(45))))))
    assert "and 25 more" in many["Training data"]


@pytest.mark.parametrize("value,shown", [(float("nan"), "n/a"), (None, "n/a"), (0.123456, "0.1235"), (True, "yes"), (3, "3")])
def test_values_are_formatted_once(value, shown):
    assert fmt(value) == shown


def test_features_are_split_by_what_is_known_at_forecast_time():
    spec = load_spec()
    roles = feature_roles(spec)
    assert set(spec.known_numeric_columns) <= set(roles["known_in_advance"])
    assert f"{spec.target.column}_lag_24h" in roles["observed"]
    assert not set(roles["known_in_advance"]) & set(roles["observed"])
