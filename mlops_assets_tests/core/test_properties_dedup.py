"""De-duplication keeps the latest row, over random batch files (property_data.py): any
frequency, a single series or 1..3 groups with odd labels (tokens such as "NA", numbers as
text, unicode, commas and quotes), rows re-sent within a file and across files.

Each file goes through the public path, CSV bytes -> parse_batch -> clean_batch, and the
files, in landing order, through merge_batches. The expected history is computed here: for
each (group, timestamp) the last row of the last file that has it."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from mlops_assets.core.cleaning import clean_batch
from mlops_assets.core.history import merge_batches
from mlops_assets.core.ingest import parse_batch
from mlops_assets_tests.core.property_data import (
    SINGLE,
    START_DAYS,
    History,
    every_frequency_and_grouping,
    labels,
    per_case,
    specs,
)

Row = tuple[str | None, int, str, str]  # group label as written, grid position, target text, feature text


@st.composite
def landed_files(draw, frequency: str, grouped: bool) -> tuple[History, list[list[Row]]]:
    """1..4 files of 1..12 rows over a few labels and 16 grid positions; a row is new, an exact
    copy of an earlier row of the file, or a correction of an earlier key (new values). Each
    file's first target is a number (a file without any target is refused, not de-duplicated)."""
    spec = draw(specs(frequency, grouped))
    names = draw(st.lists(labels(blank_allowed=False), min_size=1, max_size=3, unique_by=str.strip)) if spec.group else [SINGLE]
    files: list[list[Row]] = []
    for f in range(draw(st.integers(1, 4))):
        rows: list[Row] = []
        for r in range(draw(st.integers(1, 12))):
            if rows and draw(st.integers(0, 3)) == 0:
                rows.append(draw(st.sampled_from(rows)))  # re-sent as it was
                continue
            label, position = draw(st.sampled_from(names)), draw(st.integers(0, 15))
            target = draw(st.sampled_from(("NA", ""))) if rows and draw(st.integers(0, 4)) == 0 else f"{f}{r:02d}.5"
            rows.append((label, position, target, draw(st.sampled_from(("", "-1.25", f"{r}")))))
        files.append(rows)
    history = History(spec, draw(st.sampled_from(START_DAYS)))
    history.rows = {label: {p: (None, None) for p in range(16)} for label in names}
    return history, files


def csv_bytes(history: History, rows: list[Row]) -> bytes:
    """The file as an exporter writes it: local time with its UTC offset, quoted where needed."""
    spec, zone = history.spec, ZoneInfo(history.spec.timezone)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = [spec.timestamp, spec.target.column, spec.observed_only_columns[0]]
    writer.writerow([spec.group, *header] if spec.group else header)
    for label, position, target, feature in rows:
        cells = [history.at(position).astimezone(zone).isoformat(timespec="seconds"), target, feature]
        writer.writerow([label, *cells] if spec.group else cells)
    return out.getvalue().encode()


def number(text: str) -> float | None:
    return float(text) if text.strip() not in ("", "NA") else None


def key(row: Row) -> tuple[str | None, int]:
    label = row[0].strip() if row[0] is not None else None  # labels are stripped, never read as tokens
    return label, row[1]


def latest(files: list[list[Row]]) -> dict[tuple[str | None, int], tuple[float | None, float | None]]:
    kept = {}
    for rows in files:
        for row in rows:
            kept[key(row)] = (number(row[2]), number(row[3]))
    return kept


def exact_copies(rows: list[Row]) -> int:
    """Rows of a repeated key that repeat another of its rows' values exactly."""
    by_key = defaultdict(list)
    for row in rows:
        by_key[key(row)].append((number(row[2]), number(row[3])))
    return sum(len(values) - len(set(values)) for values in by_key.values() if len(values) > 1)


def cleaned(history: History, rows: list[Row], name: str):
    data = csv_bytes(history, rows)
    return clean_batch(parse_batch(name, data), history.spec, name)


def contents(history: History, frame) -> dict[tuple[str | None, int], tuple[float | None, float | None]]:
    y, x = history.spec.target.column, history.spec.observed_only_columns[0]
    return {(label, i): (row[y], row[x]) for label, i, row in history.labelled(frame)}


@every_frequency_and_grouping
@per_case()
@given(data=st.data())
def test_a_file_keeps_the_last_row_of_each_key_and_counts_what_it_dropped(frequency: str, grouped: bool, data: st.DataObject):
    history, files = data.draw(landed_files(frequency, grouped))
    rows = files[0]
    frame, report = cleaned(history, rows, "batch.csv")
    assert contents(history, frame) == latest([rows])
    assert frame.height == len(latest([rows]))
    assert report.exact_duplicates_dropped == exact_copies(rows)
    assert report.conflicting_duplicates_dropped == len(rows) - len(latest([rows])) - exact_copies(rows)
    assert report.reconciles()


@every_frequency_and_grouping
@per_case()
@given(data=st.data())
def test_the_history_keeps_the_latest_batchs_row_of_each_key(frequency: str, grouped: bool, data: st.DataObject):
    history, files = data.draw(landed_files(frequency, grouped))
    batches = [(f"batch_{n}", cleaned(history, rows, f"batch_{n}.csv")[0]) for n, rows in enumerate(files)]
    merged, report = merge_batches(batches, history.spec)
    expected = latest(files)
    assert contents(history, merged) == expected
    assert merged.height == len(expected), "a (group, timestamp) appears twice in the history"
    assert report.superseded_rows == sum(b.height for _, b in batches) - len(expected)
