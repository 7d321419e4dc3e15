"""Autocorrelation time, ESS and the stationarity test against AR(1) series."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from thermo_lightning.functional import (
    autocorrelation,
    corrected_autocorrelation_time,
    effective_sample_size,
    half_window_chi2,
    integrated_autocorrelation_time,
    stationarity_test,
    window_autocorrelation_time,
    window_effective_sample_size,
    window_projections,
)


def ar1(phi: float, n: int, seed: int, n_series: int | None = None) -> np.ndarray:
    """x_t = phi x_{t-1} + e_t, started in its stationary law."""
    rng = np.random.default_rng(seed)
    shape = (n,) if n_series is None else (n_series, n)
    e = rng.standard_normal(shape)
    x = np.empty(shape)
    x[..., 0] = e[..., 0] / math.sqrt(1 - phi**2)
    for t in range(1, n):
        x[..., t] = phi * x[..., t - 1] + e[..., t]
    return x


def test_autocorrelation_of_ar1_is_geometric() -> None:
    rho = autocorrelation(ar1(0.7, 100_000, seed=0))
    np.testing.assert_allclose(rho[:6], 0.7 ** np.arange(6), atol=0.02)
    assert autocorrelation(np.ones(10))[1:].tolist() == [0.0] * 9


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_integrated_time_of_ar1(phi: float) -> None:
    # tau = (1 + phi) / (1 - phi); 8 series of 50k values: spread of the mean about 3%
    taus = integrated_autocorrelation_time(ar1(phi, 50_000, seed=1, n_series=8))
    assert taus.shape == (8,)
    assert float(np.mean(taus)) == pytest.approx((1 + phi) / (1 - phi), rel=0.1)


def test_effective_sample_size_is_n_over_tau() -> None:
    x = ar1(0.8, 20_000, seed=2)
    assert effective_sample_size(x) == pytest.approx(20_000 / corrected_autocorrelation_time(x))
    assert effective_sample_size(x) == pytest.approx(20_000 / 9.0, rel=0.2)


def test_stationary_series_passes_and_drift_fails() -> None:
    x = ar1(0.9, 5000, seed=3)
    assert stationarity_test(x).stationary
    drifting = x + np.linspace(0.0, 3.0, 5000)
    res = stationarity_test(drifting)
    assert not res.stationary and res.p_value < 0.01 and res.mean_last > res.mean_first


def test_false_alarm_rate_is_near_alpha() -> None:
    flags = [not stationarity_test(ar1(0.5, 2000, seed=s)).stationary for s in range(100)]
    assert sum(flags) <= 12  # alpha = 0.05; measured 3-7 of 100 on AR(1) with phi <= 0.5


@pytest.mark.parametrize(("phi", "n"), [(0.95, 2000), (0.99, 2000), (0.99, 500)])
def test_false_alarm_rate_with_slow_correlations(phi: float, n: int) -> None:
    # tau = 39 and 199: parts of 10% of the series are only a few correlation times long.
    # Measured (400 series each): 4.3% (0.95, 2000), 4.3% (0.99, 2000), 7.0% (0.99, 500);
    # before the whole-series variance and the corrected tau: 11% at (0.95, 2000).
    series = ar1(phi, n, seed=11, n_series=300)
    rate = np.mean([not stationarity_test(x).stationary for x in series])
    assert rate <= 0.09  # alpha = 0.05; 300 series: the rate's standard error is ~1.3%


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9, 0.95, 0.99])
def test_window_ess_matches_the_analytic_ess_of_ar1_windows(phi: float) -> None:
    # a window of N = 1000 snapshots whose 40 coordinates are independent AR(1) series:
    # every projection is AR(1) with the same phi, so ESS = N (1 - phi) / (1 + phi)
    # (1000 down to 5). The plain Sokal estimate on the maximum direction was 1.75x too
    # high at tau = 50 and 3x at tau = 200.
    n = 1000
    analytic = n * (1 - phi) / (1 + phi)
    ratios = []
    for seed in range(5):
        window = torch.from_numpy(ar1(phi, n, seed=100 + seed, n_series=40).T.copy())
        ratios.append(window_effective_sample_size(window) / analytic)
    assert 0.75 <= float(np.median(ratios)) <= 1.3, ratios


@pytest.mark.parametrize("tau", [3.0, 50.0, 200.0])
def test_corrected_time_of_short_series(tau: float) -> None:
    # 8 pooled series of 1000 values; the plain estimate is 0.67x (tau = 50) and 0.34x
    # (tau = 200) of the truth there
    phi = (tau - 1) / (tau + 1)
    estimates = [corrected_autocorrelation_time(ar1(phi, 1000, seed=s, n_series=8), pooled=True)
                 for s in range(10)]
    assert float(np.median(estimates)) == pytest.approx(tau, rel=0.2)
    plain = [integrated_autocorrelation_time(ar1(phi, 1000, seed=s, n_series=8), pooled=True)
             for s in range(10)]
    if tau >= 50:
        assert float(np.median(plain)) < 0.8 * tau  # what the correction is for


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9, 0.97])
def test_sokal_time_agrees_with_emcee(phi: float) -> None:
    # an independent implementation of the same estimator (Sokal's window, c = 5)
    autocorr = pytest.importorskip("emcee.autocorr")
    for seed in range(3):
        x = ar1(phi, 4000, seed=seed)
        ref = float(np.asarray(autocorr.integrated_time(x, c=5, tol=0, quiet=True))[0])
        # ours is floored at 1 (emcee can return 0.97 on white noise)
        assert integrated_autocorrelation_time(x, c=5.0) == pytest.approx(max(ref, 1.0),
                                                                           rel=1e-9)


def test_window_projections_are_fixed_and_chunk_independent() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(30, 70_000, generator=g)  # wider than one generation slice
    p1 = window_projections(w, 4, seed=5)
    p2 = window_projections(w + 3.0, 4, seed=5)  # centred: a shift changes nothing
    assert p1.shape == (4, 30)
    torch.testing.assert_close(p1, p2, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(p1, window_projections(w, 4, seed=6))


def test_window_ess_tells_random_walk_from_iid() -> None:
    g = torch.Generator().manual_seed(1)
    steps = torch.randn(2000, 50, generator=g, dtype=torch.float64)
    walk = steps.cumsum(dim=0)
    assert window_effective_sample_size(steps) > 1000
    assert window_effective_sample_size(walk) < 100
    assert (window_autocorrelation_time(walk, reduce="median")
            <= window_autocorrelation_time(walk, reduce="max"))


def test_the_time_of_a_steady_drift_is_capped_at_the_series_length() -> None:
    # a lag-1 correlation near 1 made the AR(1) bound (1 + phi) / (1 - phi) 2e12 from 150
    # values (and an effective sample size of 0): a series cannot resolve more than its length
    ramp = np.arange(150.0) + 1e-6 * np.random.default_rng(0).standard_normal(150)
    assert corrected_autocorrelation_time(ramp) == 150.0
    assert effective_sample_size(ramp) == 1.0
    assert window_effective_sample_size(torch.arange(50.0)[:, None] * torch.ones(1, 4)) >= 1.0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="NaN"):
        integrated_autocorrelation_time([1.0, np.nan, 2.0, 3.0])
    with pytest.raises(ValueError, match="at least 4"):
        integrated_autocorrelation_time([1.0, 2.0])
    with pytest.raises(ValueError, match="`first`"):
        stationarity_test(np.arange(100.0), first=0.8, last=0.5)
    with pytest.raises(ValueError, match="at least 20"):
        stationarity_test(np.arange(10.0))
    with pytest.raises(ValueError, match="`n_directions`"):
        window_projections(torch.randn(5, 3), 0)
    with pytest.raises(ValueError, match="`reduce`"):
        window_autocorrelation_time(torch.randn(20, 3), reduce="mean")


@pytest.mark.parametrize("phi", [0.0, 0.5])
def test_the_halves_of_a_window_of_one_law_agree(phi: float) -> None:
    # 8 directions of a window of 60 snapshots: the mean z^2 over 400 windows is about 1
    # (measured 1.01 for i.i.d. and 1.11 for phi = 0.5, whose tau is 3 in a half of 30)
    values = [half_window_chi2(ar1(phi, 60, seed=s, n_series=8)) for s in range(400)]
    assert 0.85 < np.mean(values) < 1.25
    assert np.quantile(values, 0.99) < 4.0


def test_halves_that_sit_in_different_modes_disagree() -> None:
    # a hop between two modes 3 standard deviations apart in the middle of the window
    x = ar1(0.3, 60, seed=0, n_series=8)
    x[:, 30:] += 3.0 * np.sqrt(1 / (1 - 0.3**2))
    assert half_window_chi2(x) > 10
    # a hop within one half inflates that half's spread instead: still far above 1
    y = ar1(0.3, 60, seed=1, n_series=8)
    y[:, 15:] += 3.0 * np.sqrt(1 / (1 - 0.3**2))
    assert half_window_chi2(y) > 4


def test_the_halves_statistic_needs_eight_snapshots_and_some_spread() -> None:
    assert math.isnan(half_window_chi2(np.zeros((8, 60))))
    assert math.isnan(half_window_chi2(ar1(0.0, 7, seed=0, n_series=8)))
    assert half_window_chi2(torch.as_tensor(ar1(0.0, 8, seed=0, n_series=2))) >= 0
