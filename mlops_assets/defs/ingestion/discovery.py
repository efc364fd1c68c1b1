"""Finding new batch files in the landing zone; shared by `new_data_sensor` and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlops_assets.resources.landing import LandedFile, LandingZone


def content_id(batch_key: str) -> str:
    """The content-hash part of a batch key."""
    return batch_key.rsplit("__", 1)[-1]


@dataclass
class Discovery:
    new: list[LandedFile] = field(default_factory=list)
    already_known: list[LandedFile] = field(default_factory=list)
    seen: dict[str, list] = field(default_factory=dict)


def discover_batches(landing: LandingZone, known_keys: set[str], seen: dict[str, list]) -> Discovery:
    """New batches in landing order. A file is re-hashed only when its fingerprint (size and
    mtime; size and generation on GCS) changed since the last look (`seen`); content already
    known (the same bytes landed again, under any name) is never new twice."""
    result = Discovery()
    taken = {content_id(key) for key in known_keys}
    for stat in landing.list_files():
        fingerprint = stat.fingerprint()
        previous = seen.get(stat.name)
        if previous and previous[:2] == fingerprint:
            result.seen[stat.name] = previous
            continue
        landed = landing.receive(stat.name)
        result.seen[stat.name] = [*fingerprint, landed.key]
        if content_id(landed.key) in taken:
            result.already_known.append(landed)
            continue
        taken.add(content_id(landed.key))
        result.new.append(landed)
    return result
