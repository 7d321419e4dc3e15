"""Effective temperature of SGD from a learning-rate sweep, and along one run.

Across a sweep (docs/concepts.md, section 4). Each learning rate ``eta_i`` gives a stationary loss
``U_i`` and entropy ``S_i``. The temperature ``T_i`` is the one that makes point ``i`` the
minimiser of the free energy ``F = U - T S`` over all points, within a slack ``eps``. With the
points sorted by ``S``:

.. math::
    T^{lo}_i = \\max_{j: S_j < S_i} \\frac{U_i - U_j - \\epsilon}{S_i - S_j}, \\qquad
    T^{hi}_i = \\min_{j: S_j > S_i} \\frac{U_i - U_j - \\epsilon}{S_i - S_j}, \\qquad
    T_i = \\sqrt{T^{lo}_i \\, T^{hi}_i}

A missing bound (the ends of the sweep) takes the other's value. The free energy is "convex"
exactly when every bracket is non-empty (``T_lo <= T_hi``); :func:`infer_temperature` checks
this and flags every violation, which the reference analysis never did.

Along one run: ``T(t) = dU/dS`` as a central finite difference over logging points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "FreeEnergyCurves",
    "fit_power_law",
    "free_energy",
    "free_energy_curves",
    "infer_temperature",
    "local_temperature",
    "smooth_across_lrs",
    "smoothing_weights",
    "trend_temperature",
]

ArrayLike = Sequence[float] | np.ndarray


def _vector(values: ArrayLike, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`{name}` must be a 1-D sequence of numbers.") from err
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D, got shape {arr.shape}.")
    return arr


def _check_lrs(lrs: np.ndarray, name: str = "lrs") -> None:
    if not np.all(np.isfinite(lrs)) or np.any(lrs <= 0):
        raise ValueError(f"`{name}` must be positive and finite, got {lrs.tolist()}.")
    if np.unique(lrs).size != lrs.size:
        raise ValueError(f"`{name}` has repeated values; average the runs of each LR first.")


def smoothing_weights(lrs: ArrayLike, half_width: float) -> np.ndarray:
    """Triangular smoothing kernel in ``ln(eta)``.

    .. math::  W_{ij} \\propto \\max(h - |\\ln \\eta_i - \\ln \\eta_j|, 0)

    rows normalised to sum to 1; the first and last rows (in the given order, which must be
    sorted) are left as identity rows so the ends of the sweep are not pulled inwards.

    Returns:
        ``(M, M)`` array.
    """
    x = np.log(_vector(lrs, "lrs"))
    if not half_width > 0:
        raise ValueError(f"`half_width` must be positive, got {half_width!r}.")
    w = np.maximum(half_width - np.abs(x[:, None] - x[None, :]), 0.0)
    w /= w.sum(axis=1, keepdims=True)
    if len(x) >= 2:
        w[0] = 0.0
        w[0, 0] = 1.0
        w[-1] = 0.0
        w[-1, -1] = 1.0
    return w


def smooth_across_lrs(lrs: ArrayLike, values: ArrayLike, half_width: float = 0.3) -> np.ndarray:
    """Smooth ``values`` over a sorted LR grid with :func:`smoothing_weights`."""
    return smoothing_weights(lrs, half_width) @ _vector(values, "values")


def free_energy(energy: Any, entropy: Any, temperature: Any) -> Any:
    """``F = U - T S``, elementwise (floats, arrays or pandas columns; broadcast as numpy
    does). The one place the package computes it.

    Example:
        >>> free_energy(1.0, -2.0, 0.5)
        2.0
    """
    return energy - temperature * entropy


def infer_temperature(
    lrs: ArrayLike,
    energies: ArrayLike,
    entropies: ArrayLike,
    *,
    eps: float = 0.0,
    smoothing: float | None = 0.3,
) -> pd.DataFrame:
    """Temperature ``T(eta)`` of every learning rate of a sweep from its stationary ``U, S``.

    Args:
        lrs: learning rates ``eta_i > 0``, any order, no repeats; at least 3.
        energies: stationary training loss ``U_i`` per LR.
        entropies: stationary entropy ``S_i`` per LR (same estimator, ``N``, ``D``, ``k``).
        eps: slack ``epsilon >= 0`` in the bracket (the paper: 0.01 UP, 0.01-0.04 OP).
        smoothing: half-width ``h`` of the triangular kernel in ``ln(eta)`` applied to ``U``
            and ``S`` before the brackets (the paper: 0.3); ``None`` or 0 turns it off.

    Returns:
        DataFrame, one row per LR sorted by ``lr``, columns: ``lr``; ``U``, ``S`` (after
        smoothing); ``U_raw``, ``S_raw``; ``T_lo``, ``T_hi`` (``NaN`` where missing);
        ``T``; ``valid`` (bracket non-empty and ``T > 0``); ``F = U - T S``; ``reason``
        (why a row is not valid, else ``""``).

    Raises:
        ValueError: fewer than 3 LRs, unequal lengths, NaN/Inf values (names the LRs),
            non-positive or repeated LRs, negative ``eps``.

    Example:
        >>> lrs = [0.01, 0.02, 0.04, 0.08]
        >>> T = [0.5 * lr for lr in lrs]                      # a Gibbs family, U = c T,
        >>> U = [3 * t for t in T]                            # S = c ln T
        >>> S = [3 * np.log(t) for t in T]
        >>> df = infer_temperature(lrs, U, S, smoothing=None)
        >>> bool(df["valid"].all()), round(float(df["T"][1] / T[1]), 3)
        (True, 1.02)

        (Read the temperature as ``df["T"]``: ``df.T`` is pandas' transpose.)
    """
    lr = _vector(lrs, "lrs")
    u = _vector(energies, "energies")
    s = _vector(entropies, "entropies")
    if not len(lr) == len(u) == len(s):
        raise ValueError(
            f"`lrs`, `energies` and `entropies` must have equal lengths, got {len(lr)}, "
            f"{len(u)}, {len(s)}."
        )
    if len(lr) < 3:
        raise ValueError(
            f"a temperature needs at least 3 learning rates (a point and two neighbours), "
            f"got {len(lr)}."
        )
    bad = ~(np.isfinite(u) & np.isfinite(s))
    if bad.any():
        raise ValueError(
            f"`energies`/`entropies` are NaN or Inf at lrs {lr[bad].tolist()}; drop those runs "
            "(or rerun them) before inferring temperatures."
        )
    _check_lrs(lr)
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"`eps` must be a finite number >= 0, got {eps!r}.")
    if smoothing is not None and not (np.isfinite(smoothing) and smoothing >= 0):
        raise ValueError(f"`smoothing` must be None or a half-width >= 0, got {smoothing!r}.")

    order = np.argsort(lr)
    lr, u_raw, s_raw = lr[order], u[order], s[order]
    if smoothing:
        w = smoothing_weights(lr, smoothing)
        u, s = w @ u_raw, w @ s_raw
    else:
        u, s = u_raw.copy(), s_raw.copy()

    du = u[:, None] - u[None, :] - eps  # du[i, j] = U_i - U_j - eps
    ds = s[:, None] - s[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = du / ds
    off_diag = ~np.eye(len(lr), dtype=bool)
    lower = (ds > 0) & off_diag
    upper = (ds < 0) & off_diag
    tie_violation = ((ds == 0) & off_diag & (du > 0)).any(axis=1)
    t_lo = np.where(lower.any(axis=1), np.where(lower, ratio, -np.inf).max(axis=1), np.nan)
    t_hi = np.where(upper.any(axis=1), np.where(upper, ratio, np.inf).min(axis=1), np.nan)

    lo = np.where(np.isnan(t_lo), t_hi, t_lo)
    hi = np.where(np.isnan(t_hi), t_lo, t_hi)
    with np.errstate(invalid="ignore"):
        t = np.where((lo > 0) & (hi > 0), np.sqrt(lo * hi), np.nan)
    empty = lo > hi
    reason = np.full(len(lr), "", dtype=object)
    reason[~(t > 0)] = "non-positive bound"
    reason[empty] = "empty bracket (free energy not convex here)"
    reason[tie_violation] = "equal entropy, higher energy than another LR"
    valid = reason == ""
    return pd.DataFrame(
        {
            "lr": lr,
            "U": u,
            "S": s,
            "U_raw": u_raw,
            "S_raw": s_raw,
            "T_lo": t_lo,
            "T_hi": t_hi,
            "T": t,
            "valid": valid,
            "F": free_energy(u, s, t),
            "reason": reason,
        }
    )


def local_temperature(energies: ArrayLike, entropies: ArrayLike, *, lag: int = 2) -> np.ndarray:
    """Temperature along one run as a central finite difference over logging points.

    .. math::  T(t) = \\frac{U[t + \\ell] - U[t - \\ell]}{S[t + \\ell] - S[t - \\ell]}

    (the paper: ``lag = 2``). In stationary stretches it is a ratio of two noise terms; see
    :func:`trend_temperature` for the values that mean something.

    Args:
        energies: ``U`` at the logging points, shape ``(n,)``.
        entropies: ``S`` at the same points.
        lag: the half-width ``l >= 1`` of the difference.

    Returns:
        ``(n,)`` float array; ``NaN`` for the first and last ``lag`` points, where a value is
        not finite, or where ``S`` did not change.
    """
    u = _vector(energies, "energies")
    s = _vector(entropies, "entropies")
    if len(u) != len(s):
        raise ValueError(
            f"`energies` and `entropies` must have equal lengths, got {len(u)} and {len(s)}."
        )
    if isinstance(lag, bool) or not isinstance(lag, int | np.integer) or lag < 1:
        raise ValueError(f"`lag` must be an integer >= 1, got {lag!r}.")
    out = np.full(len(u), np.nan)
    if len(u) > 2 * lag:
        du = u[2 * lag :] - u[: -2 * lag]
        ds = s[2 * lag :] - s[: -2 * lag]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = du / ds
        out[lag:-lag] = np.where(np.isfinite(t), t, np.nan)
    return out


def trend_temperature(
    steps: ArrayLike, energies: ArrayLike, entropies: ArrayLike, *, half_width: int = 4,
    alpha: float = 0.01,
) -> np.ndarray:
    """Temperature along one run where it means something: ``dU/dS`` while ``U`` and ``S``
    drift together.

    At each logging point ``i``, over the ``2 h + 1`` points ``i - h .. i + h``, least-squares
    slopes of ``U`` and of ``S`` against ``ln(step)`` and their t-statistics;

    .. math::  T(i) = \\frac{dU / d\\ln t}{dS / d\\ln t}

    where both slopes differ from 0 (two-sided t-test at level ``alpha``), else NaN. In a
    stationary run ``U`` and ``S`` only fluctuate and a finite difference
    (:func:`local_temperature`) is a ratio of two noise terms (values of either sign, many
    times the run's temperature); there this gives NaN. While the weights collapse (the
    over-parameterised regime at small LRs) both drift and it follows ``T(t)``.

    Args:
        steps: ``(n,)`` steps of the logging points (positive).
        energies, entropies: ``U`` and ``S`` at those points.
        half_width: ``h >= 1``: points on each side (the paper's finite difference: 2).
        alpha: significance level of each slope's test.

    Returns:
        ``(n,)`` float array, NaN at the first and last ``h`` points and where a slope is not
        significant or a value is not finite.
    """
    from scipy.stats import linregress
    from scipy.stats import t as student_t

    u = _vector(energies, "energies")
    s = _vector(entropies, "entropies")
    x = np.log(np.maximum(_vector(steps, "steps"), 1.0))
    if not len(x) == len(u) == len(s):
        raise ValueError(f"`steps`, `energies` and `entropies` must have equal lengths, got "
                         f"{len(x)}, {len(u)} and {len(s)}.")
    if isinstance(half_width, bool) or not isinstance(half_width, int | np.integer) or (
            half_width < 1):
        raise ValueError(f"`half_width` must be an integer >= 1, got {half_width!r}.")
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must be in (0, 1), got {alpha!r}.")
    h = int(half_width)
    crit = float(student_t.ppf(1 - alpha / 2, 2 * h - 1))  # 2h + 1 points, 2 parameters
    out = np.full(len(u), np.nan)
    for i in range(h, len(u) - h):
        xs, us, ss = x[i - h:i + h + 1], u[i - h:i + h + 1], s[i - h:i + h + 1]
        if not (np.isfinite(us).all() and np.isfinite(ss).all()) or np.ptp(xs) == 0:
            continue
        fu, fs = linregress(xs, us), linregress(xs, ss)
        significant = all(f.stderr > 0 and abs(f.slope) >= crit * f.stderr for f in (fu, fs))
        if significant:
            out[i] = fu.slope / fs.slope
    return out


def fit_power_law(lrs: ArrayLike, temps: ArrayLike) -> tuple[float, float]:
    """Least-squares fit of ``T = b * lr**a`` in log-log space.

    Points with a non-finite or non-positive temperature are ignored.

    Returns:
        ``(b, a)``.

    Raises:
        ValueError: fewer than 2 usable points with distinct LRs.

    Example:
        >>> b, a = fit_power_law([1e-3, 1e-2, 1e-1], [2e-4 * x**0.8 for x in (1e-3, 1e-2, 1e-1)])
        >>> round(b, 6), round(a, 6)
        (0.0002, 0.8)
    """
    lr = _vector(lrs, "lrs")
    t = _vector(temps, "temps")
    if len(lr) != len(t):
        raise ValueError(f"`lrs` and `temps` must have equal lengths, got {len(lr)}, {len(t)}.")
    ok = np.isfinite(lr) & (lr > 0) & np.isfinite(t) & (t > 0)
    if np.unique(lr[ok]).size < 2:
        raise ValueError(
            "fit_power_law needs at least 2 points with distinct positive LRs and positive "
            f"finite temperatures; got {int(ok.sum())} usable of {len(lr)}."
        )
    a, log_b = np.polyfit(np.log(lr[ok]), np.log(t[ok]), 1)
    return float(np.exp(log_b)), float(a)


@dataclass(frozen=True)
class FreeEnergyCurves:
    """The family ``F_T(eta) = U(eta) - T * S(eta)`` for several temperatures.

    Attributes:
        lrs: ``(M,)`` sorted learning rates.
        temperatures: ``(C,)`` the temperatures ``T_c``.
        free_energy: ``(C, M)`` with ``free_energy[c, i] = U_i - T_c * S_i``.
        argmin: ``(C,)`` index of the minimum of each curve.
    """

    lrs: np.ndarray
    temperatures: np.ndarray
    free_energy: np.ndarray
    argmin: np.ndarray

    @property
    def lr_at_min(self) -> np.ndarray:
        """``(C,)`` learning rate that minimises each curve."""
        return self.lrs[self.argmin]

    def to_frame(self) -> pd.DataFrame:
        """Long format: columns ``T, lr, F, is_min``."""
        c, m = self.free_energy.shape
        is_min = np.zeros((c, m), dtype=bool)
        is_min[np.arange(c), self.argmin] = True
        return pd.DataFrame(
            {
                "T": np.repeat(self.temperatures, m),
                "lr": np.tile(self.lrs, c),
                "F": self.free_energy.ravel(),
                "is_min": is_min.ravel(),
            }
        )


def free_energy_curves(
    lrs: ArrayLike,
    energies: ArrayLike,
    entropies: ArrayLike,
    temperatures: ArrayLike,
) -> FreeEnergyCurves:
    """Free-energy curves ``F_T(eta') = U(eta') - T * S(eta')`` over the sweep, one per ``T``.

    For a ``T_i`` inferred at ``eta_i`` the curve is U-shaped with its minimum at ``eta_i``.
    """
    lr = _vector(lrs, "lrs")
    u = _vector(energies, "energies")
    s = _vector(entropies, "entropies")
    t = _vector(temperatures, "temperatures")
    if not len(lr) == len(u) == len(s):
        raise ValueError("`lrs`, `energies` and `entropies` must have equal lengths.")
    if len(t) == 0 or not np.all(np.isfinite(t)):
        raise ValueError("`temperatures` must be a non-empty sequence of finite numbers.")
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(s))):
        raise ValueError("`energies` and `entropies` must be finite.")
    _check_lrs(lr)
    order = np.argsort(lr)
    lr, u, s = lr[order], u[order], s[order]
    f = free_energy(u[None, :], s[None, :], t[:, None])
    return FreeEnergyCurves(lrs=lr, temperatures=t, free_energy=f, argmin=f.argmin(axis=1))
