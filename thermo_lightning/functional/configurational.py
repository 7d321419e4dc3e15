"""The configurational temperature: a temperature from one run's configurations.

For a stationary law ``p(w) ~ exp(-U(w) / T)`` on a closed manifold (the sphere of the
scale-invariant weights), integration by parts gives, for any smooth ``U`` (Rugh 1997;
Butler et al. 1998),

.. math::  T = \\frac{E_p[\\lVert \\nabla_S U \\rVert^2]}{E_p[\\Delta_S U]}

with the Riemannian gradient ``grad_S U = P grad U`` (``P = I - w w^T / r^2``, the tangent
projector at ``w``, ``r = ||w||``) and the Laplace-Beltrami operator of the sphere of radius
``r`` in ``R^D``:

.. math::  \\Delta_S U = \\operatorname{tr}(P H P) - \\frac{D - 1}{r}\\,
           \\hat w \\cdot \\nabla U, \\qquad \\hat w = w / r,

``H`` the Euclidean Hessian. For a scale-invariant ``U`` (``w . grad U = 0``) the last term
vanishes. Both averages have unbiased estimates along a run: ``||grad_S U||^2`` from two
independent mini-batch gradients (``<P g_1, P g_2>``), ``tr(P H P)`` by Hutchinson's estimator
``E_v[(P v)^T H (P v)]`` with Rademacher ``v`` and Hessian-vector products
(:func:`sphere_laplacian`).

For SGD the stationary law is not exactly Gibbs (the gradient noise is anisotropic):
stationarity alone gives ``E ||grad U||^2 = (eta / 2) E tr(H C)`` (``C`` the noise covariance;
Yaida 2019), so ``T_conf = (eta / 2) E tr(H C) / E tr(H)`` is a curvature-weighted mean of the
noise, equal to the thermodynamic ``T = dU/dS`` where the law is Gibbs-like.

Pure torch/numpy: no Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from thermo_lightning.functional.sphere import tangent_projection
from thermo_lightning.functional.stationarity import corrected_autocorrelation_time

__all__ = [
    "ConfigurationalTemperature",
    "configurational_temperature",
    "sphere_gradient_sq",
    "sphere_laplacian",
]


def _flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def sphere_gradient_sq(grad_a: Sequence[Tensor], weights: Sequence[Tensor],
                       grad_b: Sequence[Tensor] | None = None) -> float:
    """``<P g_a, P g_b>``: the squared norm of the Riemannian gradient at ``weights`` (one
    sphere: the tensors are joined), from two independent mini-batch gradients (an unbiased
    estimate of ``||grad_S U||^2``), or ``||P g_a||^2`` without ``grad_b`` (biased upwards by
    the mini-batch noise's variance).

    Args:
        grad_a, grad_b: gradients, shaped as ``weights``.
        weights: the point ``w`` (any radius).
    """
    w = _flat(weights).double()
    r2 = float(w @ w)
    if not r2 > 0:
        raise ValueError("`weights` is zero: no sphere to project onto.")

    def tangent(grads: Sequence[Tensor]) -> Tensor:
        g = _flat(grads).double()
        if g.shape != w.shape:
            raise ValueError(f"gradients hold {g.numel()} numbers, `weights` {w.numel()}.")
        return tangent_projection(w, g)

    a = tangent(grad_a)
    b = a if grad_b is None else tangent(grad_b)
    return float(a @ b)


def sphere_laplacian(loss_fn: Callable[[], Tensor], weights: Sequence[Tensor], *,
                     probes: int = 1, generator: torch.Generator | None = None,
                     scale_invariant: bool = False) -> float:
    """Hutchinson's estimate of the Laplace-Beltrami operator of ``loss_fn`` at ``weights``
    on their sphere (module docstring): ``mean_v (P v)^T H (P v) - (D - 1)/r w_hat . grad U``
    over ``probes`` Rademacher vectors ``v``, with Hessian-vector products (double backward).
    Unbiased for one mini-batch's loss, hence for the full loss when the batch is drawn at
    random.

    Args:
        loss_fn: computes the loss from ``weights`` (which must require grad).
        weights: the point ``w`` (one sphere; the tensors are joined).
        probes: Rademacher vectors averaged.
        generator: draws the probes (CPU generator; the probes are moved to the weights'
            device).
        scale_invariant: the loss does not change with ``||w||``: the radial term (zero
            then) is not computed.

    Returns:
        The estimate (a float).
    """
    if not (isinstance(probes, int) and probes >= 1):
        raise ValueError(f"`probes` must be an integer >= 1, got {probes!r}.")
    params = list(weights)
    if not all(p.requires_grad for p in params):
        raise ValueError("`weights` must require grad (the Hessian-vector products "
                         "differentiate the loss with respect to them).")
    w = _flat([p.detach() for p in params])
    r = float(w.norm())
    w_hat = w / r
    loss = loss_fn()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    g = _flat(grads)
    total = 0.0
    for i in range(probes):
        v = (torch.randint(0, 2, w.shape, generator=generator, dtype=torch.int8)
             .to(device=w.device, dtype=w.dtype) * 2 - 1)
        pv = v - (v @ w_hat) * w_hat
        hv = torch.autograd.grad(g, params, grad_outputs=split_like(pv, params),
                                 retain_graph=i < probes - 1)
        total += float(pv @ _flat(hv).detach())
    laplacian = total / probes
    if not scale_invariant:
        laplacian -= (w.numel() - 1) / r * float(w_hat @ g.detach())
    return laplacian


def split_like(flat: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """``flat`` (the tensors ``like`` joined) back into tensors of their shapes and dtypes."""
    out, i = [], 0
    for p in like:
        out.append(flat[i:i + p.numel()].reshape(p.shape).to(p.dtype))
        i += p.numel()
    return out


@dataclass(frozen=True)
class ConfigurationalTemperature:
    """:func:`configurational_temperature`'s result.

    Attributes:
        T: ``mean(grad_sq) / mean(laplacian)``.
        se: its standard error (delta method, with the series' autocorrelation).
        tau: the integrated autocorrelation time of the linearised series (in samples).
        n: samples used.
    """

    T: float
    se: float
    tau: float
    n: int

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """``T -+ z se``."""
        return self.T - z * self.se, self.T + z * self.se


def configurational_temperature(grad_sq: Sequence[float] | np.ndarray,
                                laplacian: Sequence[float] | np.ndarray
                                ) -> ConfigurationalTemperature:
    """``T_conf = mean(grad_sq) / mean(laplacian)`` over samples along a stationary run,
    with a standard error that accounts for their autocorrelation: the ratio's linearisation
    ``z_t = (a_t - T b_t) / mean(b)`` has ``Var(T) ~ var(z) tau / n``, ``tau`` its integrated
    autocorrelation time (:func:`~thermo_lightning.functional.corrected_autocorrelation_time`).

    Args:
        grad_sq: ``(n,)`` samples of ``||grad_S U||^2`` (:func:`sphere_gradient_sq`).
        laplacian: ``(n,)`` samples of ``Delta_S U`` (:func:`sphere_laplacian`), at the same
            points.

    Raises:
        ValueError: fewer than 3 samples, different lengths, non-finite values, or a mean
            Laplacian that is not positive (no stationary law around a minimum: ``T`` is
            undefined).
    """
    a = np.asarray(grad_sq, dtype=float).reshape(-1)
    b = np.asarray(laplacian, dtype=float).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"`grad_sq` and `laplacian` must have one value per sample, got "
                         f"{a.size} and {b.size}.")
    if a.size < 3:
        raise ValueError(f"at least 3 samples are needed, got {a.size}.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("`grad_sq` and `laplacian` must be finite.")
    mean_b = float(b.mean())
    if not mean_b > 0:
        raise ValueError(f"the mean Laplacian is {mean_b:.4g}, not positive: the samples do "
                         "not sit around a minimum, and the configurational temperature is "
                         "undefined there.")
    t = float(a.mean()) / mean_b
    z = (a - t * b) / mean_b
    tau = float(corrected_autocorrelation_time(z)) if np.ptp(z) > 0 else 1.0
    se = math.sqrt(float(z.var(ddof=1)) * tau / a.size)
    return ConfigurationalTemperature(t, se, tau, int(a.size))
