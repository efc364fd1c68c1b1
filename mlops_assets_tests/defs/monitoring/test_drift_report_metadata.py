"""drift_report's metadata: a few rounded headline numbers and one table of per-feature
verdicts, instead of one flat entry per feature and statistic."""

import dagster as dg

from mlops_assets.defs.monitoring.assets import FEATURE_TABLE_DESCRIPTIONS, _report_metadata


def _row(feature: str, score: float, drifted: bool) -> dict:
    return {
        "feature": feature, "kind": "numeric", "ks": score / 3.0, "ks_pvalue": 0.012345678, "psi": score * 1.7777777,
        "wasserstein": score, "js": None, "chi2_pvalue": None, "drifted": drifted, "score": score,
    }


def _report(rows: list[dict]) -> tuple[dict, dict]:
    verdict = {"features": rows}
    report = {
        "retrain": True, "reasons": ["importance-weighted drift 0.4123 > 0.2"], "weighted_drift": 0.41234567891234,
        "weighted_drift_threshold": 0.2000000001, "rows_scored": 72, "rows_awaiting_history": 0, "new_groups": ["Z"],
        "champion_version": "3", "reference": {"version": "3", "kind": "seasonal", "rows": 480, "from": "a", "to": "b",
                                              "recent_rows": 96, "recent_from": "c", "recent_to": "d"},
        "prediction_drift": {"psi": 0.333333333333, "ks": 0.1111111111, "wasserstein": 0.22222222},
        "realized_mae": 123.456789123, "reference_mae": 99.99999999, "by_group": [{"group": "A", "rows": 72, "new_group": False, "psi/t": 0.123456789}],
        "root_causes": [{"feature": "temperature_c", "drift": 0.9, "importance": 0.4321987, "rank_score": 0.3, "drifted": True}],
        "bias": None,
    }
    return report, verdict


def test_headline_numbers_are_few_and_rounded():
    rows = [_row("temperature_c", 0.912345678, True), *(_row(f"f{i}", 0.01 * i + 0.00123456789, False) for i in range(15))]
    meta = _report_metadata(*_report(rows))
    assert len(meta) <= 20 and not [key for key in meta if "/" in key]
    assert meta["retrain"] is True and meta["retrain_flag"] == 1 and meta["drifted_features"] == 1 and meta["features_checked"] == 16
    assert meta["weighted_drift"] == 0.4123 and meta["weighted_drift_threshold"] == 0.2
    assert meta["prediction_drift_psi"] == 0.3333 and meta["realized_mae"] == 123.5 and meta["reference_mae"] == 100.0
    assert meta["reasons"].startswith("importance-weighted drift")
    assert "recent test rows: 96" in meta["reference"]


def test_one_table_of_per_feature_verdicts_drifted_first():
    rows = [_row("humidity", 0.3, False), _row("temperature_c", 0.912345678, True)]
    table = _report_metadata(*_report(rows))["features"]
    assert isinstance(table, dg.TableMetadataValue)
    names = [c.name for c in table.schema.columns]
    assert names == ["feature", "verdict", "score", "importance", "root_cause_rank", "psi", "ks", "ks_pvalue", "wasserstein"]
    assert all(c.description == FEATURE_TABLE_DESCRIPTIONS[c.name] for c in table.schema.columns)
    first, second = (r.data for r in table.records)
    assert first == {
        "feature": "temperature_c", "verdict": "DRIFTED", "score": 0.9123, "importance": 0.4322, "root_cause_rank": 1,
        "psi": 1.622, "ks": 0.3041, "ks_pvalue": 0.01235, "wasserstein": 0.9123,
    }
    assert second["feature"] == "humidity" and second["verdict"] == "ok" and second["root_cause_rank"] is None
    by_group = _report_metadata(*_report(rows))["by_group"]
    assert [r.data["psi/t"] for r in by_group.records] == [0.1235]


def test_a_report_without_features_still_has_its_headline():
    report, verdict = _report([])
    meta = _report_metadata({**report, "prediction_drift": {}, "realized_mae": None, "reference_mae": None, "by_group": []}, verdict)
    assert meta["features_checked"] == 0 and meta["features"].records == []
    assert "realized_mae" not in meta and "prediction_drift_psi" not in meta and "by_group" not in meta
