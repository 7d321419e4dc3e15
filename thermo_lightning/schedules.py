"""When to measure: schedules are callables ``step -> bool``.

The paper logs 201 points per run: steps 0..9, then log-spaced to the end, so that early
transients and late equilibrium are both resolved. Expensive quantities (entropy, SNR) are
computed only at those points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from thermo_lightning._validation import positive_int

__all__ = ["DenseTail", "EveryNSteps", "LogSpacedSchedule", "Schedule", "as_schedule",
           "check_schedule"]

Schedule = Callable[[int], bool]


class LogSpacedSchedule:
    """Steps ``0..first-1``, then ``num_points - first`` steps log-spaced up to ``max_steps``.

    Args:
        max_steps: the last step of the run (always included).
        num_points: number of distinct logging steps (the paper: 201); fewer when
            ``max_steps`` is too small to hold them.
        first: how many initial steps are all logged (the paper: 10).

    Example:
        >>> s = LogSpacedSchedule(1000, num_points=15, first=5)
        >>> s.steps
        [0, 1, 2, 3, 4, 5, 9, 16, 29, 53, 95, 171, 308, 555, 1000]
        >>> s(95), s(96)
        (True, False)
    """

    def __init__(self, max_steps: int, num_points: int = 201, first: int = 10) -> None:
        positive_int(max_steps, "max_steps")
        positive_int(num_points, "num_points")
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise ValueError(f"`first` must be a non-negative integer, got {first!r}.")
        head = list(range(min(first, num_points, max_steps + 1)))
        start = head[-1] + 1 if head else 0
        rest = min(num_points - len(head), max_steps - start + 1)
        self.max_steps = max_steps
        self.steps = head + _log_spaced_integers(start, max_steps, rest)
        self._set = frozenset(self.steps)

    def __call__(self, step: int) -> bool:
        return step in self._set

    def __repr__(self) -> str:
        return f"LogSpacedSchedule(max_steps={self.max_steps}, points={len(self.steps)})"


def _log_spaced_integers(start: int, stop: int, count: int) -> list[int]:
    """``count`` distinct integers from ``start`` to ``stop`` (both included when
    ``count >= 2``), as close to log-spaced as distinctness allows."""
    if count <= 0:
        return []
    if count == 1:
        return [stop]
    lo = max(start, 1)
    raw = np.geomspace(lo, stop, count) if stop > lo else np.full(count, float(stop))
    vals = [round(float(v)) for v in raw]
    vals[0] = start
    for i in range(1, count):  # push crowded values forwards ...
        vals[i] = max(vals[i], vals[i - 1] + 1)
    vals[-1] = stop
    for i in range(count - 2, -1, -1):  # ... and pull the end back inside the range
        vals[i] = min(vals[i], vals[i + 1] - 1)
    return vals


class EveryNSteps:
    """Every ``n`` steps (``step % n == offset``)."""

    def __init__(self, n: int, offset: int = 0) -> None:
        self.n = positive_int(n, "n")
        self.offset = offset % self.n

    def __call__(self, step: int) -> bool:
        return step % self.n == self.offset

    def __repr__(self) -> str:
        return f"EveryNSteps({self.n})"


class DenseTail:
    """``base``'s steps and ``points`` more, evenly spaced over the later half of a run of
    ``max_steps``: what a quantity averaged over the later half (``thermo/T_conf``) needs,
    where the log schedule puts few of its points (about 17 of 201 in a 3000-step run).

    Example:
        >>> s = DenseTail(LogSpacedSchedule(1000, num_points=15, first=5), 1000, points=5)
        >>> [step for step in range(1001) if s(step)][-7:]
        [308, 555, 600, 700, 800, 900, 1000]
    """

    def __init__(self, base: Schedule, max_steps: int, points: int = 100) -> None:
        positive_int(max_steps, "max_steps")
        positive_int(points, "points")
        half = max_steps // 2
        self.base, self.max_steps, self.points = base, max_steps, points
        tail = np.linspace(half, max_steps, points + 1)[1:]
        self._tail = frozenset(round(float(v)) for v in tail)

    def __call__(self, step: int) -> bool:
        return step in self._tail or self.base(step)

    def __repr__(self) -> str:
        return f"DenseTail({self.base!r}, +{len(self._tail)} in the later half)"


def check_schedule(spec: Any, name: str = "schedule") -> str | int | Schedule:
    """Validate a schedule argument without building it (``"log"`` needs the run's length):
    ``"log"``, a positive int (digit strings from configuration files are accepted) or a
    callable. Raises a ValueError naming ``name`` otherwise."""
    if isinstance(spec, str) and spec.strip().isdigit():
        spec = int(spec)
    if callable(spec) or spec == "log":
        return spec
    if isinstance(spec, int | np.integer) and not isinstance(spec, bool) and spec >= 1:
        return int(spec)
    raise ValueError(
        f"`{name}` must be 'log', a positive int (every n steps) or a callable step -> bool, "
        f"got {spec!r}."
    )


def as_schedule(spec: str | int | Schedule, max_steps: int | None) -> Schedule:
    """``"log"`` (needs ``max_steps``), an int ``n`` (every ``n`` steps) or a callable."""
    spec = check_schedule(spec)
    if callable(spec):
        return spec
    if isinstance(spec, int):
        return EveryNSteps(spec)
    if spec == "log":
        if max_steps is None or max_steps < 1:
            raise ValueError(
                "schedule='log' needs `Trainer(max_steps=...)`; pass an int (every n steps) or "
                "a callable step -> bool instead."
            )
        return LogSpacedSchedule(max_steps)
    raise ValueError(
        f"`schedule` must be 'log', a positive int or a callable step -> bool, got {spec!r}."
    )
