"""An hourly multi-group set with awkward labels, "NA" tokens and an observed-only feature,
through ingestion and the preparation job; the leakage check fails on tampered features."""

import dagster as dg
import polars as pl
import yaml

from mlops_assets.core.spec import load_spec
from mlops_assets.runner import ingest_landed, run_job
from mlops_assets_tests.builders import hourly_frame, to_csv_bytes

LABELS = ["Zürich (Nord)/A 'x'", "R&D <1>", "a|b, c"]
SPEC = {
    "name": "sites",
    "frequency": "H",
    "timestamp": {"column": "period", "timezone": "Europe/Zurich"},
    "group": {"column": "site"},
    "target": {"column": "net_kw", "min": -500, "max": 5000},
    "features": {
        "numeric": [
            {"column": "temperature_c", "min": -40, "max": 50},
            {"column": "price", "min": 0, "max": 1000, "known_in_advance": False},
        ],
        "temperature": "temperature_c",
    },
    "calendar": {"holidays_country": "CH", "holidays_subdivision": "ZH"},
    "preparation": {"horizon": "24h", "lags": ["24h", "48h", "7d"], "rolling_windows": ["24h", "7d"]},
}


def checks_by_name(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def land(tmp_path, monkeypatch, landing_dir):
    path = tmp_path / "sites.yaml"
    path.write_text(yaml.safe_dump(SPEC, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("MLOPS_DATASET_SPEC", str(path))
    spec = load_spec(path)
    frame = hourly_frame(spec, LABELS, 24 * 20)
    text = frame.with_columns(pl.col("net_kw", "price").round(3).cast(pl.String))
    missing = pl.int_range(pl.len()).is_in([30, 200, 201, 700])
    no_price = pl.int_range(pl.len()) % 30 == 7  # about 3 % of prices: a few, not "mostly missing"
    text = text.with_columns(pl.when(missing).then(pl.lit("NA")).otherwise(pl.col("net_kw")).alias("net_kw"),
                             pl.when(no_price).then(pl.lit("NA")).otherwise(pl.col("price")).alias("price"))
    (landing_dir / "sites.csv").write_bytes(to_csv_bytes(text))
    return spec


def test_observed_only_feature_through_the_graph_and_a_tampered_lag(
    tmp_path, monkeypatch, mlops_home, landing_dir, instance
):
    from mlops_assets.definitions import build_definitions

    spec = land(tmp_path, monkeypatch, landing_dir)
    defs = build_definitions("local")
    ingested = ingest_landed(defs, instance)
    assert len(ingested.succeeded) == 1 and not ingested.quarantined
    result = run_job(defs, "preparation_job", instance)
    assert result.success
    features = result.output_for_node("features")
    assert sorted(features.get_column("site").unique().to_list()) == sorted(LABELS)
    assert "price" not in features.columns and "price_lag_24h" in features.columns
    checks = checks_by_name(result)
    for name in ("history_matches_schema", "lags_stay_in_group", "no_observed_value_after_cutoff"):
        assert checks[name].passed, (name, checks[name].description)
    assert checks["no_observed_value_after_cutoff"].metadata["values_after_cutoff"].value["price_lag_24h"] == 0
    # A few missing values are not a warning; their fractions are listed.
    assert checks["feature_null_fraction"].passed, checks["feature_null_fraction"].description
    assert "price_lag_24h: 3." in checks["feature_null_fraction"].description

    stored = mlops_home / "storage" / "features.parquet"
    history = result.output_for_node("load_history")
    leaked = pl.read_parquet(stored).drop("price_lag_24h").join(
        history.select("site", "period", pl.col("price").alias("price_lag_24h")), on=["site", "period"], how="left"
    )
    leaked.write_parquet(stored)
    job = dg.define_asset_job("feature_checks", selection=dg.AssetSelection.checks_for_assets("features"))
    checks_only = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    checks = checks_by_name(run_job(checks_only, "feature_checks", instance))
    check = checks["no_observed_value_after_cutoff"]
    counted = check.metadata["values_after_cutoff"].value
    assert not check.passed and counted["price_lag_24h"] == leaked.get_column("price_lag_24h").drop_nulls().len() > 0
    assert counted["price_lag_48h"] == 0 and counted["net_kw_lag_24h"] == 0
    assert not checks["lags_stay_in_group"].passed and checks["lags_stay_in_group"].metadata["price_lag_24h"].value > 0
    assert spec.observed_only_columns == ["price"]
