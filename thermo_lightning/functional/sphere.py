"""Geometry of the sphere of scale-invariant (SI) weights.

The SI parameters of a network are treated as one vector ``w`` (the concatenation of all SI
tensors). Training keeps ``||w|| = rho`` (docs/sphere.md): after every optimiser step,

.. math::  w \\leftarrow \\rho \\, w / \\lVert w \\rVert .

For a scale-invariant loss the gradient is orthogonal to ``w``, so "step, then rescale" is
projected (retraction) SGD, and the effective learning rate is ``lr / ||w||^2``.

Every function takes either one tensor or a sequence of tensors (the SI group); norms are
accumulated in float32 or wider whatever the parameters' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

TensorOrTensors = Tensor | Sequence[Tensor]

__all__ = [
    "effective_lr",
    "joint_norm",
    "project_to_sphere_",
    "sphere_distance_to_radius",
    "tangent_projection",
]


def _as_list(tensors: TensorOrTensors) -> list[Tensor]:
    if isinstance(tensors, Tensor):
        return [tensors]
    out = list(tensors)
    if not out:
        raise ValueError("`tensors` is empty: pass at least one tensor of the SI group.")
    for t in out:
        if not isinstance(t, Tensor):
            raise TypeError(f"`tensors` must hold torch.Tensor objects, got {type(t).__name__}.")
    return out


def _accumulation_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def joint_norm(tensors: TensorOrTensors) -> Tensor:
    """Euclidean norm of the concatenation of ``tensors``: ``sqrt(sum_t ||t||^2)``.

    Args:
        tensors: a tensor or a sequence of tensors of any shapes, on one device.

    Returns:
        A 0-dim tensor (float32, or float64 when the inputs are float64) on the tensors'
        device. Gradients are not tracked.

    Example:
        >>> joint_norm([torch.tensor([3.0]), torch.tensor([[4.0]])])
        tensor(5.)
    """
    ts = _as_list(tensors)
    acc = _accumulation_dtype(ts[0])
    with torch.no_grad():
        sq = torch.stack(
            [torch.linalg.vector_norm(t.detach(), dtype=acc).square() for t in ts]
        ).sum()
        return sq.sqrt()


def project_to_sphere_(
    tensors: TensorOrTensors, radius: float = 1.0, *, per_tensor: bool = False,
    check: bool = True,
) -> Tensor:
    """Rescale ``tensors`` in place so that their joint norm equals ``radius``.

    .. math::  w \\leftarrow \\rho \\, w / \\lVert w \\rVert

    Args:
        tensors: the SI group (modified in place).
        radius: the target norm ``rho > 0``.
        per_tensor: rescale every tensor to norm ``radius`` on its own instead of one joint
            norm (the paper uses the joint norm).
        check: raise when a norm is zero or not finite. This reads the norm on the host (a
            synchronisation on GPU); ``check=False`` keeps everything on the device and leaves
            the check to the caller (the returned norms). The joint norm of float32/float64
            tensors of one dtype on one device is one fused kernel: this is also the
            per-step projection of :class:`~thermo_lightning.projector.SphereProjector`.

    Returns:
        The norm(s) before projection: a 0-dim tensor, or a 1-D tensor (one per tensor) when
        ``per_tensor``.

    Raises:
        ValueError: ``radius`` is not positive, or (with ``check``) a norm is zero or not
            finite (the weights cannot be put on the sphere; check the initialisation and the
            loss for NaNs).
    """
    if not radius > 0:
        raise ValueError(f"`radius` must be positive, got {radius!r}.")
    ts = _as_list(tensors)
    with torch.no_grad():
        if per_tensor:
            norms = torch.stack([joint_norm(t) for t in ts])
        else:
            norms = _fast_joint_norm(ts).reshape(1)
        if check:
            values = norms.tolist()
            if not all(math.isfinite(v) and v > 0 for v in values):
                raise ValueError(
                    f"cannot project onto the sphere: norm(s) {values} are zero or not "
                    "finite. Check the initialisation and look for NaN/Inf losses."
                )
        if per_tensor:
            for t, n in zip(ts, norms, strict=True):
                t.mul_((radius / n).to(t.dtype))
            return norms
        if ts[0].device.type == "cpu":
            # reading the norm costs nothing on the CPU, and a Python scale is the faster
            # kernel; on a GPU the scale stays a device tensor (no host synchronisation)
            torch._foreach_mul_(ts, radius / float(norms[0]))
        else:
            torch._foreach_mul_(ts, (radius / norms[0]).to(ts[0].dtype))
        return norms[0]


def _fast_joint_norm(ts: list[Tensor]) -> Tensor:
    """:func:`joint_norm` with one fused kernel per dtype group when the tensors are float32
    or float64 (the per-step path of the strategy)."""
    if all(t.dtype in (torch.float32, torch.float64) for t in ts) and \
            len({t.dtype for t in ts}) == 1 and len({t.device for t in ts}) == 1:
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(ts)))
    return joint_norm(ts)


def sphere_distance_to_radius(tensors: TensorOrTensors, radius: float = 1.0) -> float:
    """Relative deviation ``| ||w|| - radius | / radius`` of the joint norm from ``radius``."""
    return abs(float(joint_norm(tensors)) - radius) / radius


def tangent_projection(w: Tensor, g: Tensor) -> Tensor:
    """Project ``g`` onto the tangent space of the sphere at ``w``.

    .. math::  g_\\perp = g - \\frac{\\langle g, w \\rangle}{\\lVert w \\rVert^2} \\, w

    Args:
        w: points, shape ``(..., D)``.
        g: vectors at those points, same shape.

    Returns:
        ``g_perp`` with ``<g_perp, w> = 0`` along the last dimension.
    """
    if w.shape != g.shape:
        raise ValueError(f"`w` and `g` must have the same shape, got {tuple(w.shape)} and "
                         f"{tuple(g.shape)}.")
    coef = (g * w).sum(-1, keepdim=True) / (w * w).sum(-1, keepdim=True)
    return g - coef * w


def effective_lr(lr: float | Tensor, norm: float | Tensor) -> float:
    """Effective learning rate of SGD on scale-invariant weights: ``lr / ||w||^2``."""
    n = float(norm)
    if not n > 0:
        raise ValueError(f"`norm` must be positive, got {n!r}.")
    return float(lr) / (n * n)
