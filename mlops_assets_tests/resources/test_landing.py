"""The landing zone as the sensor and the ingestion assets use it: listing settled files,
receiving (archive under the batch key), refusing links and oversized files unread, and
quarantine, which removes a landing file only while it still holds the bytes received.

Local folders, and fsspec's in-memory filesystem for the object-store code paths (what
gs:// takes: whole-object writes, copy-and-delete moves)."""

import hashlib
import json
import os
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from upath import UPath

from mlops_assets.core.ingest import batch_key
from mlops_assets.resources.landing import FileStat, LandedFile, LandingZone

DATA = b"timestamp,zone,load\n2024-01-01T00:00:00,A,1.5\n"
OTHER = b"timestamp,zone,load\n2024-01-01T00:00:00,A,9.9\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def zone(tmp_path) -> LandingZone:
    (tmp_path / "landing").mkdir()
    return LandingZone(root=str(tmp_path / "landing"), archive_root=str(tmp_path / "archive"), quarantine_root=str(tmp_path / "quarantine"), settle_seconds=0)


@pytest.fixture
def memory_zone() -> LandingZone:
    base = f"memory://zone-{uuid.uuid4().hex}"
    return LandingZone(root=f"{base}/landing", archive_root=f"{base}/archive", quarantine_root=f"{base}/quarantine", settle_seconds=0)


def land(zone: LandingZone, name: str, data: bytes, mtime: float | None = None):
    path = UPath(zone.root) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path.path, (mtime, mtime))
    return path


def folder_files(path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def assert_utc_now(stamp: str) -> None:
    """An ISO timestamp in UTC, to the second, of a moment ago."""
    moment = datetime.fromisoformat(stamp)
    assert moment.utcoffset() == timedelta(0) and moment.microsecond == 0
    assert abs(datetime.now(timezone.utc) - moment) < timedelta(seconds=30)


# ------------------------------------------------------------------ listing


def test_only_settled_batch_files_are_listed_oldest_first(zone, tmp_path):
    now = time.time()
    land(zone, "b.csv", DATA, now - 100)
    land(zone, "a.parquet", OTHER, now - 100)
    land(zone, "first.csv", DATA, now - 200)
    land(zone, "model.pkl", DATA, now - 50)  # listed: quarantined later, never ignored
    land(zone, "fresh.csv", DATA, now)
    for skipped in (".hidden.csv", "upload.csv.part", "notes.txt"):
        land(zone, skipped, DATA, now - 100)
    (tmp_path / "landing" / "folder.csv").mkdir()
    settled = zone.model_copy(update={"settle_seconds": 30.0})
    listed = settled.list_files()
    assert [s.name for s in listed] == ["first.csv", "a.parquet", "b.csv", "model.pkl"]
    assert listed[0] == FileStat("first.csv", len(DATA), pytest.approx(now - 200), "")
    assert settled.unsettled_files() == ["fresh.csv"]
    assert [s.name for s in zone.list_files()][-1] == "fresh.csv"  # settle_seconds 0: no wait
    land(zone, "skewed.csv", DATA, now + 3600)  # written by a machine whose clock is ahead
    assert zone.unsettled_files() == []


def test_a_missing_landing_folder_lists_nothing(tmp_path):
    absent = LandingZone(root=str(tmp_path / "absent"), archive_root=str(tmp_path / "a"), quarantine_root=str(tmp_path / "q"), settle_seconds=5)
    assert absent.list_files() == [] and absent.unsettled_files() == [] and absent.quarantined_keys() == []


def test_the_fingerprint_is_size_and_mtime_or_the_object_generation():
    assert FileStat("a.csv", 10, 1700000000.5).fingerprint() == [10, 1700000000.5]
    assert FileStat("a.csv", 10, 1700000000.5, version="1712").fingerprint() == [10, "1712"]


def test_an_object_store_zone_lists_and_never_waits_for_settling(memory_zone):
    land(memory_zone, "a.csv", DATA)
    land(memory_zone, ".part.csv", DATA)
    assert memory_zone.list_files() == [FileStat("a.csv", len(DATA), 0.0)]  # this store keeps no mtime
    assert memory_zone.model_copy(update={"settle_seconds": 30.0}).unsettled_files() == []


# ------------------------------------------------------------------ receiving


def test_a_received_file_is_archived_under_its_batch_key(zone, tmp_path):
    land(zone, "Zone A (ö).csv", DATA)
    landed = zone.receive("Zone A (ö).csv")
    assert (landed.key, landed.name, landed.sha256, landed.size, landed.refused) == (batch_key("Zone A (ö).csv", sha(DATA)), "Zone A (ö).csv", sha(DATA), len(DATA), None)
    folder = tmp_path / "archive" / landed.key
    assert folder_files(folder) == ["Zone_A_o_.csv", "manifest.json"]  # no temporary file left behind
    assert (folder / "Zone_A_o_.csv").read_bytes() == DATA
    assert zone.manifest(landed.key) == landed
    assert zone.read_archived(landed.key) == (landed, DATA)
    assert_utc_now(landed.received_at)
    assert (tmp_path / "landing" / "Zone A (ö).csv").exists()  # receiving leaves the landing file


def test_the_same_bytes_received_again_keep_the_first_archive(zone, tmp_path):
    land(zone, "a.csv", DATA)
    first = zone.receive("a.csv")
    archived = tmp_path / "archive" / first.key / "a.csv"
    inode = archived.stat().st_ino
    again = zone.receive("a.csv")
    assert again.key == first.key and archived.stat().st_ino == inode


@pytest.mark.parametrize("name", ["", ".", "..", "../escape.csv", "sub/a.csv", "a\x00.csv"])
def test_only_plain_file_names_are_received(zone, name):
    with pytest.raises(ValueError) as refused:
        zone.receive(name)
    assert str(refused.value) == f"refusing landing-zone name {name!r}: not a plain file name"


def test_a_symbolic_link_is_archived_as_a_link_unread(zone, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_bytes(DATA)
    os.symlink(secret, tmp_path / "landing" / "link.csv")
    landed = zone.receive("link.csv")
    message = f"is a symbolic link to {str(secret)!r}; links are never followed: land the file itself"
    assert landed.refused == {"kind": "symlink", "message": message}
    assert (landed.sha256, landed.size) == (sha(f"symlink:{secret}".encode()), 0)
    archived = tmp_path / "archive" / landed.key / "link.csv"
    assert os.path.islink(archived) and os.readlink(archived) == str(secret)
    assert not os.path.lexists(tmp_path / "landing" / "link.csv")
    assert secret.read_bytes() == DATA


def test_a_file_over_the_limit_is_refused_and_moved_unread(zone, tmp_path):
    limited = zone.model_copy(update={"max_file_bytes": len(DATA) - 1})
    land(zone, "big.csv", DATA)
    landed = limited.receive("big.csv")
    message = f"{len(DATA):,} bytes is over the limit of {len(DATA) - 1:,} bytes (MLOPS_MAX_FILE_BYTES); split the export into smaller files"
    assert landed.refused == {"kind": "too_large", "message": message}
    assert (landed.sha256, landed.size) == (sha(DATA), len(DATA))
    assert_utc_now(landed.received_at)
    assert (tmp_path / "archive" / landed.key / "big.csv").read_bytes() == DATA
    assert not (tmp_path / "landing" / "big.csv").exists()
    assert zone.manifest(landed.key) == landed
    with pytest.raises(RuntimeError) as unread:
        zone.read_archived(landed.key)
    assert str(unread.value) == f"batch {landed.key} was refused on arrival (too_large): its bytes are never read"


def test_a_file_at_the_limit_is_received(zone):
    land(zone, "exact.csv", DATA)
    assert zone.model_copy(update={"max_file_bytes": len(DATA)}).receive("exact.csv").refused is None


def test_a_large_refused_file_is_hashed_in_chunks(zone):
    data = os.urandom((1 << 20) * 2 + 123)  # more than two 1 MiB chunks
    land(zone, "huge.csv", data)
    landed = zone.model_copy(update={"max_file_bytes": 1 << 20}).receive("huge.csv")
    assert (landed.refused["kind"], landed.sha256, landed.size) == ("too_large", sha(data), len(data))


def test_a_refused_file_landed_again_keeps_the_first_archive(zone, tmp_path):
    limited = zone.model_copy(update={"max_file_bytes": 4})
    land(zone, "big.csv", DATA)
    first = limited.receive("big.csv")
    archived = tmp_path / "archive" / first.key / "big.csv"
    inode = archived.stat().st_ino
    land(zone, "big.csv", DATA)
    assert limited.receive("big.csv").key == first.key and archived.stat().st_ino == inode


def test_an_unknown_or_tampered_batch_is_an_error(zone, tmp_path):
    with pytest.raises(FileNotFoundError) as unknown:
        zone.manifest("nothing__000000000000")
    assert str(unknown.value) == f"batch nothing__000000000000 was never received: no {tmp_path / 'archive' / 'nothing__000000000000' / 'manifest.json'}"
    land(zone, "a.csv", DATA)
    landed = zone.receive("a.csv")
    (tmp_path / "archive" / landed.key / "a.csv").write_bytes(OTHER)
    with pytest.raises(RuntimeError) as tampered:
        zone.read_archived(landed.key)
    assert str(tampered.value) == f"archived bytes of batch {landed.key} do not match their recorded SHA-256"


# ------------------------------------------------------------------ quarantine


def test_quarantine_keeps_the_bytes_and_the_reason_and_clears_the_landing_file(zone, tmp_path):
    land(zone, "bad.csv", DATA)
    landed = zone.receive("bad.csv")
    folder = zone.quarantine(landed.key, {"kind": "schema", "message": "missing column load"})
    assert folder == str(tmp_path / "quarantine" / landed.key)
    assert (tmp_path / "quarantine" / landed.key / "bad.csv").read_bytes() == DATA
    record = json.loads((tmp_path / "quarantine" / landed.key / "reason.json").read_text())
    assert record == {"batch": landed.key, "quarantined_at": record["quarantined_at"], **landed.to_dict(), "reason": {"kind": "schema", "message": "missing column load"}}
    assert_utc_now(record["quarantined_at"])
    assert not (tmp_path / "landing" / "bad.csv").exists()
    assert zone.quarantined_keys() == [landed.key] and zone.is_quarantined(landed.key)


def test_a_file_rewritten_after_receipt_stays_in_the_landing_zone(zone, tmp_path):
    land(zone, "day1.csv", DATA)
    landed = zone.receive("day1.csv")
    land(zone, "day1.csv", OTHER)  # a corrected export under the same name, not yet received
    zone.quarantine(landed.key, {"kind": "schema", "message": "bad"})
    assert (tmp_path / "landing" / "day1.csv").read_bytes() == OTHER
    assert (tmp_path / "quarantine" / landed.key / "day1.csv").read_bytes() == DATA


def test_quarantine_after_the_landing_file_is_gone(zone, tmp_path):
    land(zone, "gone.csv", DATA)
    landed = zone.receive("gone.csv")
    (tmp_path / "landing" / "gone.csv").unlink()
    zone.quarantine(landed.key, {"kind": "schema"})
    assert zone.is_quarantined(landed.key)


def test_only_complete_quarantines_are_listed(zone, tmp_path):
    for name, data in (("b.csv", DATA), ("a.csv", OTHER)):
        land(zone, name, data)
        zone.quarantine(zone.receive(name).key, {"kind": "schema"})
    (tmp_path / "quarantine" / "half__000000000000").mkdir()  # copied, reason not yet written
    keys = sorted([batch_key("a.csv", sha(OTHER)), batch_key("b.csv", sha(DATA))])
    assert zone.quarantined_keys() == keys
    assert not zone.is_quarantined("half__000000000000")


def test_a_refused_file_is_moved_from_the_archive_to_quarantine(zone, tmp_path):
    limited = zone.model_copy(update={"max_file_bytes": 4})
    land(zone, "big.csv", DATA)
    landed = limited.receive("big.csv")
    land(zone, "big.csv", OTHER)  # something new landed under the same name meanwhile
    limited.quarantine(landed.key, {"kind": "too_large"})
    assert (tmp_path / "quarantine" / landed.key / "big.csv").read_bytes() == DATA
    assert not (tmp_path / "archive" / landed.key / "big.csv").exists()
    assert (tmp_path / "landing" / "big.csv").read_bytes() == OTHER
    limited.quarantine(landed.key, {"kind": "too_large"})  # again (a retried run): nothing left to move
    assert (tmp_path / "quarantine" / landed.key / "big.csv").read_bytes() == DATA


def test_a_refused_link_is_quarantined_as_the_link(zone, tmp_path):
    os.symlink(tmp_path / "nowhere.csv", tmp_path / "landing" / "dangling.csv")
    landed = zone.receive("dangling.csv")
    zone.quarantine(landed.key, {"kind": "symlink"})
    quarantined = tmp_path / "quarantine" / landed.key / "dangling.csv"
    assert os.path.islink(quarantined) and os.readlink(quarantined) == str(tmp_path / "nowhere.csv")
    zone.quarantine(landed.key, {"kind": "symlink"})
    assert os.path.islink(quarantined)


def test_an_object_store_zone_receives_refuses_and_quarantines(memory_zone):
    land(memory_zone, "a.csv", DATA)
    landed = memory_zone.receive("a.csv")
    assert memory_zone.read_archived(landed.key) == (landed, DATA)
    memory_zone.quarantine(landed.key, {"kind": "schema"})
    assert (UPath(memory_zone.quarantine_root) / landed.key / "a.csv").read_bytes() == DATA
    assert not (UPath(memory_zone.root) / "a.csv").exists()

    land(memory_zone, "big.csv", OTHER)
    limited = memory_zone.model_copy(update={"max_file_bytes": 4})
    refused = limited.receive("big.csv")
    assert refused.refused["kind"] == "too_large" and not (UPath(memory_zone.root) / "big.csv").exists()
    limited.quarantine(refused.key, {"kind": "too_large"})
    assert (UPath(memory_zone.quarantine_root) / refused.key / "big.csv").read_bytes() == OTHER
    assert not (UPath(memory_zone.archive_root) / refused.key / "big.csv").exists()
    limited.quarantine(refused.key, {"kind": "too_large"})
    assert memory_zone.quarantined_keys() == sorted([landed.key, refused.key])


def test_a_landed_file_record_round_trips():
    landed = LandedFile("a__0123456789ab", "a.csv", "0123456789ab" * 5, 3, "2024-01-01T00:00:00+00:00", {"kind": "symlink", "message": "m"})
    assert LandedFile(**landed.to_dict()) == landed


def test_a_reason_with_values_json_does_not_know_is_recorded_as_text(zone, tmp_path):
    land(zone, "late.csv", DATA)
    landed = zone.receive("late.csv")
    zone.quarantine(landed.key, {"kind": "out_of_range", "first": datetime(2024, 1, 1, 5), "where": tmp_path})
    record = json.loads((tmp_path / "quarantine" / landed.key / "reason.json").read_text())
    assert record["reason"] == {"kind": "out_of_range", "first": "2024-01-01 05:00:00", "where": str(tmp_path)}


def test_a_quarantine_interrupted_after_making_its_folder_completes(zone, tmp_path):
    limited = zone.model_copy(update={"max_file_bytes": 4})
    land(zone, "big.csv", DATA)
    landed = limited.receive("big.csv")
    (tmp_path / "quarantine" / landed.key).mkdir(parents=True)
    limited.quarantine(landed.key, {"kind": "too_large"})
    assert (tmp_path / "quarantine" / landed.key / "big.csv").read_bytes() == DATA


def test_a_local_landing_zone_with_an_object_store_archive(tmp_path):
    base = f"memory://archive-{uuid.uuid4().hex}"
    (tmp_path / "landing").mkdir()
    zone = LandingZone(root=str(tmp_path / "landing"), archive_root=f"{base}/archive", quarantine_root=f"{base}/quarantine", settle_seconds=0, max_file_bytes=4)
    (tmp_path / "landing" / "big.csv").write_bytes(DATA)
    landed = zone.receive("big.csv")  # refused: moved from the disk into the store
    assert (UPath(base) / "archive" / landed.key / "big.csv").read_bytes() == DATA
    assert not (tmp_path / "landing" / "big.csv").exists()


@pytest.mark.parametrize("scheme", ["file://", "local://"])
def test_a_zone_given_as_a_file_url_is_a_local_folder(tmp_path, scheme):
    (tmp_path / "landing").mkdir()
    zone = LandingZone(root=f"{scheme}{tmp_path / 'landing'}", archive_root=f"{scheme}{tmp_path / 'archive'}", quarantine_root=f"{scheme}{tmp_path / 'quarantine'}", settle_seconds=0)
    (tmp_path / "landing" / "a.csv").write_bytes(DATA)
    landed = zone.receive("a.csv")
    assert (tmp_path / "archive" / landed.key / "a.csv").read_bytes() == DATA
    os.symlink(tmp_path / "landing" / "a.csv", tmp_path / "landing" / "link.csv")
    assert zone.receive("link.csv").refused["kind"] == "symlink"  # links are seen, not followed
