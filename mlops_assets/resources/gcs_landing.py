"""The landing zone under `gs://bucket/prefix`, listed through dagster-gcp's `GCSResource`.

Imported only when a deployment's landing zone is on GCS (dagster-gcp is slow to import)."""

from __future__ import annotations

import os
import time

from dagster_gcp import GCSResource

from mlops_assets.core.ingest import is_candidate_file
from mlops_assets.resources.gcs import is_gcs, split_gcs_url
from mlops_assets.resources.landing import FileStat, LandingZone

PROJECT_ENV_VAR = "MLOPS_GCP_PROJECT"
# Only what the landing zone needs from each listed object: smaller pages on large prefixes.
LISTING_FIELDS = "items(name,size,updated,generation),prefixes,nextPageToken"


class GcsLandingZone(LandingZone):
    """A landing zone whose root is `gs://bucket/prefix`, listed with the `gcs` client.

    Only the objects directly under the prefix count (like the files of a folder). A file is
    settled `settle_seconds` after the object's `updated` time, and its fingerprint is its
    generation: a re-upload under the same name is a new generation and is hashed again, an
    unchanged object is never downloaded twice. Receiving, the archive and quarantine go
    through UPath (gcsfs for gs:// locations)."""

    gcs: GCSResource

    def list_files(self) -> list[FileStat]:
        """Settled batch files under the prefix, oldest `updated` first."""
        bucket, prefix = split_gcs_url(self.root)
        prefix = f"{prefix}/" if prefix else ""
        blobs = self.gcs.get_client().list_blobs(bucket, prefix=prefix, delimiter="/", fields=LISTING_FIELDS)
        now = time.time()
        stats = []
        for blob in blobs:
            name = blob.name[len(prefix):]
            if not name or not is_candidate_file(name):
                continue
            updated = blob.updated.timestamp() if blob.updated else 0.0
            if self.settle_seconds and now - updated < self.settle_seconds:
                continue
            stats.append(FileStat(name, int(blob.size or 0), updated, version=str(blob.generation)))
        return sorted(stats, key=lambda s: (s.mtime, s.name))


def gcs_resource() -> GCSResource:
    """dagster-gcp's client resource. The project comes from MLOPS_GCP_PROJECT when set, else
    from the credentials; the credentials come from the environment, never from the repo."""
    return GCSResource(project=os.environ.get(PROJECT_ENV_VAR) or None)


def gcs_landing(landing: LandingZone, gcs: GCSResource | None = None) -> LandingZone:
    """The same landing zone listed through GCS when its root is gs://; unchanged otherwise."""
    if not is_gcs(landing.root) or isinstance(landing, GcsLandingZone):
        return landing
    settings = {name: getattr(landing, name) for name in LandingZone.model_fields}
    return GcsLandingZone(**settings, gcs=gcs or gcs_resource())
