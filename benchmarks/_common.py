"""Helpers the benchmark scripts share: fixed mini-batches of the digits and a median timer.

The scripts import it as ``from _common import ...`` (their own folder on ``sys.path``: put
there when a script runs as ``python benchmarks/<name>.py``, and by the scripts themselves
when a test loads them as modules)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from thermo_lightning.data import DigitsDataModule, batch_indices

__all__ = ["digits_batches", "median_seconds"]


def digits_batches(dm: DigitsDataModule, count: int, seed: int) -> list[tuple[Any, Any]]:
    """``count`` mini-batches of ``dm``'s training set, drawn with replacement (the package's
    seeded :func:`~thermo_lightning.data.batch_indices`): the same batches for every method
    a benchmark compares."""
    out = []
    for j in range(count):
        idx = batch_indices(dm.images.shape[0], dm.batch_size, seed=seed, index=j)
        out.append((dm.images[idx], dm.labels[idx]))
    return out


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: bool = False) -> float:
    """The median wall time of ``repeats`` calls of ``fn`` (seconds), after one call left
    untimed when ``warmup`` (first-call costs: allocation, lazy initialisation)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
