import dagster as dg
import polars as pl

from mlops_assets.core.spec import load_spec
from mlops_assets.runner import ingest_landed, run_job
from mlops_assets_tests.builders import hourly_frame, to_csv_bytes

SPEC = load_spec()
Y, TS, G = SPEC.target.column, SPEC.timestamp, SPEC.group


def checks_by_name(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def land_history(landing_dir, groups=("A", "B", "C"), days=20):
    first = hourly_frame(SPEC, list(groups), 24 * days)
    (landing_dir / "history.csv").write_bytes(to_csv_bytes(first))
    last_day = first.filter(pl.col(TS) >= first.get_column(TS).max() - pl.duration(hours=23))
    correction = last_day.with_columns((pl.col(Y) + 1.0).alias(Y))
    (landing_dir / "correction.csv").write_bytes(to_csv_bytes(correction))
    return first, correction


def test_preparation_builds_history_features_splits_and_profile(defs, instance, landing_dir, mlops_home):
    first, correction = land_history(landing_dir)
    (landing_dir / "broken.csv").write_bytes(b"period,subregion\n")
    ingested = ingest_landed(defs, instance)
    assert len(ingested.succeeded) == 2 and len(ingested.quarantined) == 1
    result = run_job(defs, "preparation_job", instance)
    assert result.success

    history = result.output_for_node("load_history")
    assert history.height == first.height
    merged_last = history.filter(pl.col(TS) == first.get_column(TS).max()).sort(G).get_column(Y)
    assert merged_last.to_list() == correction.filter(pl.col(TS) == first.get_column(TS).max()).sort(G).get_column(Y).to_list()

    mat = instance.get_latest_materialization_event(dg.AssetKey("load_history")).asset_materialization
    # The quarantined batch is no partition of `batches` any more: nothing is left out, nothing warned about.
    assert mat.metadata["batches"].value == 2 and mat.metadata["batches_not_included"].value == []
    assert len(instance.get_dynamic_partitions("batches")) == 2
    assert instance.get_latest_data_version_record(dg.AssetKey("load_history")) is not None

    checks = checks_by_name(result)
    for name in ("history_matches_schema", "lags_stay_in_group", "no_observed_value_after_cutoff", "split_is_time_ordered_check", "groups_in_every_split"):
        assert checks[name].passed, checks[name].description
    train, validation, test = (result.output_for_node("splits", name) for name in ("train_set", "validation_set", "test_set"))
    assert train.get_column(TS).max() < validation.get_column(TS).min() < test.get_column(TS).min()
    profile = result.output_for_node("data_profile")
    assert profile["rows"] == train.height and set(profile["group_rows"]) == {"A", "B", "C"}


def test_history_data_version_is_stable_for_same_content(defs, instance, landing_dir):
    land_history(landing_dir)
    ingest_landed(defs, instance)
    first = run_job(defs, "preparation_job", instance)
    second = run_job(defs, "preparation_job", instance)
    versions = [
        r.asset_materialization.metadata["data_version"].value
        for r in instance.fetch_materializations(dg.AssetKey("load_history"), limit=2).records
    ]
    assert first.success and second.success and versions[0] == versions[1]


def test_group_missing_from_a_split_fails_the_blocking_check(defs, instance, landing_dir):
    """B stopped 5 days ago: longer than the 3-day test split, shorter than retire_after (7 days),
    so it is still an established active group without test rows: the check fails and says why."""
    frame = hourly_frame(SPEC, ["A", "B"], 24 * 20)
    early_only = frame.filter((pl.col(G) == "B") & (pl.col(TS) < frame.get_column(TS).min() + pl.duration(days=15)))
    (landing_dir / "uneven.csv").write_bytes(to_csv_bytes(pl.concat([frame.filter(pl.col(G) == "A"), early_only])))
    ingest_landed(defs, instance)
    result = run_job(defs, "preparation_job", instance)
    check = checks_by_name(result)["groups_in_every_split"]
    assert not check.passed and "established groups short of rows: ['B']" in check.description
    assert "test 0 rows" in check.description and "retire_after (168h)" in check.description
    assert check.metadata["retired_groups"].value == [] and check.metadata["new_groups"].value == []
    assert not result.success  # a failed blocking check fails the run: never green


def test_eager_automation_requests_preparation_after_ingestion(defs, instance, landing_dir):
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    land_history(landing_dir)
    ingest_landed(defs, instance)
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
    requested = {key.to_user_string() for key in after.get_requested_asset_keys()} if hasattr(after, "get_requested_asset_keys") else {
        r.key.to_user_string() for r in after.results if r.true_subset.size
    }
    # One run for the whole chain, however many batches arrived since the last tick.
    assert requested == {"load_history", "features", "train_set", "validation_set", "test_set", "data_profile"}
    quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=after.cursor)
    assert quiet.total_requested == 0


def test_batches_wait_for_a_champion_before_they_are_predicted(defs, instance, landing_dir):
    """On a fresh deployment the automation sensor prepares the data but does not start
    batch_predictions runs that could only fail: they wait for champion_model."""
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    land_history(landing_dir)
    ingest_landed(defs, instance)
    assert run_job(defs, "preparation_job", instance).success
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=before.cursor)
    requested = {r.key.to_user_string() for r in after.results if r.true_subset.size}
    assert after.total_requested == 0 and not requested & {"batch_predictions", "drift_report"}, requested


def test_feature_checks_read_the_stored_columns_and_catch_a_wrong_lag_and_a_null_column(defs, instance, landing_dir, mlops_home):
    land_history(landing_dir)
    ingest_landed(defs, instance)
    assert run_job(defs, "preparation_job", instance).success
    stored = mlops_home / "storage" / "features.parquet"
    features = pl.read_parquet(stored)
    lag = f"{Y}_lag_24h"
    row = features.with_row_index().filter((pl.col(G) == "B") & pl.col(lag).is_not_null()).get_column("index")[10]
    tampered = features.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(pl.col(lag) + 5.0).otherwise(pl.col(lag)).alias(lag),
        pl.lit(None, dtype=features.schema["temperature_c"]).alias("temperature_c"),
    )
    tampered.write_parquet(stored)
    checks_only = dg.Definitions.merge(defs, dg.Definitions(jobs=[dg.define_asset_job("feature_checks", selection=dg.AssetSelection.checks_for_assets("features"))]))

    result = run_job(checks_only, "feature_checks", instance)

    checks = checks_by_name(result)
    assert not checks["lags_stay_in_group"].passed
    assert checks["lags_stay_in_group"].description == "1 lag values disagree with their group's history"
    assert checks["lags_stay_in_group"].metadata[lag].value == 1
    assert not checks["feature_null_fraction"].passed and "temperature_c: 100.00% null" in checks["feature_null_fraction"].description
