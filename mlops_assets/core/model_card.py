"""The model card of a registered version, after "Model Cards for Model Reporting" (Mitchell
et al. 2019): model details, intended use, factors, metrics, evaluation and training data,
quantitative analyses, ethical considerations, caveats and recommendations -- plus the release
gate's verdicts, lineage and how to reproduce.

`build_card(facts)` turns the facts the registry gathered (a plain dict, see `build_card`) into
sections of data; `to_markdown` and `to_html` render them. The HTML is self-contained: inline
CSS, images as `data:` URIs, no script, and every value escaped."""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from typing import Any

NO_INTERVAL = "no prediction interval recorded for this version"
MAX_LISTED_GROUPS = 20
TOP_FEATURES = 10


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class Facts:
    """Label-value pairs (a definition list)."""

    items: list[tuple[str, Any]]


@dataclass(frozen=True)
class Link:
    text: str
    url: str


@dataclass(frozen=True)
class Image:
    png: bytes
    alt: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass
class Section:
    key: str
    title: str
    blocks: list[Any] = field(default_factory=list)


@dataclass
class ModelCard:
    title: str
    summary: str
    sections: list[Section]

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)


# --- formatting ---------------------------------------------------------------------------


def fmt(value: Any) -> str:
    """A value as the card shows it: floats with 4 significant digits, NaN/None as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value) or "none"
    return str(value)


def listed(names: list, limit: int = MAX_LISTED_GROUPS) -> str:
    """Names joined, the first `limit` of them, saying how many more there are."""
    names = [str(n) for n in names]
    if len(names) <= limit:
        return ", ".join(names) or "none"
    return ", ".join(names[:limit]) + f" and {len(names) - limit} more"


# --- the sections ---------------------------------------------------------------------------


def build_card(facts: dict) -> ModelCard:
    """The card from `facts`: {"model", "spec", "features", "data", "candidates", "evaluation",
    "intervals" (None: none recorded), "fairness", "shap", "verdicts", "lineage", "reproduce"};
    what each holds is read by the section builders below."""
    model = facts["model"]
    title = f"Model card: {model['name']} version {model['version']}"
    summary = (
        f"{model['kind']} forecaster of {facts['spec']['target']} for dataset {facts['spec']['name']}; "
        f"{model['decision']}."
    )
    builders = (
        model_details, intended_use, factors, training_data, evaluation_data, candidates, quantitative_analyses,
        prediction_intervals, explanations, fairness, gate_verdicts, caveats, lineage, reproduce,
    )
    return ModelCard(title, summary, [build(facts) for build in builders])


def model_details(facts: dict) -> Section:
    m = facts["model"]
    return Section("model-details", "Model details", [Facts([
        ("Registered model", m["name"]), ("Version", m["version"]), ("Model kind", m["kind"]),
        ("MLflow model URI", m["model_uri"]), ("Registered at", m["registered_at"]), ("Release decision", m["decision"]),
        ("Bias mitigation", m.get("mitigation", "none")), ("Code version", m["code_version"]),
        ("Dagster run", Link(m["dagster_run_id"], m["dagster_run_url"])), ("MLflow run", Link(m["mlflow_run_id"], m["mlflow_run_url"])),
    ])])


def intended_use(facts: dict) -> Section:
    spec, data = facts["spec"], facts["data"]
    first, last = data_range(data["splits"])
    use = spec.get("description") or f"Forecasting {spec['target']} of dataset {spec['name']}."
    return Section("intended-use", "Intended use and limits", [
        Facts([
            ("Primary use", use),
            ("Target", spec["target"]), ("Frequency", spec["frequency"]), ("Horizon", f"{fmt(spec['horizon_hours'])} h ahead"),
            ("Groups", f"{len(spec['groups'])} by {spec['group']}: {listed(spec['groups'])}" if spec["group"] else "single series"),
        ]),
        "Limits:",
        [
            f"Forecasts at most {fmt(spec['horizon_hours'])} h ahead: every lagged input is at least that old; "
            "a longer horizon is out of scope.",
            "A group the model never learned (new, or with less than a week of training rows) is forecast by the "
            "group fallback, a group-agnostic, scale-free model, and the response says so; the tables below report "
            "the learned groups.",
            f"Trained and evaluated on data from {first} to {last} (the data's local timezone: {spec['timezone']}); conditions outside "
            "that range (new extremes of weather, a changed load pattern) are extrapolation, watched by drift monitoring.",
            f"Validated only for forecasting {spec['target']} at the data's {spec['frequency']} resolution; any other "
            "use (another target, resolution or population of groups) needs its own evaluation.",
        ],
    ])


def factors(facts: dict) -> Section:
    spec, features = facts["spec"], facts["features"]
    return Section("factors", "Factors: groups and features", [
        Facts([
            ("Group column", spec["group"] or "none (single series)"),
            ("Sensitive features judged for bias", fmt(spec.get("sensitive_features") or [])),
        ]),
        Table(["role", "features"], [
            [f"known in advance ({len(features['known_in_advance'])})", ", ".join(features["known_in_advance"]) or "none"],
            [f"observed only, as lags at least the horizon old ({len(features['observed'])})", ", ".join(features["observed"]) or "none"],
        ]),
    ])


def training_data(facts: dict) -> Section:
    spec, data = facts["spec"], facts["data"]
    return Section("training-data", "Training data", [
        Facts([
            ("Dataset spec", spec["name"]), ("Target", spec["target"]), ("Timestamp", spec["timestamp"]),
            ("Group", spec["group"] or "none"), ("Frequency", spec["frequency"]), ("Timezone", spec["timezone"]),
        ]),
        "Data versions (Dagster data versions of the splits the model was trained and scored on):",
        Table(["asset", "data version"], [[name, version] for name, version in sorted(data["versions"].items())]),
        "Splits (time-ordered; every group has the same boundaries):",
        split_table([s for s in data["splits"] if s["split"] != "test_set"]),
    ])


def evaluation_data(facts: dict) -> Section:
    test = [s for s in facts["data"]["splits"] if s["split"] == "test_set"]
    return Section("evaluation-data", "Evaluation data", [
        "The newest share of the timestamps, never used to fit or select the model; scored once per model, "
        "next to two baselines: seasonal naive (the value one week earlier) and day-before.",
        split_table(test),
    ])


def split_table(splits: list[dict]) -> Table:
    return Table(
        ["split", "rows", "first timestamp", "last timestamp", "groups"],
        [[s["split"], s["rows"], s["first"], s["last"], f"{len(s['groups'])}: {listed(s['groups'])}"] for s in splits],
    )


def data_range(splits: list[dict]) -> tuple[str, str]:
    firsts = [str(s["first"]) for s in splits if s.get("first")]
    lasts = [str(s["last"]) for s in splits if s.get("last")]
    return (min(firsts) if firsts else "n/a", max(lasts) if lasts else "n/a")


CANDIDATE_METRICS = ("mae", "rmse", "mase", "skill")


def candidates(facts: dict) -> Section:
    c = facts["candidates"]
    metric = c["selection_metric"]
    rows = c["comparison"]
    table = Table(
        ["model", f"validation {metric}", *(f"test {m}" for m in CANDIDATE_METRICS), "chosen"],
        [[r["model"], r.get(f"val_{metric}"), *(r.get(f"test_{m}") for m in CANDIDATE_METRICS), r.get("chosen")] for r in rows],
    )
    return Section("candidates", "Metrics: candidates compared and why this one won", [
        f"Every candidate family was trained on the training split; the one with the best validation {metric} "
        "(of its train-only fit) was chosen, then refit on training + validation. Test metrics are the refit's.",
        table, why_chosen(c),
        "Metrics: MAE and RMSE in the target's unit; MASE is MAE divided by the training split's seasonal-naive MAE; "
        "skill is 1 - MAE / seasonal-naive MAE on the same rows (above 0: better than the baseline).",
    ])


def why_chosen(c: dict) -> str:
    metric, rows = c["selection_metric"], c["comparison"]
    chosen = next((r for r in rows if r.get("chosen")), None)
    if chosen is None:
        return "No candidate is marked as chosen."
    others = [f"{r['model']} {fmt(r.get(f'val_{metric}'))}" for r in rows if r is not chosen]
    better = "highest" if metric == "r2" else "lowest"
    return f"Chosen: {chosen['model']}, the {better} validation {metric} ({fmt(chosen.get(f'val_{metric}'))}; " + (", ".join(others) or "no other candidate") + ")."


OVERALL_METRICS = ("mae", "rmse", "mase", "skill", "skill_day_before", "mape", "r2")


def quantitative_analyses(facts: dict) -> Section:
    e = facts["evaluation"]
    rows = [["this version", *(e["metrics"].get(m) for m in OVERALL_METRICS)]]
    if e.get("champion"):
        rows.append([f"champion v{e['champion']['version']}", *(e["champion"]["metrics"].get(m) for m in OVERALL_METRICS)])
    rows += [[name.replace("_", " "), *(b.get(m) for m in OVERALL_METRICS)] for name, b in e["baselines"].items()]
    by_group = Table(
        ["group", "rows", "mae", "mase", "skill", "seasonal naive mae", "day-before mae"],
        [[g["group"], g.get("n"), g.get("mae"), g.get("mase"), g.get("skill"), g.get("baseline_seasonal_naive_mae"), g.get("baseline_day_before_mae")] for g in e["by_group"]],
    )
    blocks: list[Any] = [f"On {e['rows']} test rows (baselines on the rows that have both):", Table(["forecast", *OVERALL_METRICS], rows)]
    if e.get("paired_difference"):
        diff, low, high = e["paired_difference"]
        blocks.append(f"MAE difference to the champion (paired bootstrap, 95% interval): {fmt(diff)} [{fmt(low)}, {fmt(high)}].")
    blocks += ["Per group:", by_group]
    return Section("quantitative-analyses", "Quantitative analyses: overall and per group, with baselines", blocks)


def prediction_intervals(facts: dict) -> Section:
    intervals = facts.get("intervals")
    if not intervals:
        return Section("prediction-intervals", "Prediction intervals", [NO_INTERVAL + "."])
    blocks: list[Any] = [Facts([
        ("Nominal level", intervals.get("level")), ("Method", intervals.get("method")),
        ("Coverage on test", intervals.get("coverage")), ("Mean width", intervals.get("mean_width")),
        ("Pinball loss", intervals.get("pinball_loss")),
    ])]
    if intervals.get("by_group"):
        blocks.append(Table(["group", "rows", "coverage", "mean width"], [
            [g.get("group"), g.get("rows"), g.get("coverage"), g.get("mean_width")] for g in intervals["by_group"]
        ]))
    return Section("prediction-intervals", "Prediction intervals", blocks)


def explanations(facts: dict) -> Section:
    shap = facts["shap"]
    top = shap["importance"][:TOP_FEATURES]
    blocks: list[Any] = [
        f"SHAP ({shap['method']}) on {shap['rows']} sampled test rows; categories folded into their feature.",
        Table(["rank", "feature", "mean |SHAP|", "share"], [[i, r["feature"], r["mean_abs_shap"], r["share"]] for i, r in enumerate(top, 1)]),
    ]
    if shap.get("plot_png"):
        blocks.append(Image(shap["plot_png"], "mean |SHAP| per feature"))
    return Section("explanations", "Explanations: SHAP top features", blocks)


def fairness(facts: dict) -> Section:
    f = facts["fairness"]
    report = f["report"]
    verdict = ("PASS" if report.get("passed") else ("BIASED" if report.get("biased") else "FAIL"))
    blocks: list[Any] = [
        Facts([
            ("Verdict", f"{verdict}: {'; '.join(report.get('reasons', []))}"), ("Rule", report.get("rule")),
            ("Limit on the gap", report.get("limit")), ("Flagged groups", fmt(report.get("flagged", []))),
            ("Mitigation", f["mitigation"]),
        ]),
    ]
    groups = [g for g in report.get("groups", []) if g.get("gap") is not None]
    if groups:
        blocks.append(Table(
            ["group", "test rows", "mae", "gap", "gap 95% low", "gap 95% high", "status"],
            [[g["group"], g.get("count"), g.get("mae"), g["gap"], g.get("gap_ci_low"), g.get("gap_ci_high"), g.get("status")] for g in groups],
        ))
    for feature, verdict_text in (f.get("sensitive_features") or {}).items():
        blocks.append(f"Sensitive feature {feature}: {verdict_text}")
    return Section("fairness", "Ethical considerations: fairness", blocks)


def gate_verdicts(facts: dict) -> Section:
    verdicts = facts["verdicts"]
    passed = sum(bool(v["passed"]) for v in verdicts)
    return Section("gate-verdicts", "Release gate: blocking checks", [
        f"{passed} of {len(verdicts)} blocking checks passed; a version becomes champion only when all pass.",
        Table(["check", "verdict", "reason"], [[v["check"], "pass" if v["passed"] else "FAIL", v["reason"]] for v in verdicts]),
    ])


def caveats(facts: dict) -> Section:
    failed = [v["check"] for v in facts["verdicts"] if not v["passed"]]
    items = [
        "Metrics are measured on one test period; seasons absent from the data are not covered.",
        "Watch the drift report of each new batch: it compares inputs, predictions and realized error with this "
        "version's own reference and asks for retraining when they move.",
    ]
    if failed:
        items.insert(0, f"This version was refused by the release gate ({', '.join(failed)}): do not serve it without a reviewed override.")
    if not facts.get("intervals"):
        items.append("No prediction interval: treat point forecasts without a stated uncertainty.")
    return Section("caveats", "Caveats and recommendations", [items])


def lineage(facts: dict) -> Section:
    l = facts["lineage"]
    return Section("lineage", "Lineage", [Facts([
        ("Dagster run (training)", Link(l["dagster_run_id"], l["dagster_run_url"])),
        ("Dagster run (this card)", l.get("card_run_id")),
        ("MLflow run of the model", Link(l["mlflow_run_id"], l["mlflow_run_url"])),
        ("Code version", l["code_version"]),
        *((f"Data version of {k}", v) for k, v in sorted(l["data_versions"].items())),
    ])])


def reproduce(facts: dict) -> Section:
    r, m = facts["reproduce"], facts["model"]
    code = r["code_version"].removesuffix("-dirty")
    commands = "\n".join([
        f"git checkout {code}" if not code.startswith("mlops_assets==") else f"pip install '{code}'",
        f"MLOPS_PROFILE={r['profile']} mlops-assets demo   # the demo data; or: make demo",
        f"MLOPS_PROFILE={r['profile']} mlops-assets run --train   # your own data, landed again in the landing zone",
        "mlops-assets status                        # compare the data versions with the ones above",
        f"mlflow models serve -m models:/{m['name']}/{m['version']}   # MLFLOW_TRACKING_URI: the platform's store",
    ])
    notes = [f"Training profile {r['profile']}, seed {r['seed']}."]
    if r["code_version"].endswith("-dirty"):
        notes.append("The code had uncommitted changes when this version was trained: the commit alone does not reproduce it.")
    return Section("reproduce", "How to reproduce", [
        "Retrain from the same data (the data versions listed under Training data) with the same code and settings:",
        Code(commands), " ".join(notes),
    ])


# --- Markdown ---------------------------------------------------------------------------------

# What Markdown would read as table syntax or HTML (as in defs/metadata.py): a label such as
# "<script>" or "a|b" shows as written; underscores inside names are left as they are.
_MD_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "<": "\\<", ">": "\\>", "\n": " "})


def md_text(value: Any) -> str:
    if isinstance(value, Link):
        return f"[{md_text(value.text)}]({value.url})" if value.url else md_text(value.text)
    return fmt(value).translate(_MD_ESCAPES)


def to_markdown(card: ModelCard) -> str:
    lines = [f"# {md_text(card.title)}", "", md_text(card.summary), ""]
    for section in card.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += _md_block(block) + [""]
    return "\n".join(lines)


def _md_block(block: Any) -> list[str]:
    if isinstance(block, Facts):
        return [f"- **{md_text(label)}**: {md_text(value)}" for label, value in block.items]
    if isinstance(block, Table):
        head = ["| " + " | ".join(md_text(h) for h in block.headers) + " |", "|" + "---|" * len(block.headers)]
        return head + ["| " + " | ".join(md_text(v) for v in row) + " |" for row in block.rows]
    if isinstance(block, Image):
        return [f"![{md_text(block.alt)}](data:image/png;base64,{base64.b64encode(block.png).decode()})"]
    if isinstance(block, Code):
        return ["```", block.text, "```"]
    if isinstance(block, list):
        return [f"- {md_text(item)}" for item in block]
    return [md_text(block)]


# --- HTML -----------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 960px; margin: 2em auto; padding: 0 1em; color: #1d2330; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #4f43dd; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #d8dbe3; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #d8dbe3; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f2f3f7; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; }
dt { font-weight: 600; }
dd { margin: 0; }
pre { background: #f2f3f7; padding: .8em; overflow-x: auto; }
img { max-width: 100%; }
nav ol { columns: 2; }
"""


def h(value: Any) -> str:
    if isinstance(value, Link):
        return f'<a href="{html.escape(value.url)}">{h(value.text)}</a>' if value.url else h(value.text)
    return html.escape(fmt(value))


def to_html(card: ModelCard) -> str:
    toc = "".join(f'<li><a href="#{s.key}">{h(s.title)}</a></li>' for s in card.sections)
    body = "".join(
        f'<section id="{s.key}"><h2>{h(s.title)}</h2>' + "".join(_html_block(b) for b in s.blocks) + "</section>"
        for s in card.sections
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        # No request may leave the page: a policy that allows only inline styles and data: images.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{h(card.title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{h(card.title)}</h1><p>{h(card.summary)}</p><nav><ol>{toc}</ol></nav>{body}</body></html>\n"
    )


def _html_block(block: Any) -> str:
    if isinstance(block, Facts):
        return "<dl>" + "".join(f"<dt>{h(label)}</dt><dd>{h(value)}</dd>" for label, value in block.items) + "</dl>"
    if isinstance(block, Table):
        head = "".join(f"<th>{h(c)}</th>" for c in block.headers)
        rows = "".join("<tr>" + "".join(f"<td>{h(v)}</td>" for v in row) + "</tr>" for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if isinstance(block, Image):
        return f'<p><img alt="{h(block.alt)}" src="data:image/png;base64,{base64.b64encode(block.png).decode()}"></p>'
    if isinstance(block, Code):
        return f"<pre><code>{html.escape(block.text)}</code></pre>"
    if isinstance(block, list):
        return "<ul>" + "".join(f"<li>{h(item)}</li>" for item in block) + "</ul>"
    return f"<p>{h(block)}</p>"


# --- what the platform knows about features ----------------------------------------------------


def feature_roles(spec) -> dict[str, list[str]]:
    """The model's inputs split into those known in advance (calendar, categories, the group,
    known numerics and what is derived from them) and those only observed (target and observed-
    only lags and rolling statistics, at least the horizon old)."""
    from mlops_assets.core.features import calendar_columns, lag_columns, observed_lag_columns, temperature_columns

    known_temperature = spec.temperature_column in spec.known_numeric_columns
    temperature = temperature_columns(spec)
    known = [*([spec.group] if spec.group else []), *spec.categorical_features, *spec.known_numeric_columns, *calendar_columns(spec)]
    observed = [*lag_columns(spec), *observed_lag_columns(spec)]
    return {
        "known_in_advance": known + (temperature if known_temperature else []),
        "observed": observed + ([] if known_temperature else temperature),
    }
