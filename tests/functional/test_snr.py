"""Gradient SNR: closed form, known mean/covariance, unbiasedness, loop reference."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torchmetrics

from thermo_lightning.functional import GradientSNRAccumulator, gradient_snr


def _synthetic(k: int, seed: int, d: int = 50) -> tuple[torch.Tensor, torch.Tensor, float]:
    """K batch gradients g_b = mu + noise, noise ~ N(0, diag(sigma^2)); returns the true SNR."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.linspace(-1, 1, d, dtype=torch.float64) * 0.3
    sigma = torch.linspace(0.5, 1.5, d, dtype=torch.float64)
    grads = mu + sigma * torch.randn(k, d, generator=g, dtype=torch.float64)
    return grads, mu, float(mu.norm() / sigma.square().sum().sqrt())


def test_paper_definition_closed_form() -> None:
    out = gradient_snr(torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.tensor([2.0, 0.0]))
    assert out["snr"] == 2.0 and out["full_grad_norm"] == 2.0 and out["noise_rms"] == 1.0
    assert out["mean_stoch_grad_norm"] == 2.0 and out["noise_scale"] == 0.25


@pytest.mark.parametrize("with_full", [True, False])
def test_converges_to_truth_as_k_grows(with_full: bool) -> None:
    errors = []
    for k in (100, 1000, 20000):
        grads, mu, truth = _synthetic(k, seed=k)
        out = gradient_snr(grads, mu if with_full else None)
        errors.append(abs(out["snr"] / truth - 1))
    assert errors[-1] < 0.02
    assert errors[-1] < errors[0]


def test_unbiased_estimate_of_squared_full_gradient() -> None:
    # E[estimate] = ||mu||^2, while ||mean g_b||^2 is biased upwards by tr(Sigma) / K
    reps, k = 4000, 4
    grads, mu, _ = _synthetic(reps * k, seed=1)
    blocks = grads.reshape(reps, k, -1)
    est = torch.tensor([gradient_snr(b)["full_grad_sq_unbiased"] for b in blocks])
    naive = blocks.mean(dim=1).square().sum(dim=1)
    truth = float(mu.square().sum())
    se = float(est.std()) / math.sqrt(reps)
    assert abs(float(est.mean()) - truth) < 4 * se
    assert float(naive.mean()) - truth > 10 * se  # the bias the estimator removes


def test_equals_naive_loop_reference() -> None:
    grads, mu, _ = _synthetic(7, seed=3, d=11)
    grads, mu = grads + 1.0, mu + 1.0  # enough signal for a positive estimate of ||g||^2
    k = grads.shape[0]
    pair = sum(float(grads[i] @ grads[j]) for i, j in itertools.permutations(range(k), 2))
    g_sq = pair / (k * (k - 1))
    mean = grads.mean(dim=0)
    tr_sigma = sum(float((grads[i] - mean).square().sum()) for i in range(k)) / (k - 1)
    out = gradient_snr(grads)
    assert out["full_grad_sq_unbiased"] == pytest.approx(g_sq, rel=1e-10)
    assert out["noise_rms"] == pytest.approx(math.sqrt(tr_sigma), rel=1e-10)
    assert out["snr"] == pytest.approx(math.sqrt(g_sq / tr_sigma), rel=1e-10)
    assert out["mean_stoch_grad_norm"] == pytest.approx(
        sum(float(g.norm()) for g in grads) / k, rel=1e-12
    )
    paper = gradient_snr(grads, mu)
    noise = math.sqrt(sum(float((g - mu).square().sum()) for g in grads) / k)
    assert paper["snr"] == pytest.approx(float(mu.norm()) / noise, rel=1e-12)


@pytest.mark.parametrize("with_full", [True, False])
def test_accumulator_matches_function(with_full: bool) -> None:
    grads, mu, _ = _synthetic(9, seed=4)
    acc = GradientSNRAccumulator(mu if with_full else None)
    acc.update(grads[:3])
    for g in grads[3:]:
        acc.update(g)
    assert acc.count == 9
    want = gradient_snr(grads, mu if with_full else None)
    for key, value in acc.compute().items():
        assert value == pytest.approx(want[key], rel=1e-12), key
    acc.reset()
    assert acc.count == 0


def test_signal_below_resolution_is_nan_not_zero() -> None:
    # the pairwise estimate of ||g||^2 is negative: the signal is below what these 4 batches
    # resolve, which is not a measured SNR of 0
    grads = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    out = gradient_snr(grads)
    assert out["full_grad_sq_unbiased"] < 0
    assert math.isnan(out["snr"]) and math.isnan(out["full_grad_norm"])
    assert math.isnan(out["noise_scale"]) and out["noise_rms"] > 0
    # with the full gradient the same batches give the exact answer: 0
    exact = gradient_snr(grads, torch.zeros(2))
    assert exact["snr"] == 0.0 and exact["noise_scale"] == math.inf


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="K >= 2"):
        gradient_snr(torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"\(K, D\)"):
        gradient_snr(torch.ones(3))
    with pytest.raises(ValueError, match="`full_grad`"):
        gradient_snr(torch.ones(2, 3), torch.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        gradient_snr(torch.tensor([[1.0, float("nan")], [1.0, 2.0]]))
    acc = GradientSNRAccumulator()
    acc.update(torch.ones(3))
    with pytest.raises(ValueError, match="at least 2"):
        acc.compute()
    with pytest.raises(ValueError, match="D=4"):
        acc.update(torch.ones(4))


@pytest.mark.parametrize("with_full", [True, False])
def test_sync_over_ranks_equals_one_process_with_every_gradient(with_full: bool) -> None:
    # Two "ranks" with 4 batch gradients each. After summing their states (an all-reduce),
    # rank 0 computes the SNR of all 8 gradients: one ratio of the summed terms. The mean of
    # the two ranks' own ratios (the old DDP reduction) is a different number.
    grads, mu, _ = _synthetic(8, seed=3)
    grads, mu = grads + 2 * mu, 3 * mu  # a clear signal (SNR ~ 0.5)
    full = mu if with_full else None
    rank0, rank1 = GradientSNRAccumulator(full), GradientSNRAccumulator(full)
    rank0.update(grads[:4])
    rank1.update(grads[4:])
    mean_of_ratios = (rank0.compute()["snr"] + rank1.compute()["snr"]) / 2
    sent: list[torch.Tensor] = []
    rank1.reduce_with(lambda t: sent.append(t.clone()) or t)  # what rank 1 contributes
    rank0.reduce_with(lambda t: t + sent[0])  # the all-reduce's sum, as rank 0 receives it
    expected = gradient_snr(grads, full)
    out = rank0.compute()
    for key in ("snr", "full_grad_norm", "noise_rms", "mean_stoch_grad_norm", "num_batches"):
        assert out[key] == pytest.approx(expected[key], rel=1e-12), key
    assert abs(mean_of_ratios - expected["snr"]) > 1e-5 * expected["snr"]  # told apart


def test_torchmetrics_sync_sums_the_states_of_every_rank() -> None:
    # torchmetrics' own synchronisation (what runs in compute() under torch.distributed),
    # driven with a stand-in for its all-gather: rank 0 receives both ranks' states, sums
    # them (dist_reduce_fx="sum") and takes one ratio, the SNR of all 8 gradients
    grads, mu, _ = _synthetic(8, seed=5)
    grads = grads + 2 * mu
    rank1 = GradientSNRAccumulator()
    rank1.update(grads[4:])
    other: list = []

    def all_gather(tensor: torch.Tensor, group=None) -> list[torch.Tensor]:
        return [tensor, next(other[0])]

    rank0 = GradientSNRAccumulator(dist_sync_fn=all_gather, distributed_available_fn=lambda: True)
    assert isinstance(rank0, torchmetrics.Metric)
    rank0.update(grads[:4])
    other.append(iter([getattr(rank1, name) for name in rank0._defaults]))
    out = rank0.compute()
    expected = gradient_snr(grads)
    for key in ("snr", "full_grad_norm", "noise_rms", "mean_stoch_grad_norm", "num_batches"):
        assert out[key] == pytest.approx(expected[key], rel=1e-12), key
    assert rank0.count == 4  # unsynced after compute: rank 0's own gradients again
    rank0.reset()
    assert rank0.count == 0 and rank0.sum_grad.ndim == 0  # the state is sized again later
    rank0.update(grads[0])
    assert rank0.sum_grad.shape == (grads.shape[1],)
