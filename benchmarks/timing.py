"""The timing loop the per-layer benchmarks share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    """The median wall time of ``repeats`` calls of ``fn`` (which must wait for its own
    result) after ``warmup`` untimed ones (compilation, caches)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
