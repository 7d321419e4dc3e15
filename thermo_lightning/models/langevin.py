"""The known-temperature problem: SGD on a quadratic over a sphere with Gaussian noise.

Points ``w`` live on the unit sphere in ``R^n``. The loss is scale-invariant,

.. math::  L(w) = \\frac{1}{2} \\frac{\\sum_k \\lambda_k w_k^2}{\\lVert w \\rVert^2},
           \\qquad \\lambda_1 = 0 < \\lambda_2 \\le \\dots \\le \\lambda_n ,

so its minima are ``+-e_1``. One step adds isotropic Gaussian noise ``sigma * xi`` to the
exact gradient, projects onto the tangent plane, steps and renormalises:

.. math::  g = \\nabla L(w) + \\sigma \\xi, \\quad g_\\perp = g - \\langle g, w \\rangle w,
           \\quad w \\leftarrow \\frac{w - \\eta g_\\perp}{\\lVert w - \\eta g_\\perp \\rVert}.

This is the Euler scheme of Langevin dynamics ``dw = -grad L dt + sqrt(2T) dB`` on the
sphere with ``sqrt(2 T eta) = eta sigma``, so the stationary law is the Gibbs distribution
``p(w) ~ exp(-L(w) / T)`` with the known temperature

.. math::  T = \\eta \\sigma^2 / 2

up to ``O(eta * lambda)`` discretisation corrections (keep ``eta * lambda_n <= 0.05``). It is
the end-to-end test of the whole pipeline: entropy, energy and temperature inference must
recover ``T`` (docs/concepts.md, section 7).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from thermo_lightning._validation import positive_int

__all__ = ["LangevinSamples", "LangevinSphere"]


@dataclass(frozen=True)
class LangevinSamples:
    """Thinned samples of :meth:`LangevinSphere.simulate`.

    Attributes:
        lrs: ``(L,)`` learning rates.
        strides: ``(L,)`` steps between kept samples, per LR.
        samples: ``(L, C, n_samples, n)`` points on the sphere (``C`` chains), in time order.
        energies: ``(L, C, n_samples)`` the loss ``L(w)`` at the samples.
        burn_in: steps discarded before the first sample.
    """

    lrs: Tensor
    strides: tuple[int, ...]
    samples: Tensor
    energies: Tensor
    burn_in: int

    def windows(self) -> Tensor:
        """``(L, C * n_samples, n)``: the chains of each LR stacked into one window."""
        lr, c, m, n = self.samples.shape
        return self.samples.reshape(lr, c * m, n)


class LangevinSphere:
    """SGD with isotropic Gaussian gradient noise on a quadratic over the unit sphere.

    Args:
        dim: ambient dimension ``n >= 2`` (the sphere has intrinsic dimension ``n - 1``).
        curvatures: ``lambda_2..lambda_n`` (``n - 1`` positive values); default evenly spaced
            in ``[1, 2]``. ``lambda_1 = 0`` always.
        noise_std: ``sigma``, the standard deviation of the gradient noise per coordinate.

    Example:
        >>> problem = LangevinSphere(dim=4, noise_std=0.5)
        >>> problem.temperature(0.02)
        0.0025
        >>> out = problem.simulate([0.01, 0.02], n_samples=10, stride=50, n_chains=4)
        >>> tuple(out.samples.shape)
        (2, 4, 10, 4)
    """

    def __init__(
        self,
        dim: int = 6,
        curvatures: Sequence[float] | Tensor | None = None,
        noise_std: float = 0.5,
    ) -> None:
        if positive_int(dim, "dim") < 2:
            raise ValueError(f"`dim` must be an integer >= 2, got {dim!r}.")
        if curvatures is None:
            lam = torch.linspace(1.0, 2.0, dim - 1, dtype=torch.float64)
        else:
            lam = torch.as_tensor(curvatures, dtype=torch.float64).reshape(-1)
            if lam.numel() != dim - 1 or not bool((lam > 0).all()):
                raise ValueError(
                    f"`curvatures` must hold dim - 1 = {dim - 1} positive values, got "
                    f"{lam.tolist()}."
                )
        if not noise_std > 0:
            raise ValueError(f"`noise_std` must be positive, got {noise_std!r}.")
        self.dim = dim
        self.curvatures = torch.cat([torch.zeros(1, dtype=torch.float64), lam])
        self.noise_std = float(noise_std)

    def temperature(self, lr: float) -> float:
        """The known temperature ``T = lr * sigma^2 / 2``."""
        return float(lr) * self.noise_std**2 / 2.0

    def chain_temperature(self, lr: float) -> float:
        """``dU/dS`` of the discrete chain's stationary law at step ``lr``: what a sweep
        measures, ``T = lr sigma^2 / 2`` up to ``O(lr lambda)``.

        At small ``T`` each tangent mode ``j`` is an AR(1), ``x <- (1 - eta lambda_j) x - eta
        sigma xi``, of variance ``v_j = eta sigma^2 / (lambda_j (2 - eta lambda_j))``; so
        ``U = sum_j lambda_j v_j / 2`` and ``S = sum_j ln(v_j) / 2 + const``, and along
        ``eta``

        .. math::  T_\\text{chain}(\\eta) = \\frac{dU/d\\eta}{dS/d\\eta}
                   = \\frac{\\sum_j \\sigma^2 / (2 - \\eta\\lambda_j)^2}
                          {\\sum_j 1 / (\\eta (2 - \\eta\\lambda_j))} .

        Example:
            >>> problem = LangevinSphere(dim=3, noise_std=1.0)
            >>> round(problem.chain_temperature(1e-6) / problem.temperature(1e-6), 4)
            1.0
        """
        eta = float(lr)
        lam = self.curvatures[1:].double()
        rate = eta * lam
        if not (eta > 0 and bool((rate < 2).all())):
            raise ValueError(f"`lr` * lambda_max must be in (0, 2) for a stable chain, got "
                             f"{eta * float(lam.max())}.")
        num = (self.noise_std**2 / (2 - rate) ** 2).sum()
        den = (1 / (eta * (2 - rate))).sum()
        return float(num / den)

    def equipartition_energy(self, temperature: float) -> float:
        """Small-``T`` mean loss of the Gibbs law: ``(n - 1) T / 2`` (one ``T/2`` per
        tangent direction)."""
        return (self.dim - 1) * temperature / 2.0

    def correlation_time(self, lr: float) -> float:
        """Integrated autocorrelation time (in steps) of the slowest tangent mode,
        ``(2 - eta lambda_2) / (eta lambda_2)`` (an AR(1) with ``phi = 1 - eta lambda_2``)."""
        rate = float(lr) * float(self.curvatures[1:].min())
        if not 0 < rate < 2:
            raise ValueError(f"`lr` * lambda_min must be in (0, 2) for a stable chain, got {rate}.")
        return (2.0 - rate) / rate

    def loss(self, w: Tensor) -> Tensor:
        """``L(w)`` for points ``(..., n)``."""
        lam = self.curvatures.to(w)
        return 0.5 * (lam * w * w).sum(-1) / (w * w).sum(-1)

    def grad(self, w: Tensor) -> Tensor:
        """Exact gradient ``(Lambda w - 2 L(w) w) / ||w||^2`` (tangent to the sphere)."""
        lam = self.curvatures.to(w)
        r2 = (w * w).sum(-1, keepdim=True)
        return (lam * w - 2.0 * self.loss(w)[..., None] * w) / r2

    def configurational_terms(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """``(||grad_S L||^2, Delta_S L)`` at points ``(..., n)`` on the unit sphere, exactly
        (the configurational temperature's terms,
        :mod:`thermo_lightning.functional.configurational`): with ``q = sum_k lambda_k
        w_k^2``,

        .. math::  \\lVert\\nabla_S L\\rVert^2 = \\sum_k \\lambda_k^2 w_k^2 - q^2, \\qquad
                   \\Delta_S L = \\sum_k \\lambda_k - n\\, q

        (``L`` agrees on the sphere with ``w^T Lambda w / 2``, whose Laplace-Beltrami operator
        on the unit sphere is ``tr Lambda - n w^T Lambda w``)."""
        lam = self.curvatures.to(w)
        q = (lam * w * w).sum(-1)
        return (lam * lam * w * w).sum(-1) - q * q, lam.sum() - self.dim * q

    def initial_points(
        self, lrs: Tensor, n_chains: int, generator: torch.Generator
    ) -> Tensor:
        """Starting points ``(L, n_chains, n)``, float64, near ``e_1``: drawn from the
        small-``T`` Gaussian approximation of each LR's Gibbs law (tangent coordinate ``k``
        with variance ``T / lambda_k``), so a short burn-in suffices."""
        temps = torch.as_tensor([self.temperature(float(lr)) for lr in lrs], dtype=torch.float64)
        std = (temps[:, None] / self.curvatures[1:][None, :]).sqrt()  # (L, n - 1)
        w = torch.zeros(len(temps), n_chains, self.dim, dtype=torch.float64)
        w[..., 0] = 1.0
        w[..., 1:] = std[:, None, :] * torch.randn(
            len(temps), n_chains, self.dim - 1, generator=generator, dtype=torch.float64
        )
        return w / w.norm(dim=-1, keepdim=True)

    def simulate(
        self,
        lrs: Sequence[float],
        n_samples: int,
        *,
        stride: int | Sequence[int] = 1,
        n_chains: int = 1,
        burn_in: int | None = None,
        seed: int = 0,
    ) -> LangevinSamples:
        """Run SGD for every LR at once (vectorised; float64, CPU) and keep thinned samples.

        Args:
            lrs: learning rates ``eta`` (``eta * lambda_n < 2``).
            n_samples: samples kept per chain and LR.
            stride: steps between kept samples; one int, or one per LR.
            n_chains: independent chains per LR (all start near ``e_1``).
            burn_in: steps before the first sample; default two correlation times of the
                smallest LR (the chains start from the Gaussian approximation of the
                stationary law, see :meth:`initial_points`).
            seed: seed of the noise and of the starting points.

        Returns:
            :class:`LangevinSamples`.
        """
        lr = torch.as_tensor(list(lrs), dtype=torch.float64).reshape(-1)
        if lr.numel() < 1 or not bool((lr > 0).all()):
            raise ValueError(f"`lrs` must be positive, got {lr.tolist()}.")
        if float(lr.max()) * float(self.curvatures.max()) >= 2:
            raise ValueError("`lrs` too large: lr * max curvature must stay below 2.")
        strides = (stride,) * lr.numel() if isinstance(stride, int) else tuple(stride)
        if len(strides) != lr.numel() or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in strides
        ):
            raise ValueError(
                f"`stride` must be a positive int or one per LR, got {stride!r}."
            )
        positive_int(n_samples, "n_samples")
        positive_int(n_chains, "n_chains")
        if burn_in is None:
            burn_in = math.ceil(2 * self.correlation_time(float(lr.min())))
        if burn_in < 0:
            raise ValueError(f"`burn_in` must be >= 0, got {burn_in!r}.")

        gen = torch.Generator().manual_seed(seed)
        w = self.initial_points(lr, n_chains, gen)
        eta = lr[:, None, None]
        lam = self.curvatures
        out = torch.empty(lr.numel(), n_chains, n_samples, self.dim, dtype=torch.float64)
        total = burn_in + n_samples * max(strides)
        for step in range(1, total + 1):
            # exact gradient Lambda w - (w . Lambda w) w on the unit sphere, plus tangent noise
            lam_w = lam * w
            grad = lam_w - (w * lam_w).sum(-1, keepdim=True) * w
            xi = torch.randn(w.shape, generator=gen, dtype=torch.float64)
            grad.add_(xi - (xi * w).sum(-1, keepdim=True) * w, alpha=self.noise_std)
            w = w - eta * grad
            w = w / w.norm(dim=-1, keepdim=True)
            t = step - burn_in
            if t > 0:
                for i, s in enumerate(strides):
                    if t % s == 0 and t // s <= n_samples:
                        out[i, :, t // s - 1] = w[i]
        return LangevinSamples(
            lrs=lr,
            strides=strides,
            samples=out,
            energies=self.loss(out),
            burn_in=burn_in,
        )
