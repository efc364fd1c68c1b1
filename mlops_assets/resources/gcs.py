"""Google Cloud Storage locations: `gs://` URLs and the UPath (gcsfs) options used by asset
storage, the landing-zone archive and quarantine. (The landing zone's GCS listing is in
`gcs_landing.py`, imported only when a location is on GCS: dagster-gcp is slow to import.)

Credentials never live in the repo. Against real GCS every client finds them the Google way:
GOOGLE_APPLICATION_CREDENTIALS (a service-account key file outside the repo) or the machine's
workload identity. Against an emulator, STORAGE_EMULATOR_HOST (e.g. http://127.0.0.1:9023)
points every client at it with anonymous credentials: google-cloud-storage (used by
`GCSResource` and by MLflow's gs:// artifact store) reads it itself, and `storage_options()`
hands the same endpoint and `token="anon"` to gcsfs."""

from __future__ import annotations

import os
from typing import Any

from upath import UPath

EMULATOR_ENV_VAR = "STORAGE_EMULATOR_HOST"
GCS_SCHEMES = ("gs://", "gcs://")


def is_gcs(location: str) -> bool:
    return str(location).startswith(GCS_SCHEMES)


def split_gcs_url(url: str) -> tuple[str, str]:
    """`gs://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    if not is_gcs(url):
        raise ValueError(f"{url!r} is not a gs:// location")
    bucket, _, key = url.split("://", 1)[1].partition("/")
    if not bucket:
        raise ValueError(f"{url!r} names no bucket")
    return bucket, key.strip("/")


def emulator_endpoint() -> str | None:
    """The emulator's URL when STORAGE_EMULATOR_HOST is set (a bare host:port gets http://)."""
    host = os.environ.get(EMULATOR_ENV_VAR, "").strip()
    if not host or host == "default":
        return None
    return host if host.startswith(("http://", "https://")) else f"http://{host}"


def storage_options() -> dict[str, Any]:
    """gcsfs options for gs:// paths. Listings are never cached, so a file written by another
    process (a step, the daemon) is seen at once. With an emulator: its endpoint, anonymous
    credentials, and gcsfs's plain HTTP filesystem (the default one also probes the bucket
    layout over gRPC, which an emulator does not serve)."""
    options: dict[str, Any] = {"use_listings_cache": False}
    endpoint = emulator_endpoint()
    if endpoint:
        _use_http_gcsfs()
        options.update(endpoint_url=endpoint, token="anon")
    return options


def _use_http_gcsfs() -> None:
    """Serve gs:// with gcsfs's HTTP-only GCSFileSystem in this process (emulator only)."""
    import fsspec
    from gcsfs.core import GCSFileSystem

    for protocol in ("gs", "gcs"):
        if fsspec.get_filesystem_class(protocol) is not GCSFileSystem:
            fsspec.register_implementation(protocol, GCSFileSystem, clobber=True)


def storage_path(location: str) -> UPath:
    """A UPath for a local folder or a gs:// location (with the options above)."""
    return UPath(location, **storage_options()) if is_gcs(location) else UPath(location)
