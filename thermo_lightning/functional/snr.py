"""Gradient signal-to-noise ratio (docs/concepts.md, section 5).

With ``g`` the full-data gradient and ``g_b`` mini-batch gradients at the same weights:

.. math::  \\mathrm{SNR} = \\frac{\\lVert g \\rVert}{\\sqrt{\\frac1K \\sum_b \\lVert g_b - g
           \\rVert^2}}

When ``g`` is not available (it costs a full pass over the data) it is estimated from the
``K`` batch gradients alone, without bias:

.. math::
    \\widehat{\\lVert g \\rVert^2} = \\frac{1}{K(K-1)} \\sum_{i \\ne j} \\langle g_i, g_j
    \\rangle = \\frac{\\lVert \\sum_i g_i \\rVert^2 - \\sum_i \\lVert g_i \\rVert^2}{K(K-1)},
    \\qquad
    \\widehat{\\operatorname{tr}\\Sigma} = \\frac{1}{K-1} \\sum_i \\lVert g_i - \\bar g
    \\rVert^2

(``E<g_i, g_j> = ||g||^2`` for independent batches, whereas ``||g_bar||^2`` overestimates
``||g||^2`` by ``tr(Sigma) / K``). The gradient noise scale ``tr(Sigma) / ||g||^2`` is
``1 / SNR^2``; multiplied by the batch size it is McCandlish et al.'s ``B_simple``.

The same private update/compute pair serves :func:`gradient_snr` (all gradients at once) and
:class:`GradientSNRAccumulator` (one gradient at a time, ``O(D)`` memory).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["GradientSNRAccumulator", "gradient_snr"]


@dataclass
class _SNRState:
    """The running sums, float64 tensors on the gradients' device (no host sync while
    gradients are folded in; :func:`_snr_compute` reads them once)."""

    count: Tensor  # (): number of gradients
    sum_grad: Tensor  # (D,): sum_i g_i
    sum_sq_norm: Tensor  # (): sum_i ||g_i||^2
    sum_norm: Tensor  # (): sum_i ||g_i||
    sum_sq_dev: Tensor  # (): sum_i ||g_i - g||^2 (only with a full gradient)


def _as_grads(x: Tensor | np.ndarray, name: str) -> Tensor:
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"`{name}` contains NaN or Inf.")
    return t.detach()


def _snr_update(state: _SNRState | None, grads: Tensor, full_grad: Tensor | None) -> _SNRState:
    """Fold a block of batch gradients ``(K, D)`` into the running sums (float64)."""
    g = grads.to(torch.float64)
    sq_norms = g.square().sum(dim=1)
    if state is None:
        zero = torch.zeros((), dtype=torch.float64, device=g.device)
        state = _SNRState(zero, torch.zeros(g.shape[1], dtype=torch.float64, device=g.device),
                          zero, zero, zero)
    dev = (torch.zeros_like(state.sum_sq_dev) if full_grad is None
           else (g - full_grad.to(torch.float64)).square().sum())
    return _SNRState(state.count + g.shape[0], state.sum_grad + g.sum(dim=0),
                     state.sum_sq_norm + sq_norms.sum(), state.sum_norm + sq_norms.sqrt().sum(),
                     state.sum_sq_dev + dev)


def _snr_compute(state: _SNRState, full_grad: Tensor | None) -> dict[str, float]:
    k = round(float(state.count))
    sum_sq_norm, sum_sq_dev = float(state.sum_sq_norm), float(state.sum_sq_dev)
    mean_stoch = float(state.sum_norm) / k
    sum_sq = float(state.sum_grad.square().sum())  # ||sum_i g_i||^2
    if full_grad is not None:
        g_sq = float(full_grad.to(torch.float64).square().sum())
        noise_sq = sum_sq_dev / k
        g_sq_unbiased = g_sq
    else:
        if k < 2:
            raise ValueError("the unbiased estimate needs at least K=2 batch gradients.")
        g_sq_unbiased = (sum_sq - sum_sq_norm) / (k * (k - 1))
        noise_sq = max((sum_sq_norm - sum_sq / k) / (k - 1), 0.0)
        # not positive: the signal is below what K batches resolve. NaN says so; a 0 would
        # be averaged in as a measurement (and the positive draws bias the mean up)
        g_sq = g_sq_unbiased if g_sq_unbiased > 0 else math.nan
    g_norm = math.sqrt(g_sq)
    noise = math.sqrt(noise_sq)
    if math.isnan(g_norm):
        snr = noise_scale = math.nan
    else:
        snr = g_norm / noise if noise > 0 else (math.inf if g_norm > 0 else math.nan)
        noise_scale = noise_sq / g_sq if g_sq > 0 else math.inf
    return {
        "snr": snr,
        "full_grad_norm": g_norm,
        "noise_rms": noise,
        "mean_stoch_grad_norm": mean_stoch,
        "noise_scale": noise_scale,
        "full_grad_sq_unbiased": g_sq_unbiased,
        "num_batches": float(k),
    }


def _check_shapes(batch_grads: Tensor, full_grad: Tensor | None) -> None:
    if batch_grads.ndim != 2:
        raise ValueError(
            f"`batch_grads` must be (K, D): K flattened mini-batch gradients, got shape "
            f"{tuple(batch_grads.shape)}."
        )
    if full_grad is not None and full_grad.reshape(-1).shape[0] != batch_grads.shape[1]:
        raise ValueError(
            f"`full_grad` must have D={batch_grads.shape[1]} elements, got "
            f"{full_grad.numel()}."
        )


def gradient_snr(
    batch_grads: Tensor | np.ndarray, full_grad: Tensor | np.ndarray | None = None
) -> dict[str, float]:
    """Gradient signal-to-noise ratio from mini-batch gradients.

    Args:
        batch_grads: ``(K, D)`` flattened mini-batch gradients at the same weights.
        full_grad: ``(D,)`` full-data gradient. Given: the paper's definition. ``None``: the
            unbiased pairwise estimate of ``||g||^2`` (needs ``K >= 2``).

    Returns:
        ``snr``, ``full_grad_norm`` (``||g||``, estimated when not given), ``noise_rms``
        (``sqrt(mean_b ||g_b - g||^2)``, or ``sqrt(tr Sigma)`` estimated), ``mean_stoch_grad_norm``
        (``mean_b ||g_b||``), ``noise_scale`` (``tr Sigma / ||g||^2``), ``full_grad_sq_unbiased``
        (the raw estimate of ``||g||^2``, which can be negative when the signal is below the
        noise) and ``num_batches``. Where that raw estimate is not positive, ``snr``,
        ``full_grad_norm`` and ``noise_scale`` are NaN: the signal is below what ``K`` batches
        resolve (pass ``full_grad`` or more batches).

    Example:
        >>> g = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
        >>> gradient_snr(g, full_grad=torch.tensor([2.0, 0.0]))["snr"]
        2.0
    """
    bg = _as_grads(batch_grads, "batch_grads")
    fg = None if full_grad is None else _as_grads(full_grad, "full_grad").reshape(-1)
    _check_shapes(bg, fg)
    k = bg.shape[0]
    if k < (1 if fg is not None else 2):
        raise ValueError(
            f"`batch_grads` needs K >= {1 if fg is not None else 2} rows "
            f"{'' if fg is not None else '(or pass `full_grad`) '}, got K={k}."
        )
    if fg is not None:
        fg = fg.to(bg.device)
    return _snr_compute(_snr_update(None, bg, fg), fg)


class GradientSNRAccumulator(Metric):
    """Accumulate mini-batch gradients one at a time and compute :func:`gradient_snr`.

    A :class:`torchmetrics.Metric`: ``O(D)`` float64 states (the running sum of gradients and
    four scalars), all summed across processes when torchmetrics synchronises them (in
    ``compute()`` under an initialised ``torch.distributed``), so the one ratio is taken
    after the reduction. :meth:`reduce_with` does the same through any reduction function
    instead (e.g. a Lightning strategy's ``reduce``); build the metric with
    ``sync_on_compute=False`` when you use it.

    Args:
        full_grad: optional ``(D,)`` full-data gradient (the paper's definition).
        **kwargs: passed to :class:`torchmetrics.Metric` (``sync_on_compute``,
            ``process_group``, ...).

    Example:
        >>> acc = GradientSNRAccumulator()
        >>> for g in torch.tensor([[1.0, 0.0], [3.0, 0.0]]):
        ...     acc.update(g)
        >>> acc.compute()["full_grad_sq_unbiased"]  # <g_1, g_2>, the only pair
        3.0
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False
    n: Tensor
    sum_grad: Tensor
    sum_sq_norm: Tensor
    sum_norm: Tensor
    sum_sq_dev: Tensor

    def __init__(self, full_grad: Tensor | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.full_grad = (
            None if full_grad is None else _as_grads(full_grad, "full_grad").reshape(-1)
        )
        zero = torch.tensor(0.0, dtype=torch.float64)
        # sum_grad starts as a scalar 0 and takes the gradients' shape (D,) at the first
        # update (D is not known before); reset() returns it to the scalar
        for name in ("n", "sum_grad", "sum_sq_norm", "sum_norm", "sum_sq_dev"):
            self.add_state(name, default=zero.clone(), dist_reduce_fx="sum")

    @property
    def count(self) -> int:
        """Number of gradients folded in so far."""
        return round(float(self.n))

    def _state(self) -> _SNRState | None:
        """The metric's states as the running sums; ``None`` before the first gradient
        (``sum_grad`` is still the scalar 0 then, as after ``reset()``)."""
        if self.sum_grad.ndim == 0:
            return None
        return _SNRState(self.n, self.sum_grad, self.sum_sq_norm, self.sum_norm,
                         self.sum_sq_dev)

    def update(self, grad: Tensor) -> None:
        """Add one flattened gradient ``(D,)`` (or a block ``(K, D)``)."""
        g = _as_grads(grad, "grad")
        g = g.reshape(1, -1) if g.ndim <= 1 else g
        _check_shapes(g, self.full_grad)
        if self.sum_grad.ndim == 1 and g.shape[1] != self.sum_grad.shape[0]:
            raise ValueError(
                f"`grad` has D={g.shape[1]}, earlier gradients had D={self.sum_grad.shape[0]}."
            )
        fg = None if self.full_grad is None else self.full_grad.to(g.device)
        state = _snr_update(self._state(), g, fg)
        self.n, self.sum_grad, self.sum_sq_norm, self.sum_norm, self.sum_sq_dev = (
            state.count, state.sum_grad, state.sum_sq_norm, state.sum_norm, state.sum_sq_dev)

    def compute(self) -> dict[str, float]:
        """The same dictionary as :func:`gradient_snr`."""
        need = 1 if self.full_grad is not None else 2
        if self.count < need:
            raise ValueError(f"need at least {need} gradients, got {self.count}.")
        state = self._state()
        assert state is not None, "state exists once count >= 1"
        fg = None if self.full_grad is None else self.full_grad.to(state.sum_grad.device)
        return _snr_compute(state, fg)

    def reduce_with(self, reduce_fn: Callable[[Tensor], Tensor]) -> None:
        """Replace the running sums by their sums over processes: ``reduce_fn`` sums a tensor
        across ranks (e.g. an all-reduce). Every rank must call it, each with gradients of its
        own batches; afterwards :meth:`compute` gives the SNR of all of them, so the ratio is
        taken once, after the reduction (the mean of per-rank ratios is biased)."""
        if self.count == 0:
            raise ValueError("reduce_with() needs at least one gradient on every rank.")
        scalars = torch.stack([self.n, self.sum_sq_norm, self.sum_norm, self.sum_sq_dev])
        packed = reduce_fn(torch.cat([scalars.to(self.sum_grad.device), self.sum_grad]))
        self.n, self.sum_sq_norm, self.sum_norm, self.sum_sq_dev = (
            v.to(self.n.device) for v in packed[:4].clone())
        self.sum_grad = packed[4:].clone()
        self._computed = None  # torchmetrics' cached result is stale
