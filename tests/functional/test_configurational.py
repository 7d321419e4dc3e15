"""The configurational temperature (issue 28): the sphere's Laplacian by Hutchinson against
its closed form, the Riemannian gradient's squared norm, and T_conf of the known-temperature
problem's chain against the chain's temperature, with intervals that cover."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thermo_lightning.functional import (
    configurational_temperature,
    sphere_gradient_sq,
    sphere_laplacian,
)
from thermo_lightning.models import LangevinSphere


def _unit(n: int, seed: int) -> torch.Tensor:
    w = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return w / w.norm()


def test_the_laplacian_at_the_minimum_is_exact_with_one_probe() -> None:
    # at w = e_1, P H P is diagonal: one Rademacher probe gives its trace exactly
    problem = LangevinSphere(dim=6, noise_std=0.5)
    w = torch.zeros(6, dtype=torch.float64)
    w[0] = 1.0
    w.requires_grad_(True)
    exact = float(problem.configurational_terms(w.detach())[1])
    assert exact == pytest.approx(float(problem.curvatures.sum()))
    for scale_invariant in (True, False):
        got = sphere_laplacian(lambda: problem.loss(w), [w], scale_invariant=scale_invariant)
        assert got == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("radius", [1.0, 3.0])
def test_the_laplacian_matches_its_closed_form_at_any_point(radius: float) -> None:
    problem = LangevinSphere(dim=8, noise_std=0.5)
    lam = problem.curvatures
    gen = torch.Generator().manual_seed(0)
    for seed in range(3):
        unit = _unit(8, seed)
        exact = float(problem.configurational_terms(unit)[1]) / radius**2
        w = (radius * unit).requires_grad_(True)
        # the scale-invariant loss, and the quadratic that agrees with it on the unit sphere
        # (not scale-invariant: the radial term counts); both at once on their sphere
        probes = 4000
        si = sphere_laplacian(lambda w=w: problem.loss(w), [w], probes=probes, generator=gen)
        assert si == pytest.approx(exact, rel=0.03)
        if radius == 1.0:
            quad = sphere_laplacian(lambda w=w: 0.5 * (lam * w * w).sum(), [w], probes=probes,
                                    generator=gen)
            assert quad == pytest.approx(exact, rel=0.03)


def test_the_gradient_term_is_unbiased_from_two_noisy_gradients() -> None:
    problem = LangevinSphere(dim=8, noise_std=0.5)
    w = _unit(8, 1)
    exact = float(problem.configurational_terms(w)[0])
    g = problem.grad(w)
    assert sphere_gradient_sq([g], [w]) == pytest.approx(exact, rel=1e-12)
    assert sphere_gradient_sq([g + 5.0 * w], [3.0 * w]) == pytest.approx(exact, rel=1e-12)
    gen = torch.Generator().manual_seed(2)

    def noisy() -> list[torch.Tensor]:
        return [g + 0.3 * torch.randn(8, generator=gen, dtype=torch.float64)]

    pairs = [sphere_gradient_sq(noisy(), [w], grad_b=noisy()) for _ in range(4000)]
    assert np.mean(pairs) == pytest.approx(exact, abs=4 * np.std(pairs) / np.sqrt(4000))
    alone = [sphere_gradient_sq(noisy(), [w]) for _ in range(4000)]
    # alone: biased up by the noise's variance in the tangent plane, 7 x 0.3^2
    assert np.mean(alone) == pytest.approx(exact + 7 * 0.09, rel=0.05)


def test_the_chains_configurational_temperature_is_its_temperature() -> None:
    # T_conf of the discrete chain weighs each mode's temperature by its curvature, dU/dS of
    # the chain weighs them otherwise: both are lr sigma^2 / 2 up to O(lr lambda)
    problem = LangevinSphere(dim=21, noise_std=0.5)
    lrs = [0.02, 0.04, 0.08]
    for seed in range(2):
        out = problem.simulate(lrs, n_samples=400, stride=25, seed=seed)
        for i, lr in enumerate(lrs):
            a, b = problem.configurational_terms(out.samples[i, 0])
            result = configurational_temperature(a.numpy(), b.numpy())
            ratio = result.T / problem.chain_temperature(lr)
            assert 0.9 < ratio < 1.1
            assert 0 < result.se < 0.05 * result.T and result.n == 400


def test_its_interval_covers_over_seeds() -> None:
    problem = LangevinSphere(dim=11, noise_std=0.5)
    lr = 0.04
    reference = problem.simulate([lr], n_samples=2000, stride=10, n_chains=32, seed=99)
    a, b = problem.configurational_terms(reference.samples[0])
    truth = float(a.mean() / b.mean())  # the chain's own T_conf, 64,000 samples
    runs = problem.simulate([lr], n_samples=200, stride=3, n_chains=40, seed=7)
    covered, taus = [], []
    for c in range(40):  # correlated samples (stride 3): the interval must account for it
        a, b = problem.configurational_terms(runs.samples[0, c])
        result = configurational_temperature(a.numpy(), b.numpy())
        lo, hi = result.interval()
        covered.append(lo <= truth <= hi)
        taus.append(result.tau)
    assert np.median(taus) > 2  # the series are correlated ...
    assert np.mean(covered) >= 0.8  # ... and the intervals still cover


def test_bad_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        configurational_temperature([1.0, 2.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="one value per sample"):
        configurational_temperature([1.0, 2.0, 3.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="not positive"):
        configurational_temperature([1.0, 2.0, 3.0], [-1.0, -2.0, 0.5])
    with pytest.raises(ValueError, match="finite"):
        configurational_temperature([1.0, np.nan, 3.0], [1.0, 1.0, 1.0])
    w = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="require grad"):
        sphere_laplacian(lambda: w.sum(), [w])
    with pytest.raises(ValueError, match="probes"):
        sphere_laplacian(lambda: w.sum(), [w.requires_grad_(True)], probes=0)


def _noise_batches(dim: int, count: int, seed: int) -> list[tuple[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(dim, generator=gen, dtype=torch.float64),) for _ in range(count)]


def test_the_terms_from_mini_batches_are_unbiased() -> None:
    # the known-temperature module's mini-batch loss L(w) + sigma <xi, w/|w|>: its gradient
    # and Hessian are L's plus zero-mean noise
    from thermo_lightning.models import LangevinSphereModule
    from thermo_lightning.probes import configurational_terms_from_batches

    problem = LangevinSphere(dim=8, noise_std=0.5)
    module = LangevinSphereModule(problem, lr=0.05)
    with torch.no_grad():
        module.w.copy_(2.0 * _unit(8, 3))  # any radius
    exact_g, exact_lap = (float(t) for t in problem.configurational_terms(_unit(8, 3)))
    grad_sq, lap, ghg, k = configurational_terms_from_batches(
        module, lambda m, b: m.loss(b), _noise_batches(8, 3000, 0), [[module.w]],
        generator=torch.Generator().manual_seed(1))
    assert k == 3000
    assert grad_sq == pytest.approx(exact_g / 4, rel=0.1)  # radius 2: |grad| halves
    assert lap == pytest.approx(exact_lap / 4, rel=0.1)  # and the Laplacian quarters
    # E[g_b^T H g_b] = grad L^T H grad L + sigma^2 / r^2 tr(P H P): the energy balance's side
    w = module.w.detach().clone()
    hess = torch.autograd.functional.hessian(problem.loss, w)
    grad = problem.grad(w)
    proj = torch.eye(8, dtype=torch.float64) - torch.outer(w, w) / (w @ w)
    expected = float(grad @ hess @ grad + problem.noise_std**2 / (w @ w)
                     * torch.trace(proj @ hess @ proj))
    assert ghg == pytest.approx(expected, rel=0.1)


def test_a_product_of_spheres_sums_its_factors() -> None:
    from torch import nn

    from thermo_lightning.probes import configurational_terms_from_batches

    a, b = LangevinSphere(dim=5, noise_std=0.5), LangevinSphere(dim=7, noise_std=0.5)

    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.u = nn.Parameter(_unit(5, 4))
            self.v = nn.Parameter(_unit(7, 5))

    module = Two()
    terms = [(float(x), float(y)) for x, y in (a.configurational_terms(_unit(5, 4)),
                                                b.configurational_terms(_unit(7, 5)))]

    def loss(m: nn.Module, batch: object) -> torch.Tensor:  # noise-free: exact terms
        return a.loss(m.u) + b.loss(m.v)

    gen = torch.Generator().manual_seed(0)
    grad_sq, lap, _, _ = configurational_terms_from_batches(
        module, loss, [None] * 2000, [[module.u], [module.v]], generator=gen)
    assert grad_sq == pytest.approx(terms[0][0] + terms[1][0], rel=1e-9)
    assert lap == pytest.approx(terms[0][1] + terms[1][1], rel=0.05)
