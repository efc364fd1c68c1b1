"""Handing freed memory back to the operating system between training steps.

When every step runs in one process (the demo's in-process executor), several allocators share
it: glibc malloc (numpy, pandas, scikit-learn), polars' jemalloc and XLA's (JAX). Memory one of
them has freed but still holds cannot be used by another, so without a trim the process's peak
grows step by step (at 1M rows the LSTM step alone left ~600 MB of freed glibc heap behind)."""

from __future__ import annotations

import ctypes
import gc
import sys


def release_memory() -> bool:
    """Collect garbage cycles, then `malloc_trim(0)` (glibc only). True when the trim ran."""
    gc.collect()
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): nothing to trim
        return False
    libc.malloc_trim(0)
    return True
