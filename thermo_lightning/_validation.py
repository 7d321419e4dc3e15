"""Small argument checks shared across modules; errors name the argument."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def finite_or_none(value: Any) -> float | None:
    """``value`` as a finite float, else ``None`` (a missing table cell, NaN, text)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float, else ``None``; ``bool`` is not a number here (hand-written
    files can hold anything)."""
    return None if isinstance(value, bool) else finite_or_none(value)


def positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an int if it is an integer >= 1, else raise a ValueError naming
    ``name`` (``bool`` is refused: ``True`` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


def flag(value: Any, name: str) -> bool:
    """``value`` if it is ``True`` or ``False``, else a ValueError naming ``name``."""
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False, got {value!r}.")
    return value


def integer(value: Any, name: str) -> int:
    """``value`` as an int if it is an integer (``bool`` refused), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"`{name}` must be an integer, got {value!r}.")
    return int(value)


def positive_number(value: Any, name: str) -> float:
    """``value`` as a float if it is a finite number > 0 (``bool`` refused), else a
    ValueError naming ``name``."""
    if not (isinstance(value, int | float | np.floating) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a positive number, got {value!r}.")
    return float(value)


def check_ks(k: int | Sequence[int], n: int | None) -> tuple[int, ...]:
    """``k`` as distinct positive ints, each below ``n`` (the number of points) when given."""
    ks = (k,) if isinstance(k, int | np.integer) and not isinstance(k, bool) else k
    try:
        ks = tuple(ks)  # type: ignore[arg-type]
    except TypeError as err:
        raise ValueError(f"`k` must be an int or a sequence of ints, got {k!r}.") from err
    if not ks:
        raise ValueError("`k` is an empty sequence; pass at least one neighbour count.")
    for kk in ks:
        if isinstance(kk, bool) or not isinstance(kk, int | np.integer):
            raise ValueError(f"`k` must hold integers, got {kk!r}.")
        if kk < 1:
            raise ValueError(f"`k` must hold positive integers, got k={kk}.")
        if n is not None and kk >= n:
            raise ValueError(
                f"`k` must satisfy 1 <= k < N (the number of points, here N={n}), got k={kk}. "
                "Use a larger window or a smaller k."
            )
    if len(set(ks)) != len(ks):
        raise ValueError(f"`k` has repeated values: {ks}.")
    return tuple(int(kk) for kk in ks)
