"""The toy problems of docs/reproduction.md ('The toy problems') in plain torch (vectorised over
learning rates).

A point ``x`` on the unit sphere in ``R^3``; per-object losses ``l_i(x) = (a_i . x)^2 /
||x||^2`` with unit vectors ``a_i``; SGD with batch size 1: draw an object, take its gradient
(tangent to the sphere, the loss being scale-invariant), step, renormalise.

- ``"op"`` (over-parameterised): ``a_1, a_2 = (sqrt3/2, +-1/2, 0)``; both losses vanish at
  ``+-(0, 0, 1)``.
- ``"up"`` (under-parameterised): ``a_i`` along ``(1, 0, 0.2)``, ``(-1/2, +-sqrt3/2, 0.2)``;
  the mean loss has its minimum ``0.04 / 1.04`` at ``+-(0, 0, 1)``.

:class:`~thermo_lightning.models.ToySphereModule` is the same problem as a LightningModule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from thermo_lightning._validation import positive_int

__all__ = ["ToyTrajectory", "simulate_toy", "toy_gradient_stats", "toy_objects"]

#: the paper's starting point (normalised)
TOY_X0 = (-0.8, 0.6, 0.1)


def toy_objects(kind: str) -> Tensor:
    """The unit vectors ``a_i`` of the toy problem ``kind`` (``"op"`` or ``"up"``), float64,
    shape ``(n_objects, 3)``."""
    s3 = math.sqrt(3.0)
    if kind == "op":
        a = torch.tensor([[s3 / 2, 0.5, 0.0], [s3 / 2, -0.5, 0.0]], dtype=torch.float64)
    elif kind == "up":
        a = torch.tensor([[1.0, 0.0, 0.2], [-0.5, s3 / 2, 0.2], [-0.5, -s3 / 2, 0.2]],
                         dtype=torch.float64)
    else:
        raise ValueError(f"`kind` must be 'op' or 'up', got {kind!r}.")
    return a / a.norm(dim=1, keepdim=True)


def _losses(a: Tensor, x: Tensor) -> Tensor:
    """``(..., n_objects)`` losses at points ``x`` ``(..., 3)``."""
    return (x @ a.T) ** 2 / (x * x).sum(-1, keepdim=True)


def _grads(a: Tensor, x: Tensor) -> Tensor:
    """``(..., n_objects, 3)`` per-object gradients ``2 (a.x) (a - (a.x) x) / ||x||^2`` at unit
    ``x``."""
    dots = x @ a.T  # (..., n)
    return 2.0 * dots[..., None] * (a - dots[..., None] * x[..., None, :])


def toy_gradient_stats(kind: str, x: Tensor) -> dict[str, Tensor]:
    """At unit points ``x`` ``(..., 3)``: the mean loss, ``||g||`` of the full gradient,
    the mean per-object gradient norm and the SNR ``||g|| / sqrt(mean_i ||g_i - g||^2)``
    (exact: the objects are the whole data set). The SNR is NaN where every gradient is
    exactly zero (converged to machine precision)."""
    a = toy_objects(kind).to(x)
    gi = _grads(a, x)
    g = gi.mean(-2)
    noise = ((gi - g[..., None, :]) ** 2).sum(-1).mean(-1).sqrt()
    g_norm = g.norm(dim=-1)
    return {
        "loss": _losses(a, x).mean(-1),
        "grad_norm": g_norm,
        "stoch_grad_norm": gi.norm(dim=-1).mean(-1),
        "snr": torch.where(noise > 0, g_norm / noise.clamp_min(1e-300),
                           torch.full_like(g_norm, float("nan"))),
    }


@dataclass(frozen=True)
class ToyTrajectory:
    """Per LR (rows) and recorded step (columns): the point, mean loss, ``||g||``, mean
    stochastic gradient norm and SNR."""

    lrs: Tensor
    steps: Tensor
    x: Tensor
    loss: Tensor
    grad_norm: Tensor
    stoch_grad_norm: Tensor
    snr: Tensor

    def tail_mean(self, name: str, fraction: float = 0.2) -> Tensor:
        """Mean of a quantity over the last ``fraction`` of the recorded steps, per LR (NaN
        entries, such as the SNR of an exactly converged point, are ignored)."""
        values = getattr(self, name)
        n = max(1, round(fraction * values.shape[1]))
        return values[:, -n:].nanmean(dim=1)


def simulate_toy(
    kind: str,
    lrs: Sequence[float],
    steps: int = 50_000,
    *,
    record_every: int = 50,
    seed: int = 0,
    x0: Sequence[float] = TOY_X0,
) -> ToyTrajectory:
    """Run the toy problem for every LR at once, float64, batch size 1 (an object drawn
    uniformly with replacement each step; the same draws for every LR).

    Args:
        kind: ``"op"`` or ``"up"``.
        lrs: learning rates (the paper: 80 from 1e-3 to 10).
        steps: SGD steps (the paper: 50,000).
        record_every: record the state every this many steps.
        seed: seed of the object draws.
        x0: starting point (normalised).
    """
    positive_int(steps, "steps")
    positive_int(record_every, "record_every")
    a = toy_objects(kind)
    lr = torch.as_tensor(list(lrs), dtype=torch.float64).reshape(-1, 1)
    if lr.numel() < 1 or not bool((lr > 0).all()):
        raise ValueError(f"`lrs` must be positive, got {lr.flatten().tolist()}.")
    x = torch.tensor(list(x0), dtype=torch.float64).expand(lr.shape[0], 3).clone()
    x = x / x.norm(dim=1, keepdim=True)
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randint(a.shape[0], (steps,), generator=gen)
    recorded_steps, points = [], []
    for t in range(1, steps + 1):
        ai = a[picks[t - 1]]
        dot = x @ ai  # (L,)
        grad = 2.0 * dot[:, None] * (ai - dot[:, None] * x)
        x = x - lr * grad
        x = x / x.norm(dim=1, keepdim=True)
        if t % record_every == 0:
            recorded_steps.append(t)
            points.append(x)
    xs = torch.stack(points, dim=1)  # (L, T, 3)
    stats = toy_gradient_stats(kind, xs)
    return ToyTrajectory(lrs=lr.flatten(), steps=torch.tensor(recorded_steps), x=xs,
                         loss=stats["loss"], grad_norm=stats["grad_norm"],
                         stoch_grad_norm=stats["stoch_grad_norm"], snr=stats["snr"])
