"""Comparing nested results (verdicts, reports) value by value, floats with a tolerance."""

from __future__ import annotations

import math
from typing import Any


def assert_same(actual: Any, expected: Any, rel: float = 1e-6, abs_tol: float = 1e-12, path: str = "") -> None:
    """Equal dicts (same keys), lists and values; floats to `rel` (NaN equals NaN). The default
    tolerance is pytest.approx's; pass rel=1e-12 where only the last bits may differ (polars'
    multithreaded group-by sums a group's partial sums in whichever order its threads finish)."""
    where = path or "value"
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not a dict"
        assert set(actual) == set(expected), f"{where}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], rel, abs_tol, f"{path}.{key}" if path else str(key))
    elif isinstance(expected, list | tuple) and not isinstance(expected, str):
        assert isinstance(actual, list | tuple) and len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, rel, abs_tol, f"{where}[{i}]")
    elif isinstance(expected, float) and isinstance(actual, int | float) and not isinstance(actual, bool):
        both_nan = math.isnan(expected) and math.isnan(actual)
        assert both_nan or math.isclose(actual, expected, rel_tol=rel, abs_tol=abs_tol), f"{where}: {actual!r} != {expected!r}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
