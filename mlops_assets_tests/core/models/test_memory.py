"""release_memory hands freed heap back to the OS (what keeps one-process training runs small)."""

import sys

import pytest

from mlops_assets.core.models.memory import release_memory


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc (Linux) only")
def test_freed_holes_in_the_heap_are_returned_to_the_os():
    blocks = [bytearray(4000) for _ in range(50_000)]  # ~200 MB of small heap allocations
    del blocks[:40_000]  # ~160 MB freed below live blocks: no automatic top-of-heap trim returns it
    before = _rss_mb()
    assert release_memory() is True
    assert before - _rss_mb() > 80
    assert len(blocks) == 10_000
