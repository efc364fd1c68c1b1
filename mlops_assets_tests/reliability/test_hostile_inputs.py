"""A corpus of hostile landed files, all landed at once beside good batches on a platform that
already has a champion, ingested through the runner, alerts sent by the real sensor.

Every rejected kind must give an error naming the file (and its rows and columns where they
exist), be quarantined with its reason and its bytes as landed, raise an alert, and leave the
good batches and the champion alone. Some "hostile" shapes are legitimate data (byte-order
mark, CRLF, rows out of time order, local times without offset, non-ASCII names): those must
be read exactly like their plain twin, never rejected."""

from __future__ import annotations

import io
import json
import os
import pickle
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from mlops_assets.core.cleaning import clean_batch
from mlops_assets.core.ingest import display_name, parse_batch, sanitize_name
from mlops_assets.core.simulate import CORRUPT_KINDS, SimulationConfig, write_corrupt
from mlops_assets.core.spec import load_spec
from mlops_assets.defs.alerts.sensors import check_failure_alert_sensor
from mlops_assets_tests.builders import hourly_frame, to_csv_bytes
from mlops_assets_tests.defs.ingestion.test_corrupt_kinds import EXPECTED as CORRUPT_EXPECTED
from mlops_assets_tests.pipeline import local_platform
from mlops_assets_tests.reliability.counts import record

SPEC = load_spec()
TS, Y = SPEC.timestamp, SPEC.target.column
GIB = 1024**3
GOOD_FILES = 3


@dataclass
class Case:
    """One landed file: what it is called, and either the expected error or `accepted`."""

    name: str
    error: str = ""
    columns: list[str] | bool | None = None  # exact list, or True/False for "names some"
    rows: list[int] | bool | None = None
    accepted_twin: bytes | None = None  # for accepted kinds: the plain file it must equal
    extra: dict = field(default_factory=dict)


def day(i: int) -> pl.DataFrame:
    """One day of two groups, a different day for every case (after the training data)."""
    return hourly_frame(SPEC, ["A", "B"], 24, start_hour=24 * (60 + i), seed=i)


def text_frame(i: int) -> pl.DataFrame:
    return pl.read_csv(to_csv_bytes(day(i)), infer_schema=False)


def edited(i: int, column: str, values: dict[int, str]) -> bytes:
    """Day `i` as CSV with `column` replaced on the given 1-based data rows."""
    frame = text_frame(i).with_row_index("r", offset=1)
    expr = pl.col(column)
    for row, value in values.items():
        expr = pl.when(pl.col("r") == row).then(pl.lit(value)).otherwise(expr)
    return frame.with_columns(expr.alias(column)).drop("r").write_csv().encode()


class Unpickled:
    """Creates `marker` if anyone ever unpickles it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def land_corpus(landing: Path, marker: Path) -> dict[str, Case]:
    """Write every hostile file into `landing`; returns the cases by kind."""
    cases: dict[str, Case] = {}

    def put(kind: str, name: str, data: bytes, **expect) -> None:
        (landing / name).write_bytes(data)
        cases[kind] = Case(name=name, **expect)

    for kind in CORRUPT_KINDS:
        path = write_corrupt(SPEC, kind, landing, SimulationConfig(days=1, groups=2))
        error, _, names_column, names_rows = CORRUPT_EXPECTED[kind]
        cases[kind] = Case(path.name, error, columns=names_column, rows=names_rows)

    # "NaN" text is a missing-value token by default (counted, kept): only infinities are refused.
    put("infinity", "inf.csv", edited(1, Y, {3: "-inf", 5: "inf"}), error="non_finite", columns=[Y], rows=[3, 5])
    plain = text_frame(2)
    naive = plain.with_row_index("r", offset=1).with_columns(
        pl.when(pl.col("r").is_in([2, 4])).then(pl.col(TS).str.replace(r"\+00:00$", "")).otherwise(pl.col(TS)).alias(TS)
    )
    put("timestamps_mixed_zones", "mixed_zones.csv", naive.drop("r").write_csv().encode(), error="mixed_timezones", columns=[TS], rows=[2, 4])
    fall_back = pl.read_csv(to_csv_bytes(hourly_frame(SPEC, ["A", "B"], 4, start_hour=3)), infer_schema=False).with_columns(
        pl.Series(TS, [f"2024-11-03 0{h}:00:00" for h in range(4)] * 2)
    )
    put("timestamps_without_zone_in_dst_overlap", "dst_overlap.csv", fall_back.write_csv().encode(), error="ambiguous_local_times", columns=[TS], rows=[2, 6])
    put("mixed_types", "mixed_types.csv", edited(3, "temperature_c", {2: "true", 4: "12,5", 6: "1e1", 8: " 7 "}), error="wrong_type", columns=["temperature_c"], rows=[2, 4])
    put("utf16_byte_order_mark", "excel_unicode.csv", to_csv_bytes(day(4)).decode().encode("utf-16"), error="not_utf8", columns=[], rows=[1])
    wide = day(5).with_columns(pl.lit(1.0).alias(f"extra_{j:04d}") for j in range(1200))
    put("very_wide", "pivoted.csv", to_csv_bytes(wide), error="too_wide", columns=[f"extra_{j:04d}" for j in range(992, 1002)], rows=[])
    buffer = io.BytesIO()
    day(6).with_columns(pl.col(TS).dt.epoch("s")).write_parquet(buffer)
    put("parquet_wrong_types", "epoch_seconds.parquet", buffer.getvalue(), error="wrong_type", columns=[TS], rows=[])
    full = to_csv_bytes(day(7))
    cut = full[: [i for i, b in enumerate(full) if b == ord("\n")][9] + 20]  # header, 9 rows, part of the 10th
    put("abandoned_partial_write", "writer_died.csv", cut, error="truncated", columns=[], rows=[10])
    payload = pickle.dumps(Unpickled(marker))
    put("pickle", "model.pkl", payload, error="unsupported_format", columns=[], rows=[])
    put("joblib", "scaler.joblib", payload + b"joblib", error="unsupported_format", columns=[], rows=[])
    os.symlink("/etc/passwd", landing / "passwd.csv")
    cases["symlink_out_of_landing"] = Case("passwd.csv", "symlink", columns=[], rows=[], extra={"target": "/etc/passwd"})
    with open(landing / "huge_export.csv", "wb") as handle:  # sparse: 1 GiB without writing it
        handle.truncate(GIB)
    cases["one_gigabyte"] = Case("huge_export.csv", "too_large", columns=[], rows=[])
    put("path_traversal_name", "evil\\..\\..\\..\\etc\\cron.d\\payload.csv", edited(8, "wind_speed_ms", {1: "fast"}), error="wrong_type", columns=["wind_speed_ms"], rows=[1])
    odd = "-rf $(id); é\nnew line " + "x" * 150 + ".csv"
    put("odd_file_name", odd, to_csv_bytes(day(9).drop("cloud_cover")), error="missing_columns", columns=["cloud_cover"], rows=[])

    reference = to_csv_bytes(day(10))
    put("utf8_byte_order_mark", "bom.csv", b"\xef\xbb\xbf" + reference, accepted_twin=reference)
    crlf = to_csv_bytes(day(11))
    put("crlf_line_ends", "windows.csv", crlf.replace(b"\n", b"\r\n"), accepted_twin=crlf)
    ordered = to_csv_bytes(day(12))
    header, *body = ordered.decode().splitlines()
    put("rows_out_of_time_order", "shuffled.csv", "\n".join([header, *reversed(body)]).encode() + b"\n", accepted_twin=ordered, extra={"out_of_order_rows": 23 * 2})
    utc = to_csv_bytes(day(13))
    local = pl.read_csv(utc, infer_schema=False).with_columns(
        pl.col(TS).str.to_datetime("%Y-%m-%dT%H:%M:%S%:z").dt.convert_time_zone(SPEC.timezone).dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    put("timestamps_without_zone", "local_times.csv", local.write_csv().encode(), accepted_twin=utc)
    unicode_name = to_csv_bytes(day(14))
    put("non_ascii_name", "données été (copie) №2.csv", unicode_name, accepted_twin=unicode_name)
    return cases


def land_good(landing: Path) -> list[str]:
    names = []
    for j in range(GOOD_FILES):
        name = f"good_{j}.csv"
        (landing / name).write_bytes(to_csv_bytes(day(30 + j)))
        names.append(name)
    return names


@pytest.fixture(scope="module")
def outcome(champion_home, tmp_path_factory):
    """Land the corpus and the good files together, ingest them, run the alert sensor."""
    from mlops_assets.runner import ingest_landed

    marker = tmp_path_factory.mktemp("pickle") / "UNPICKLED"
    alert_log = champion_home.parent / "hostile_alerts.log"
    with local_platform(champion_home, {"MLOPS_ALERT_LOG": str(alert_log)}) as (defs, instance):
        registry = defs.resources["mlflow_tracking"].registry()
        champion = registry.alias_version("champion")
        before = {"champion": champion, "tags": registry.version_tags(champion), "history": len(registry.history())}
        cursor = str(instance.event_log_storage.get_maximum_record_id() or 0)
        landing = champion_home / "landing"
        cases = land_corpus(landing, marker)
        originals = {kind: (landing / c.name).read_bytes() for kind, c in cases.items() if kind not in ("one_gigabyte", "symlink_out_of_landing")}
        good = land_good(landing)
        started = time.perf_counter()
        summary = ingest_landed(defs, instance)
        seconds = time.perf_counter() - started
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": defs.resources["alerts"]}) as context:
            check_failure_alert_sensor(context)
        after = {"champion": registry.alias_version("champion"), "tags": registry.version_tags(champion), "history": len(registry.history())}
        manifests = [json.loads(p.read_text()) for p in (champion_home / "storage" / "raw_files").glob("*/manifest.json")]
        keys = {m["name"]: m["key"] for m in manifests}
        alerts = [json.loads(line) for line in alert_log.read_text().splitlines()] if alert_log.exists() else []
        yield {
            "home": champion_home, "cases": cases, "summary": summary, "keys": keys, "good": good, "alerts": alerts,
            "before": before, "after": after, "marker": marker, "originals": originals, "instance": instance, "seconds": seconds,
        }


REJECTED = [*CORRUPT_KINDS, "infinity", "timestamps_mixed_zones", "timestamps_without_zone_in_dst_overlap", "mixed_types",
            "utf16_byte_order_mark", "very_wide", "parquet_wrong_types", "abandoned_partial_write", "pickle", "joblib",
            "symlink_out_of_landing", "one_gigabyte", "path_traversal_name", "odd_file_name"]  # fmt: skip
ACCEPTED = ["utf8_byte_order_mark", "crlf_line_ends", "rows_out_of_time_order", "timestamps_without_zone", "non_ascii_name"]


def _inside(path: Path, root: Path) -> bool:
    return path.parent.resolve() == root.resolve() or root.resolve() in path.parent.resolve().parents


def _names(expected, actual: list) -> bool:
    return bool(actual) == expected if isinstance(expected, bool) else actual == expected


@pytest.mark.parametrize("kind", REJECTED)
def test_hostile_file_is_quarantined_with_a_clear_reason_and_an_alert(kind, outcome):
    case, home = outcome["cases"][kind], outcome["home"]
    key = outcome["keys"][case.name]
    message = outcome["summary"].quarantined.get(key)
    assert message is not None, f"{kind}: not quarantined; ingested: {outcome['summary'].succeeded}"
    assert display_name(case.name) in message and case.error in message

    folder = home / "quarantine" / key
    reason = json.loads((folder / "reason.json").read_text())["reason"]
    assert (reason["kind"], reason["file"]) == (case.error, case.name)
    assert _names(case.columns, reason["columns"]), reason
    assert _names(case.rows, reason["rows"]), reason
    kept = folder / sanitize_name(case.name)
    assert _inside(kept, home / "quarantine") and folder.parent == home / "quarantine"
    if kind == "symlink_out_of_landing":
        assert kept.is_symlink() and os.readlink(kept) == "/etc/passwd"  # the link kept, its target never copied
        assert not any(p.is_file() and not p.is_symlink() and p.read_bytes() == Path("/etc/passwd").read_bytes() for p in home.rglob("*"))
    elif kind == "one_gigabyte":
        assert kept.stat().st_size == GIB and "1,073,741,824 bytes" in message
    else:
        assert kept.read_bytes() == outcome["originals"][kind]
    assert not (home / "landing" / case.name).exists()

    alerts = [a for a in outcome["alerts"] if a["partition"] == key]
    assert len(alerts) == 1 and display_name(case.name) in alerts[0]["reason"] and alerts[0]["kind"] == "check_failed"


@pytest.mark.parametrize("kind", ACCEPTED)
def test_legitimate_odd_shapes_are_read_like_their_plain_twin(kind, outcome):
    case, home = outcome["cases"][kind], outcome["home"]
    key = outcome["keys"][case.name]
    assert key in outcome["summary"].succeeded, outcome["summary"].quarantined.get(key)
    stored = pl.read_parquet(home / "storage" / "clean_load" / f"{key}.parquet")
    twin, report = clean_batch(parse_batch("twin.csv", case.accepted_twin), SPEC, "twin.csv")
    assert stored.equals(twin)
    archived = home / "storage" / "raw_files" / key / sanitize_name(case.name)
    assert _inside(archived, home / "storage" / "raw_files") and archived.exists()
    if "out_of_order_rows" in case.extra:
        records = outcome["instance"].fetch_materializations(dg.AssetRecordsFilter(dg.AssetKey("clean_load"), asset_partitions=[key]), limit=1).records
        assert records[0].asset_materialization.metadata["out_of_order_rows"].value == case.extra["out_of_order_rows"]


def test_good_batches_and_the_champion_are_untouched(outcome):
    succeeded = outcome["summary"].succeeded
    accepted = [outcome["cases"][kind].name for kind in ACCEPTED]
    assert sorted(succeeded) == sorted(outcome["keys"][name] for name in [*outcome["good"], *accepted])
    assert outcome["after"] == outcome["before"]
    assert not outcome["marker"].exists(), "a landed pickle was unpickled"
    assert len(outcome["summary"].quarantined) == len(REJECTED)
    assert len(outcome["alerts"]) == len(REJECTED)
    record(
        "hostile_inputs",
        kinds_tried=len(REJECTED) + len(ACCEPTED),
        rejected_kinds=len(REJECTED),
        accepted_kinds=len(ACCEPTED),
        quarantined=len(outcome["summary"].quarantined),
        alerts=len(outcome["alerts"]),
        good_batches_ingested=sum(outcome["keys"][n] in succeeded for n in outcome["good"]),
        champion_unchanged=outcome["after"] == outcome["before"],
        ingest_seconds=round(outcome["seconds"], 1),
    )


def test_a_file_still_being_written_waits_until_it_settles(mlops_home, landing_dir, monkeypatch):
    """A writer appends rows for ~3 s; with settle_seconds=2 the sensor never picks the file up
    while it grows, then picks it up once, whole."""
    from mlops_assets.definitions import build_definitions
    from mlops_assets.defs.ingestion.sensors import new_data_sensor

    monkeypatch.setenv("MLOPS_SETTLE_SECONDS", "2")
    landing = build_definitions("local").resources["landing"]
    header, *rows = to_csv_bytes(day(20)).decode().splitlines(keepends=True)
    path = landing_dir / "growing.csv"
    done = threading.Event()

    def write_slowly():
        with path.open("w") as handle:
            handle.write(header)
            for row in rows:
                handle.write(row)
                handle.flush()
                time.sleep(0.06)
        done.set()

    writer = threading.Thread(target=write_slowly)
    cursor, looks_while_writing, requests = None, 0, []
    with dg.instance_for_test() as instance:
        writer.start()
        while not done.is_set():
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"landing": landing}) as context:
                result = new_data_sensor(context)
            if not done.is_set():
                looks_while_writing += 1
                assert result.run_requests == [], "picked up a file that was still being written"
            cursor = result.cursor
            requests += result.run_requests
            time.sleep(0.2)
        deadline = time.time() + 10
        while not requests and time.time() < deadline:
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"landing": landing}) as context:
                result = new_data_sensor(context)
            cursor, requests = result.cursor, requests + list(result.run_requests)
            time.sleep(0.2)
    writer.join()
    assert looks_while_writing >= 5 and len(requests) == 1
    key = requests[0].partition_key
    assert landing.read_archived(key)[1] == path.read_bytes() == (header + "".join(rows)).encode()
    record("file_still_being_written", sensor_looks_while_writing=looks_while_writing, picked_up_once_complete=len(requests))
