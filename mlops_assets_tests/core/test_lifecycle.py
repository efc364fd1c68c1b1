"""Group life cycle: active and retired groups from the history, and their roles in a split."""

from datetime import timedelta

import polars as pl
import pytest

from mlops_assets.core.features import build_features
from mlops_assets.core.lifecycle import group_lifecycle, split_roles
from mlops_assets.core.spec import load_spec, spec_from_dict
from mlops_assets.core.splitting import time_split
from mlops_assets_tests.builders import T0, hourly_frame
from mlops_assets_tests.lifecycle_builders import series_frame, with_lifecycle

SPEC = load_spec()
Y, TS, G = SPEC.target.column, SPEC.timestamp, SPEC.group
LABEL = "Zone A/B (ö)"


def test_a_group_silent_longer_than_retire_after_is_retired_and_returns_active():
    history = with_lifecycle(hourly_frame(SPEC, ["A", "B", LABEL], 24 * 20), SPEC, starts={LABEL: 17}, stops={"B": 12})
    table = group_lifecycle(history.lazy(), SPEC)
    assert table.columns == ["group", "first_timestamp", "last_timestamp", "rows", "status"]
    rows = {r["group"]: r for r in table.iter_rows(named=True)}
    assert {g: r["status"] for g, r in rows.items()} == {"A": "active", "B": "retired", LABEL: "active"}
    assert rows["B"]["last_timestamp"] == T0 + timedelta(days=12, hours=-1) and rows["B"]["rows"] == 12 * 24
    assert rows[LABEL]["first_timestamp"] == T0 + timedelta(days=17) and rows[LABEL]["rows"] == 3 * 24
    back = pl.concat([history, hourly_frame(SPEC, ["A", "B", LABEL], 24, start_hour=24 * 20)])
    assert set(group_lifecycle(back, SPEC).get_column("status")) == {"active"}


def test_retirement_is_strictly_more_than_retire_after_and_ignores_empty_readings():
    spec = spec_from_dict({"name": "s", "timestamp": "period", "group": "subregion", "target": "load_mw",
                           "preparation": {"retire_after": "2d"}})
    history = hourly_frame(spec, ["A", "B"], 24 * 10)
    # B's last two days are empty readings: it has not reported for 48 h, then 49 h.
    silent = (pl.col("subregion") == "B") & (pl.col("period") > T0 + timedelta(days=8, hours=-1))
    exactly = history.with_columns(pl.when(silent).then(None).otherwise(pl.col("load_mw")).alias("load_mw"))
    assert group_lifecycle(exactly, spec).filter(pl.col("group") == "B").get_column("status").item() == "active"
    one_more = exactly.with_columns(
        pl.when((pl.col("subregion") == "B") & (pl.col("period") == T0 + timedelta(days=8, hours=-1)))
        .then(None).otherwise(pl.col("load_mw")).alias("load_mw")
    )
    b = group_lifecycle(one_more, spec).filter(pl.col("group") == "B").row(0, named=True)
    assert b["status"] == "retired" and b["rows"] == 24 * 8 - 1


def test_a_single_series_is_all_and_always_active():
    spec = load_spec(SPEC.source.replace("electricity_load", "half_hourly_demand"))
    history = series_frame(spec, None, 20)
    gap = history.filter((pl.col(spec.timestamp) < T0 + timedelta(days=5)) | (pl.col(spec.timestamp) >= T0 + timedelta(days=19)))
    table = group_lifecycle(gap, spec)
    assert table.select("group", "rows", "status").rows() == [("all", 6 * 48, "active")]
    features, _ = build_features(gap, spec)
    roles = split_roles(*time_split(features, spec)[:3], table, spec)
    assert roles == {"established": ["all"], "new": [], "retired": []}


@pytest.mark.parametrize("start_day, role", [(17, "new"), (5, "established")])
def test_split_roles(start_day, role):
    history = with_lifecycle(hourly_frame(SPEC, ["A", "B", LABEL], 24 * 20), SPEC, starts={LABEL: start_day}, stops={"B": 9})
    features, _ = build_features(history, SPEC)
    train, validation, test, _ = time_split(features, SPEC)
    roles = split_roles(train.lazy(), validation, test, group_lifecycle(history, SPEC), SPEC)
    assert roles["retired"] == ["B"] and roles[role] == sorted({"A", LABEL} if role == "established" else {LABEL})
    assert "B" not in roles["established"] + roles["new"]
