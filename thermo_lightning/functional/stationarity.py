"""Autocorrelation, effective sample size and a stationarity test for trajectory windows.

Consecutive SGD iterates are strongly correlated: a window of ``N`` consecutive snapshots
holds far fewer than ``N`` independent samples, and k-NN entropy on such a window measures
the step size, not the stationary distribution (METHOD.md section 8: ``T`` comes out about 2x
too low). These tools say how many effective samples a window holds and how far apart
snapshots must be for the window to be (nearly) i.i.d.

Integrated autocorrelation time of a series with normalised autocorrelation ``rho(t)``:

.. math::  \\tau = 1 + 2 \\sum_{t=1}^{M} \\rho(t), \\qquad \\mathrm{ESS} = N / \\tau

with Sokal's automatic window: the smallest ``M`` with ``M >= c * tau(M)`` (``c = 5``). For
an AR(1) series with coefficient ``phi``, ``tau = (1 + phi) / (1 - phi)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "StationarityResult",
    "autocorrelation",
    "effective_sample_size",
    "integrated_autocorrelation_time",
    "raw_window_projections",
    "stationarity_test",
    "window_autocorrelation_time",
    "window_effective_sample_size",
    "window_projections",
]

_PROJECTION_CHUNK = 1 << 16


def _series(x: Sequence[float] | np.ndarray | Tensor, name: str = "series") -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise ValueError(f"`{name}` must be 1-D (n,) or 2-D (C, n), got shape {arr.shape}.")
    if arr.shape[-1] < 4:
        raise ValueError(f"`{name}` needs at least 4 values, got {arr.shape[-1]}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or Inf.")
    return arr


def autocorrelation(series: Sequence[float] | np.ndarray | Tensor) -> np.ndarray:
    """Normalised autocorrelation ``rho(t)`` for lags ``0..n-1`` (FFT, biased estimator).

    Args:
        series: ``(n,)`` or ``(C, n)`` (one row per series).

    Returns:
        Same shape as ``series``; ``rho(0) = 1``. A constant series gives ``rho = 1`` at lag
        0 and 0 elsewhere.
    """
    x = _series(series)
    x = x - x.mean(axis=-1, keepdims=True)
    n = x.shape[-1]
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x, n=size, axis=-1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=-1)[..., :n]
    var = acov[..., :1]
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(var > 0, acov / np.where(var > 0, var, 1.0), 0.0)
    rho[..., 0] = 1.0
    return rho


def integrated_autocorrelation_time(
    series: Sequence[float] | np.ndarray | Tensor, *, c: float = 5.0, pooled: bool = False
) -> float | np.ndarray:
    """Integrated autocorrelation time with Sokal's automatic window.

    Args:
        series: ``(n,)`` or ``(C, n)``.
        c: window constant (5 is the usual choice; larger is safer for slow decay).
        pooled: for ``(C, n)``, average the normalised autocorrelations of the rows first
            and return one ``tau`` (rows that sample the same process: far less noisy).

    Returns:
        ``tau >= 1`` (a float), or one per row for 2-D input unless ``pooled``. When no window
        satisfies ``M >= c tau`` inside the series (it is too short for its correlation), the
        value at the largest window is returned: a lower bound.
    """
    if not c > 0:
        raise ValueError(f"`c` must be positive, got {c!r}.")
    x = _series(series)
    rho = np.atleast_2d(autocorrelation(x))
    if pooled:
        rho = rho.mean(axis=0, keepdims=True)
    n = rho.shape[-1]
    taus = 1.0 + 2.0 * np.cumsum(rho[:, 1:], axis=1)  # taus[:, M-1] = tau(M)
    m = np.arange(1, n)
    ok = m[None, :] >= c * taus
    first = np.where(ok.any(axis=1), ok.argmax(axis=1), n - 2)
    tau = np.maximum(taus[np.arange(rho.shape[0]), first], 1.0)
    return float(tau[0]) if x.ndim == 1 or pooled else tau


def effective_sample_size(
    series: Sequence[float] | np.ndarray | Tensor, *, c: float = 5.0
) -> float | np.ndarray:
    """``n / tau``: the number of effectively independent values in the series."""
    x = _series(series)
    return x.shape[-1] / integrated_autocorrelation_time(x, c=c)


@functools.lru_cache(maxsize=16)
def _chunk_directions(chunk: int, n_directions: int, seed: int) -> Tensor:
    """Random directions for global columns ``[chunk * 65536, (chunk + 1) * 65536)``: one
    generator per chunk, so any slice of coordinates can regenerate its own part. Float32;
    the last 16 chunks are cached (a window's projections reuse them at every logging
    point)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + chunk)
    return torch.randn(_PROJECTION_CHUNK, n_directions, generator=gen)


def raw_window_projections(
    window: Tensor, n_directions: int = 8, *, seed: int = 0, column_offset: int = 0
) -> Tensor:
    """Projections of a centred window (or a slice of its columns starting at global column
    ``column_offset``) on fixed Gaussian directions, not normalised.

    Summing the results of the column slices of a window gives the result of the whole
    window: sharded windows under DDP all-reduce them.

    Returns:
        ``(N, n_directions)`` float64 tensor on the window's device.
    """
    x = torch.as_tensor(window)
    if x.ndim != 2:
        raise ValueError(f"`window` must be (N, D), got shape {tuple(x.shape)}.")
    if isinstance(n_directions, bool) or not isinstance(n_directions, int) or n_directions < 1:
        raise ValueError(f"`n_directions` must be a positive integer, got {n_directions!r}.")
    n, d = x.shape
    proj = torch.zeros(n, n_directions, dtype=torch.float64, device=x.device)
    col = 0
    with torch.no_grad():
        while col < d:
            g = column_offset + col
            chunk, within = divmod(g, _PROJECTION_CHUNK)
            w = min(_PROJECTION_CHUNK - within, d - col)
            dirs = _chunk_directions(chunk, n_directions, seed)[within : within + w]
            xc = x[:, col : col + w]
            dtype = torch.float64 if xc.dtype == torch.float64 else torch.float32
            # centring needs no precision here: the projections feed autocorrelations
            part = (xc - xc.mean(dim=0, keepdim=True)).to(dtype) @ dirs.to(x.device, dtype)
            proj += part.to(torch.float64)
            col += w
    return proj


def window_projections(window: Tensor | np.ndarray, n_directions: int = 8, *,
                       seed: int = 0) -> Tensor:
    """Project a centred window ``(N, D)`` on fixed random unit directions.

    The directions depend only on ``(D, n_directions, seed)``: the same for every window of
    a run, so projections of successive windows are comparable. They are generated slice by
    slice of coordinates, so the extra memory is ``O(N * n_directions + 65536 * n_directions)``
    whatever ``D`` is.

    Returns:
        ``(n_directions, N)`` float64 tensor on the window's device.
    """
    x = torch.as_tensor(window)
    proj = raw_window_projections(x, n_directions, seed=seed)
    d = x.shape[1]
    norm_sq = torch.zeros(n_directions, dtype=torch.float64)
    for chunk in range((d + _PROJECTION_CHUNK - 1) // _PROJECTION_CHUNK):
        dirs = _chunk_directions(chunk, n_directions, seed).double()
        norm_sq += dirs[: d - chunk * _PROJECTION_CHUNK].square().sum(dim=0)
    return (proj / norm_sq.sqrt().to(proj.device)).T.contiguous()


def window_autocorrelation_time(
    window: Tensor | np.ndarray, n_directions: int = 8, *, seed: int = 0, c: float = 5.0,
    reduce: str = "max",
) -> float:
    """Integrated autocorrelation time of a trajectory window (rows in time order).

    Computed on the window's projections onto ``n_directions`` fixed random directions
    (:func:`window_projections`) and reduced by ``"max"`` (default: the slowest direction
    decides, a conservative choice) or ``"median"``.
    """
    if reduce not in ("max", "median"):
        raise ValueError(f"`reduce` must be 'max' or 'median', got {reduce!r}.")
    taus = integrated_autocorrelation_time(
        window_projections(window, n_directions, seed=seed).cpu().numpy(), c=c
    )
    return float(np.max(taus) if reduce == "max" else np.median(taus))


def window_effective_sample_size(
    window: Tensor | np.ndarray, n_directions: int = 8, *, seed: int = 0, c: float = 5.0,
    reduce: str = "max",
) -> float:
    """``N / tau`` for a trajectory window (see :func:`window_autocorrelation_time`)."""
    n = torch.as_tensor(window).shape[0]
    return n / window_autocorrelation_time(window, n_directions, seed=seed, c=c, reduce=reduce)


@dataclass(frozen=True)
class StationarityResult:
    """Outcome of :func:`stationarity_test`.

    Attributes:
        z: ``(mean_first - mean_last) / standard error`` (autocorrelation-corrected).
        p_value: two-sided normal p-value of ``z``.
        stationary: ``p_value >= alpha``.
        mean_first, mean_last: the two means compared.
    """

    z: float
    p_value: float
    stationary: bool
    mean_first: float
    mean_last: float


def stationarity_test(
    series: Sequence[float] | np.ndarray | Tensor,
    *,
    first: float = 0.1,
    last: float = 0.5,
    alpha: float = 0.05,
    c: float = 5.0,
) -> StationarityResult:
    """Geweke-style test: do the early and late parts of a series agree within their noise?

    .. math::  z = \\frac{\\bar x_{first} - \\bar x_{last}}
                 {\\sqrt{\\tau \\, (\\sigma^2_{first} / n_{first}
                 + \\sigma^2_{last} / n_{last})}}

    with ``tau`` the integrated autocorrelation time of the whole series after removing its
    linear trend. Measured on AR(1) series (``phi <= 0.9``, ``n >= 5000``): false-alarm rate
    close to ``alpha``.

    Args:
        series: ``(n,)`` values in time order (e.g. the loss at every step, or a window's
            projection on a random direction), ``n >= 20``.
        first, last: fractions of the series forming the early and late parts.
        alpha: significance level; ``stationary = p_value >= alpha``.
        c: Sokal window constant for the autocorrelation times.
    """
    x = _series(series)
    if x.ndim != 1:
        raise ValueError("`series` must be 1-D for stationarity_test.")
    if not (0 < first < 1 and 0 < last < 1 and first + last <= 1):
        raise ValueError(f"`first` and `last` must be in (0, 1) with first + last <= 1, got "
                         f"{first!r}, {last!r}.")
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must be in (0, 1), got {alpha!r}.")
    n = len(x)
    if n < 20:
        raise ValueError(f"`series` needs at least 20 values for a stationarity test, got {n}.")
    a = x[: max(4, round(first * n))]
    b = x[n - max(4, round(last * n)) :]
    # One autocorrelation time for both parts, from the whole series with its linear trend
    # removed: short parts underestimate tau (too many false alarms), and a drift left in
    # would inflate it (no power).
    t = np.arange(n, dtype=np.float64)
    residual = x - np.polyval(np.polyfit(t, x, 1), t)
    tau = integrated_autocorrelation_time(residual, c=c)
    se = math.sqrt(tau * (a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    diff = float(a.mean() - b.mean())
    if se == 0:
        z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    else:
        z = diff / se
    p = math.erfc(abs(z) / math.sqrt(2.0))
    return StationarityResult(z=z, p_value=p, stationary=p >= alpha,
                              mean_first=float(a.mean()), mean_last=float(b.mean()))
