"""CorrelationPilot: the correlation time of a run's weights, measured once from a long series.

``stride="auto"`` needs the integrated autocorrelation time ``tau`` of the SI weights (in
optimiser steps) to thin the window to about one snapshot per ``tau``. Estimating ``tau`` from
one window of ``N`` consecutive snapshots fails: with ``tau`` comparable to ``N`` the estimate
is a noisy lower bound, and learning rates of one sweep then get inconsistent strides (hence
windows of different effective sample sizes, whose entropy biases do not cancel in ``T``).

The pilot instead records, at every optimiser step of the run's first ``length`` steps, the
projections ``p_j(t) = <w(t), u_j>`` of the SI vector on ``n_directions`` fixed random
Gaussian directions ``u_j``, each supported on the same random subset of at most ``65536``
coordinates (so a step costs ``O(min(D, 65536) * n_directions)`` whatever ``D`` is). It keeps
at most ``max_points`` values per direction (every ``thin``-th step when the pilot is longer).
At the end, the first quarter of the series is dropped (the run is relaxing there), the
normalised autocorrelations of the directions are averaged (pooled: far less noisy than each
alone) and Sokal's automatic window gives

.. math::  \\tau = \\mathrm{thin} \\cdot \\Big(1 + 2 \\sum_{t=1}^{M} \\bar\\rho(t)\\Big).

Memory: ``max_points * n_directions`` float64 numbers (256 KiB by default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from thermo_lightning._validation import positive_int
from thermo_lightning.functional.stationarity import corrected_autocorrelation_time

__all__ = ["CorrelationPilot", "auto_stride", "pilot_length", "stride_cap"]

_MAX_COORDINATES = 1 << 16
_BURN_IN_FRACTION = 0.25
_PILOT_FRACTION = 0.1  # stride="auto": the pilot lasts this share of the run ...
_PILOT_RANGE = (100, 200_000)  # ... within these bounds (steps)
_PILOT_UNKNOWN_LENGTH = 2000  # ... or this many steps when the run's length is unknown
_FILL_FRACTION = 0.5  # stride="auto" never makes a window longer than this share of the rest
_STRIDE_PER_TAU = 1.0  # stride="auto": snapshots this many correlation times apart
# a capped stride is worth a warning below this share of the wanted one (at 0.8 tau the
# thinned AR(1) time is 1.5 snapshots, against 1.3 at tau: no real difference)
_CAP_WARN_FRACTION = 0.8


def pilot_length(max_steps: int | None) -> int:
    """Steps of the ``stride="auto"`` pilot: a tenth of the run within [100, 200000] (2000
    when the run's length is unknown)."""
    if not max_steps:
        return _PILOT_UNKNOWN_LENGTH
    return min(max(round(_PILOT_FRACTION * max_steps), _PILOT_RANGE[0]), _PILOT_RANGE[1])


def stride_cap(max_steps: int | None, length: int, window: int, max_stride: int) -> int:
    """The largest stride ``stride="auto"`` may choose: a window of ``window`` snapshots
    must fill within half of the steps left after the pilot of ``length`` steps (and at most
    ``max_stride``)."""
    if not max_steps:
        return max_stride
    return max(1, min(max_stride, int(_FILL_FRACTION * max(max_steps - length, 0)) // window))


def capped_advice(tau: float, window: int, max_steps: int, length: int) -> str:
    """What a run whose stride was capped needs, in numbers: the run length at which a window
    of ``window`` snapshots ``ceil(tau)`` apart fills within half of the steps after the
    pilot, and the largest window that does so in this run (``max_steps``)."""
    wanted = max(1, math.ceil(_STRIDE_PER_TAU * tau))
    needed = length + math.ceil(wanted * window / _FILL_FRACTION)
    fits = int(_FILL_FRACTION * max(max_steps - length, 0)) // wanted
    smaller = (f", or pass `window={fits}` (the largest window that fills in this run at "
               f"stride {wanted}; fewer snapshots, a noisier S)" if fits >= 10 else "")
    return f"Train for at least {needed} steps at this window{smaller}."


def low_ess_advice(step: int, ess: float, window: int, auto: bool) -> str:
    """The warning for windows whose effective sample size stays low (``auto``: the stride
    is ``"auto"``)."""
    return (f"ThermoMeter: the window at step {step} has an effective sample size of "
            f"{ess:.0f} of {window} snapshots: consecutive snapshots are correlated and S "
            "(hence T) is biased low. "
            + ("The weights have correlations slower than the pilot measured, or thinning is "
               "capped so that a window fits in the run: train longer, or pass a smaller "
               "`window` (fewer snapshots, farther apart)." if auto else
               "Use stride='auto' (one snapshot per correlation time) or a larger stride."))


def auto_stride(tau: float, cap: int) -> tuple[int, bool]:
    """``stride="auto"``'s stride for a correlation time of ``tau`` steps: ``ceil(tau)``
    within ``cap``; and whether the cap cut it enough to be worth a warning (below 0.8 of
    the wanted one)."""
    wanted = max(1, math.ceil(_STRIDE_PER_TAU * tau))
    stride = min(wanted, cap)
    return stride, stride < _CAP_WARN_FRACTION * wanted


class CorrelationPilot:
    """Record weight projections for ``length`` steps, then give the correlation time.

    Args:
        num_features: ``D``, scalars in the parameter group (the concatenation of the tensors
            passed to :meth:`record`, flattened in order).
        length: steps the pilot lasts.
        n_directions: random directions.
        max_points: values kept per direction (the series is thinned beyond that).
        seed: seed of the coordinate subset and the directions.
    """

    def __init__(self, num_features: int, length: int, *, n_directions: int = 8,
                 max_points: int = 4096, seed: int = 0) -> None:
        self.num_features = positive_int(num_features, "num_features")
        self.length = positive_int(length, "length")
        self.n_directions = positive_int(n_directions, "n_directions")
        self.max_points = positive_int(max_points, "max_points")
        self.thin = math.ceil(self.length / self.max_points)
        gen = torch.Generator().manual_seed(int(seed))
        m = min(self.num_features, _MAX_COORDINATES)
        coords = (torch.arange(self.num_features) if m == self.num_features
                  else torch.randperm(self.num_features, generator=gen)[:m].sort().values)
        self._coords = coords
        self._directions = torch.randn(m, self.n_directions, generator=gen, dtype=torch.float64)
        self._series = np.zeros((self.length // self.thin + 1, self.n_directions))
        self.steps = 0  # optimiser steps seen
        self.points = 0  # values recorded per direction
        self._cache: tuple[tuple[int, ...], list[tuple[Tensor, Tensor]]] | None = None

    @property
    def done(self) -> bool:
        """Whether the pilot has seen its ``length`` steps."""
        return self.steps >= self.length

    def _pieces(self, params: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """Per tensor: the local indices of the chosen coordinates and their rows of the
        directions (computed once per group layout)."""
        layout = tuple(p.numel() for p in params)
        if self._cache is None or self._cache[0] != layout:
            if sum(layout) != self.num_features:
                raise ValueError(f"the pilot was set up for {self.num_features} numbers, the "
                                 f"parameters hold {sum(layout)}.")
            pieces, start = [], 0
            for p, n in zip(params, layout, strict=True):
                lo = int(torch.searchsorted(self._coords, start))
                hi = int(torch.searchsorted(self._coords, start + n))
                if hi > lo:
                    idx = (self._coords[lo:hi] - start).to(p.device)
                    pieces.append((idx, self._directions[lo:hi].to(p.device)))
                else:
                    pieces.append((torch.empty(0, dtype=torch.long), self._directions[:0]))
                start += n
            self._cache = (layout, pieces)
        return self._cache[1]

    @torch.no_grad()
    def record(self, params: Sequence[Tensor]) -> None:
        """After an optimiser step: count it, and store the projections when it falls on the
        pilot's thinning (nothing once the pilot is done)."""
        if self.done:
            return
        self.steps += 1
        if self.steps % self.thin:
            return
        total: Tensor | None = None
        for p, (idx, dirs) in zip(params, self._pieces(params), strict=True):
            if idx.numel() == 0:
                continue
            part = p.detach().reshape(-1)[idx].to(torch.float64) @ dirs
            total = part if total is None else total + part
        if total is not None and self.points < self._series.shape[0]:
            self._series[self.points] = total.cpu().numpy()
            self.points += 1

    def correlation_time(self) -> float:
        """``tau`` in optimiser steps (``>= thin``) from the recorded series without its first
        quarter; ``nan`` when fewer than 16 values remain or the series is not finite."""
        start = int(_BURN_IN_FRACTION * self.points)
        series = self._series[start:self.points].T
        if series.shape[1] < 16 or not np.all(np.isfinite(series)):
            return math.nan
        keep = np.ptp(series, axis=1) > 0  # exact: a constant row has max == min
        if not keep.any():  # the weights did not move: any stride will do
            return float(self.thin)
        tau = corrected_autocorrelation_time(series[keep], pooled=True)
        return float(tau) * self.thin

    def resolved_up_to(self) -> float:
        """The longest correlation time (steps) the recorded series resolves: a fifth of the
        span it is measured on (beyond that :meth:`correlation_time` is a lower bound)."""
        points = self.points - int(_BURN_IN_FRACTION * self.points)
        return self.thin * points / 5

    def describe(self, tau: float) -> str:
        """``tau`` in words for the meter's messages: ``"21.3 steps"``, or ``"at least 150
        steps (more than a pilot of 200 steps resolves)"`` where it is only a lower bound."""
        if tau <= self.resolved_up_to():
            return f"{tau:.1f} steps"
        return f"at least {tau:.0f} steps (more than a pilot of {self.length} steps resolves)"

    def state_dict(self) -> dict[str, Any]:
        """The series recorded so far and the counters (a few hundred KiB at most)."""
        return {"steps": self.steps, "points": self.points,
                "series": self._series[:self.points].tolist()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue a pilot from :meth:`state_dict` (of a pilot with the same settings)."""
        series = np.asarray(state.get("series", []), dtype=np.float64).reshape(
            -1, self.n_directions)[: self._series.shape[0]]
        self.points = len(series)
        self._series[: self.points] = series
        self.steps = int(state.get("steps", 0))
