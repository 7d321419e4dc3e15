"""The known-temperature problem: the end-to-end test of entropy + energy + temperature."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from thermo_lightning.functional import (
    infer_temperature,
    knn_entropy,
    window_effective_sample_size,
)
from thermo_lightning.models import LangevinSphere

PROBLEM = LangevinSphere(dim=6, noise_std=0.5)  # sphere S^5: intrinsic dimension 5
# 7 LRs a factor sqrt(2) apart; eta * lambda_max <= 0.06 keeps the Euler bias near 3%
LRS = [0.03 / math.sqrt(2) ** i for i in range(6, -1, -1)]
T_TRUE = np.array([PROBLEM.temperature(lr) for lr in LRS])


@pytest.fixture(scope="module")
def thinned():
    # one sample per correlation time of the slowest mode, 250 chains x 8 samples per LR
    strides = [math.ceil(PROBLEM.correlation_time(lr)) for lr in LRS]
    return PROBLEM.simulate(LRS, n_samples=8, stride=strides, n_chains=250, seed=0)


def test_energy_matches_equipartition(thinned) -> None:
    u = thinned.energies.mean(dim=(1, 2)).numpy()
    expected = np.array([PROBLEM.equipartition_energy(t) for t in T_TRUE])
    # Euler bias T' = eta sigma^2 / (2 - eta lambda) is at most +3% here; sampling noise ~2%
    np.testing.assert_allclose(u, expected, rtol=0.07)


def test_chain_temperature_is_the_slope_of_the_chains_own_energy_and_entropy() -> None:
    # large steps (eta lambda_max = 0.4), where the chain's dU/dS is 10-20% above
    # eta sigma^2 / 2: the per-mode AR(1) variances from simulate() give U and the Gaussian S
    problem = LangevinSphere(dim=4, noise_std=0.05, curvatures=torch.tensor([2.0, 3.0, 4.0]))
    lrs = [0.07, 0.08, 0.09, 0.1]
    runs = problem.simulate(lrs, n_samples=4000, stride=4, n_chains=8, seed=1)
    tangent = runs.samples[..., 1:].reshape(len(lrs), -1, 3)
    var = tangent.pow(2).mean(dim=1).numpy()  # per-mode variances (mean 0 at the minimum)
    u = runs.energies.mean(dim=(1, 2)).numpy()
    s = 0.5 * np.log(var).sum(axis=1)
    for i in (1, 2):  # central differences along eta
        measured = (u[i + 1] - u[i - 1]) / (s[i + 1] - s[i - 1])
        expected = problem.chain_temperature(lrs[i])
        assert expected / problem.temperature(lrs[i]) > 1.1
        assert measured == pytest.approx(expected, rel=0.04)
    with pytest.raises(ValueError, match="stable chain"):
        problem.chain_temperature(0.6)


@pytest.mark.parametrize(("estimator", "k"), [("knn_graph", 10), ("kozachenko_leonenko", 5)])
def test_thinned_windows_recover_the_known_temperature(thinned, estimator: str, k: int) -> None:
    windows = thinned.windows()
    u = thinned.energies.mean(dim=(1, 2)).numpy()
    s = [knn_entropy(w, k=k, estimator=estimator, dim=PROBLEM.dim - 1) for w in windows]
    df = infer_temperature(LRS, u, s, smoothing=None)
    assert df["valid"].all()
    ratio = df["T"].to_numpy() / T_TRUE
    # measured over 6 seeds: interior ratios within 0.96-1.045 (both estimators)
    np.testing.assert_allclose(ratio[1:-1], 1.0, atol=0.10)


def test_consecutive_iterates_bias_temperature_and_ess_flags_them() -> None:
    n = 2000
    consecutive = PROBLEM.simulate(LRS, n_samples=n, stride=1, n_chains=1, seed=1)
    windows = consecutive.windows()
    u = consecutive.energies.mean(dim=(1, 2)).numpy()
    s = [knn_entropy(w, k=10, dim=PROBLEM.dim - 1) for w in windows]
    ratio = infer_temperature(LRS, u, s, smoothing=None)["T"].to_numpy() / T_TRUE
    # the entropy of a stride-1 window tracks the step size, not the Gibbs law: T too low
    assert float(np.nanmedian(ratio[1:-1])) < 0.8
    ess = np.array([window_effective_sample_size(w) for w in windows])
    assert (ess < 0.05 * n).all()  # measured 10-45 of 2000
    # a single chain thinned to one sample per correlation time is nearly i.i.d.
    lr = LRS[3]
    stride = math.ceil(PROBLEM.correlation_time(lr))
    chain = PROBLEM.simulate([lr], n_samples=300, stride=stride, n_chains=1, seed=2)
    assert window_effective_sample_size(chain.windows()[0]) > 0.5 * 300


def test_samples_stay_on_the_sphere_and_are_reproducible() -> None:
    a = PROBLEM.simulate([0.01, 0.02], n_samples=5, stride=[3, 7], n_chains=2, seed=4)
    b = PROBLEM.simulate([0.01, 0.02], n_samples=5, stride=[3, 7], n_chains=2, seed=4)
    assert torch.equal(a.samples, b.samples)
    torch.testing.assert_close(a.samples.norm(dim=-1), torch.ones(2, 2, 5, dtype=torch.float64))
    assert a.strides == (3, 7)


def test_gradient_is_tangent_and_matches_autograd() -> None:
    w = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    PROBLEM.loss(w).sum().backward()
    torch.testing.assert_close(PROBLEM.grad(w.detach()), w.grad)
    wn = w.detach() / w.detach().norm(dim=-1, keepdim=True)
    torch.testing.assert_close((PROBLEM.grad(wn) * wn).sum(-1), torch.zeros(4, dtype=torch.float64))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="`dim`"):
        LangevinSphere(dim=1)
    with pytest.raises(ValueError, match="`curvatures`"):
        LangevinSphere(dim=3, curvatures=[1.0])
    with pytest.raises(ValueError, match="`noise_std`"):
        LangevinSphere(noise_std=0.0)
    with pytest.raises(ValueError, match="`stride`"):
        PROBLEM.simulate([0.01], n_samples=2, stride=0)
    with pytest.raises(ValueError, match="`lrs`"):
        PROBLEM.simulate([1.5], n_samples=2)
    with pytest.raises(ValueError, match="`n_samples`"):
        PROBLEM.simulate([0.01], n_samples=0)
