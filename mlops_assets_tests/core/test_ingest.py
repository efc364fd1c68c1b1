import io

import polars as pl
import pytest

from mlops_assets.core.ingest import BatchError, batch_key, is_candidate_file, parse_batch, sanitize_name, sha256_hex


@pytest.mark.parametrize(
    "name, expected",
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\evil.csv", "evil.csv"),
        ("load 2024-01-01 (copy).csv", "load_2024-01-01_copy_.csv"),
        (".hidden.csv", "hidden.csv"),
        ("zürich_ümlaut.csv", "zurich_umlaut.csv"),
        ("", "unnamed"),
    ],
)
def test_sanitize_name(name, expected):
    assert sanitize_name(name) == expected


def test_batch_key_is_content_addressed():
    a, b = sha256_hex(b"one"), sha256_hex(b"two")
    assert batch_key("load.csv", a) == batch_key("load.csv", a)
    assert batch_key("load.csv", a) != batch_key("load.csv", b)
    assert "/" not in batch_key("../x/../../y.csv", a)


@pytest.mark.parametrize(
    "name, ok", [("a.csv", True), ("a.parquet", True), (".a.csv", False), ("a.csv.part", False), ("a.tmp", False), ("a.json", False)]
)
def test_candidate_files(name, ok):
    assert is_candidate_file(name) is ok


def test_parse_csv_keeps_text_and_row_numbers():
    frame = parse_batch("x.csv", b"a,b\n1,x\n2,\n")
    assert frame.schema == {"_row": pl.Int64, "a": pl.String, "b": pl.String}
    assert frame.get_column("_row").to_list() == [1, 2]
    assert frame.get_column("b").to_list() == ["x", None]


def test_bom_and_crlf_are_accepted():
    frame = parse_batch("x.csv", b"\xef\xbb\xbfa,b\r\n1,2\r\n")
    assert frame.columns == ["_row", "a", "b"] and frame.get_column("b").to_list() == ["2"]


@pytest.mark.parametrize(
    "data, kind, rows, columns",
    [
        (b"", "empty", [], []),
        (b"a,b\n", "no_rows", [], ["a", "b"]),
        (b"a,b\n1,2\n3,\xe9\n", "not_utf8", [2], []),
        (b"a,a,b\n1,2,3\n", "duplicate_columns", [], ["a"]),
        (b"a,b,c\n1,2,3\n4,5", "truncated", [2], []),
    ],
)
def test_csv_structure_errors_name_rows_and_columns(data, kind, rows, columns):
    with pytest.raises(BatchError) as info:
        parse_batch("f.csv", data)
    assert info.value.kind == kind and info.value.rows == rows and info.value.columns == columns
    assert "f.csv" in str(info.value)


def test_parquet_round_trip_and_broken_parquet():
    buffer = io.BytesIO()
    pl.DataFrame({"a": [1.5, 2.5]}).write_parquet(buffer)
    assert parse_batch("x.parquet", buffer.getvalue()).get_column("a").to_list() == [1.5, 2.5]
    with pytest.raises(BatchError, match="not a readable Parquet"):
        parse_batch("x.parquet", buffer.getvalue()[:40])


def test_unsupported_format():
    with pytest.raises(BatchError, match="unsupported_format"):
        parse_batch("x.xlsx", b"PK")
