"""Temperatures from a sweep that survive noise: the most likely convex free-energy curve.

The paper's construction (:func:`~thermo_lightning.functional.infer_temperature`) takes the
measured ``(S_i, U_i)`` as exact: a point that noise pushes off the convex curve gets an
empty bracket and no temperature, however small the push compared with its error bars. Here
the points are treated as measurements. With the learning rates ascending, the stationary
``U(S)`` of a Gibbs family is increasing and convex: ``S`` and ``U`` rise with ``eta`` and
the chord slopes

.. math::  T_{i+1/2} = \\frac{\\hat U_{i+1} - \\hat U_i}{\\hat S_{i+1} - \\hat S_i}

do not decrease. :func:`convex_temperature` finds the curve through points ``(hat S_i,
hat U_i)`` with these constraints that is closest to the measurements in their own errors,

.. math::  \\chi^2 = \\sum_i \\left(\\frac{\\hat S_i - S_i}{\\sigma_{S,i}}\\right)^2
                   + \\left(\\frac{\\hat U_i - U_i}{\\sigma_{U,i}}\\right)^2 ,

(a least-squares fit in a parametrisation that holds the constraints: ``hat S`` increments
and chord-slope increments are ``exp`` of free variables), and gives each learning rate the
geometric mean of its two neighbouring chords, ``T_i = sqrt(T_{i-1/2} T_{i+1/2})`` (one chord
at the ends), the same rule as the paper's brackets. Points that are already convex are
reproduced exactly, so on clean data the two constructions agree. A row is not valid only
when the data reject convexity there beyond their errors: its standardised distance to the
curve, ``sqrt(((hat S_i - S_i) / sigma_S)^2 + ((hat U_i - U_i) / sigma_U)^2)``, above
``reject`` (3 by default), or where the data do not determine the slope: its neighbours'
measured ``S`` differ by less than ``resolve`` (2) standard errors (equal points, say, fit
any slope). The end rows' one-chord values are marked (``end``): a chord is a biased
estimate of the slope at an end point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["convex_temperature"]

ArrayLike = Sequence[float] | np.ndarray


def _errors(values: np.ndarray, se: ArrayLike | None, name: str) -> tuple[np.ndarray, bool]:
    """Standard errors: the given ones (non-positive or NaN replaced by the median of the
    others), else 1% of the spread of ``values`` (every point weighted alike); and whether
    the given ones were used."""
    n = len(values)
    if se is None:
        spread = float(np.ptp(values)) or max(float(np.abs(values).max()), 1.0)
        return np.full(n, 0.01 * spread), False
    out = np.asarray(se, dtype=np.float64).reshape(-1)
    if out.shape != (n,):
        raise ValueError(f"`{name}` must have one value per learning rate, got {out.shape}.")
    good = np.isfinite(out) & (out > 0)
    if not good.any():
        return _errors(values, None, name)
    return np.where(good, out, float(np.median(out[good]))), True


def _sorted(values: ArrayLike, order: np.ndarray, name: str) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).reshape(-1)
    if out.shape != order.shape:
        raise ValueError(f"`{name}` must have one value per learning rate, got {out.shape}.")
    return out[order]


def _curve(theta: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(hat S, hat U, chord slopes)`` of the parameters ``[s1, log dS (n-1), u1,
    log T_1, log dT (n-2)]``."""
    s1, log_ds = theta[0], np.clip(theta[1:n], -700.0, 700.0)
    u1, log_t1 = theta[n], min(max(float(theta[n + 1]), -700.0), 700.0)
    log_dt = np.clip(theta[n + 2:], -700.0, 700.0)  # a trial step of the solver may be huge
    ds = np.exp(log_ds)
    chords = math.exp(log_t1) + np.concatenate([[0.0], np.cumsum(np.exp(log_dt))])
    s_hat = s1 + np.concatenate([[0.0], np.cumsum(ds)])
    u_hat = u1 + np.concatenate([[0.0], np.cumsum(chords * ds)])
    return s_hat, u_hat, chords


def _start(s: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Parameters of a monotone, convex curve near the data (the least-squares start)."""
    n = len(s)
    span_s = max(float(np.ptp(s)), 1e-12)
    ds = np.maximum(np.diff(s), 1e-3 * span_s / n)
    du = np.maximum(np.diff(u), 1e-3 * max(float(np.ptp(u)), 1e-12) / n)
    chords = np.maximum.accumulate(du / ds)
    dt = np.maximum(np.diff(chords), 1e-3 * chords[0] / n)
    return np.concatenate([[s[0]], np.log(ds), [u[0]], [math.log(chords[0])], np.log(dt)])


def convex_temperature(
    lrs: ArrayLike,
    energies: ArrayLike,
    entropies: ArrayLike,
    energy_se: ArrayLike | None = None,
    entropy_se: ArrayLike | None = None,
    *,
    reject: float = 3.0,
    resolve: float = 2.0,
) -> pd.DataFrame:
    """``T(eta)`` from the most likely increasing convex ``U(S)`` through the sweep's points
    (module docstring).

    Args:
        lrs: ``(n,)`` learning rates, distinct, ``n >= 3``.
        energies, entropies: ``(n,)`` stationary ``U`` and ``S`` per learning rate.
        energy_se, entropy_se: their standard errors (seeds' or a within-run bootstrap's);
            ``None``: every point weighted alike (then ``reject`` has no scale to work with,
            and rows are rejected only in units of 1% of the sweep's spread).
        reject: a row whose standardised distance to the fitted curve exceeds this is not
            valid (the data reject convexity there beyond their errors).
        resolve: a row is not valid either where its neighbours' measured ``S`` differ by
            less than this many standard errors (``S_{i+1} - S_{i-1}``, one neighbour at
            the ends): the chords' slope is then not determined by the data.

    Returns:
        one row per learning rate, ascending: ``lr, U, S, U_fit, S_fit, T, T_lo, T_hi``
        (the fitted chords on each side, ``NaN`` beyond the ends), ``distance`` (the
        standardised distance to the curve), ``end`` (a one-chord end row), ``valid`` and
        ``reason``; ``chi2`` of the whole fit in ``df.attrs["chi2"]``.

    Example:
        >>> import numpy as np
        >>> lrs = np.array([0.01, 0.02, 0.04, 0.08, 0.16])
        >>> T = 0.004 * lrs ** 0.85
        >>> df = convex_temperature(lrs, 3 * T, 3 * np.log(T))
        >>> round(float(df["T"][2] / T[2]), 3)  # the chords' geometric mean, as the paper's
        1.015
    """
    from scipy.optimize import least_squares

    lr = np.asarray(lrs, dtype=np.float64).reshape(-1)
    u = np.asarray(energies, dtype=np.float64).reshape(-1)
    s = np.asarray(entropies, dtype=np.float64).reshape(-1)
    n = len(lr)
    if not len(u) == len(s) == n:
        raise ValueError(f"`lrs`, `energies` and `entropies` must have equal lengths, got "
                         f"{n}, {len(u)}, {len(s)}.")
    if n < 3:
        raise ValueError(f"a temperature needs at least 3 learning rates, got {n}.")
    if not (np.isfinite(lr).all() and (lr > 0).all() and np.unique(lr).size == n):
        raise ValueError(f"`lrs` must be positive, finite and distinct, got {lr.tolist()}.")
    if not (np.isfinite(u).all() and np.isfinite(s).all()):
        raise ValueError("`energies`/`entropies` hold NaN or Inf: drop those runs first.")
    if not (math.isfinite(reject) and reject > 0):
        raise ValueError(f"`reject` must be a positive number, got {reject!r}.")
    if not (math.isfinite(resolve) and resolve >= 0):
        raise ValueError(f"`resolve` must be a number >= 0, got {resolve!r}.")
    order = np.argsort(lr)
    lr, u, s = lr[order], u[order], s[order]
    su, u_measured = _errors(
        u, None if energy_se is None else _sorted(energy_se, order, "energy_se"), "energy_se")
    ss, s_measured = _errors(
        s, None if entropy_se is None else _sorted(entropy_se, order, "entropy_se"),
        "entropy_se")

    def residuals(theta: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            s_hat, u_hat, _ = _curve(theta, n)
            out = np.concatenate([(s_hat - s) / ss, (u_hat - u) / su])
        return np.clip(np.nan_to_num(out, nan=1e100), -1e100, 1e100)

    fit = least_squares(residuals, _start(s, u), method="trf", x_scale="jac",
                        xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=200 * n)
    s_hat, u_hat, chords = _curve(fit.x, n)
    t_lo = np.concatenate([[np.nan], chords])
    t_hi = np.concatenate([chords, [np.nan]])
    t = np.sqrt(np.where(np.isnan(t_lo), t_hi, t_lo) * np.where(np.isnan(t_hi), t_lo, t_hi))
    distance = np.hypot((s_hat - s) / ss, (u_hat - u) / su)
    end = np.isnan(t_lo) | np.isnan(t_hi)
    reason = np.full(n, "", dtype=object)
    # the chords of row i span its neighbours' S: a slope over an S step that the errors do
    # not resolve is whatever the fit's start was (the data do not determine it)
    left, right = np.maximum(np.arange(n) - 1, 0), np.minimum(np.arange(n) + 1, n - 1)
    resolved = s[right] - s[left] > resolve * np.hypot(ss[right], ss[left])
    reason[~resolved] = (f"S changes by less than {resolve:g} standard errors across the "
                         "row's chords (to the rows beside it): the data do not determine its "
                         "slope")
    measured = u_measured or s_measured
    unit = " standard errors" if measured else "% of the sweep's spread"
    reason[distance > reject] = (f"the points reject a convex free energy here (more than "
                                 f"{reject:g}{unit} off the curve"
                                 f"{'' if measured else '; no standard errors to weigh by'})")
    reason[~(t > 0)] = "non-positive temperature"
    df = pd.DataFrame({"lr": lr, "U": u, "S": s, "U_fit": u_hat, "S_fit": s_hat, "T": t,
                       "T_lo": t_lo, "T_hi": t_hi, "distance": distance, "end": end,
                       "valid": reason == "", "reason": reason})
    df.attrs["chi2"] = float(np.sum(fit.fun**2))
    return df
