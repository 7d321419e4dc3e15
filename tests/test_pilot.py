"""CorrelationPilot against AR(1) series of known integrated autocorrelation time."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from thermo_lightning.functional.stationarity import integrated_autocorrelation_time
from thermo_lightning.pilot import CorrelationPilot


def _ar1(n: int, d: int, phi: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, d, dtype=torch.float64)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + torch.randn(d, generator=gen, dtype=torch.float64)
    return x


@pytest.mark.parametrize("phi", [0.8, 0.95])
def test_pilot_measures_the_ar1_integrated_time(phi: float) -> None:
    truth = (1 + phi) / (1 - phi)  # 9 and 39 steps
    taus = []
    for seed in range(9):
        series = _ar1(4000, 30, phi, seed=seed)
        pilot = CorrelationPilot(30, 4000, seed=seed)
        for row in series:
            pilot.record([row])
        assert pilot.done and pilot.points == 4000
        taus.append(pilot.correlation_time())
    # 3000 values of 77-440 correlation times; the corrected estimate over 20 seeds at
    # phi = 0.95: median 1.03x, 10-90% 0.95-1.20x, up to 1.42x (the plain one: median 0.90x)
    assert np.median(taus) == pytest.approx(truth, rel=0.15)
    assert np.allclose(taus, truth, rtol=0.5)


def test_a_thinned_pilot_reports_steps_not_points() -> None:
    # 4000 steps kept as 1000 points (every 4th step): tau = 39 steps is ~10 points
    series = _ar1(4000, 30, 0.95)
    pilot = CorrelationPilot(30, 4000, max_points=1000)
    for row in series:
        pilot.record([row])
    assert pilot.thin == 4 and pilot.points == 1000
    # (this series' unthinned estimate is 1.4x, the top of the spread over seeds)
    assert pilot.correlation_time() == pytest.approx(39.0, rel=0.5)


def test_pilot_over_many_tensors_and_a_coordinate_subset() -> None:
    # 70000 coordinates in two tensors: the directions live on 65536 of them; an AR(1) in
    # every coordinate gives the same tau whatever the subset
    gen = torch.Generator().manual_seed(0)
    a, b = torch.zeros(30000, dtype=torch.float64), torch.zeros(40000, dtype=torch.float64)
    pilot = CorrelationPilot(70000, 1500)
    assert pilot._coords.numel() == 65536
    for _ in range(1500):
        a.mul_(0.9).add_(torch.randn(30000, generator=gen, dtype=torch.float64))
        b.mul_(0.9).add_(torch.randn(40000, generator=gen, dtype=torch.float64))
        pilot.record([a, b])
    assert pilot.correlation_time() == pytest.approx(19.0, rel=0.25)
    with pytest.raises(ValueError, match="70000"):
        CorrelationPilot(70000, 10).record([a])


def test_pilot_edge_cases() -> None:
    still = CorrelationPilot(4, 100)
    for _ in range(100):
        still.record([torch.ones(4)])
    assert still.correlation_time() == 1.0  # weights that do not move: any stride will do
    short = CorrelationPilot(4, 10)
    for _ in range(10):
        short.record([torch.randn(4)])
    assert math.isnan(short.correlation_time())  # too few values to say
    short.record([torch.randn(4)])  # a finished pilot records nothing more
    assert short.steps == 10
    with pytest.raises(ValueError, match="length"):
        CorrelationPilot(4, 0)


def test_a_pilot_shorter_than_the_correlation_time_gives_a_lower_bound_in_words() -> None:
    # issue 27, a new user's trial: a 200-step pilot of weights that drift steadily (lr 1e-3
    # at the CLI's default 2000 steps) printed "correlation time is 2000044244418 steps" and
    # "train for at least 200004424442100 steps" (a lag-1 correlation near 1 inverted)
    pilot = CorrelationPilot(6, 200)
    gen = torch.Generator().manual_seed(0)
    drift = torch.randn(6, generator=gen, dtype=torch.float64)
    for t in range(200):
        pilot.record([t * drift + 1e-3 * torch.randn(6, generator=gen, dtype=torch.float64)])
    tau = pilot.correlation_time()
    assert tau == 150.0  # the 150 steps after the burn-in: a series cannot say more
    assert pilot.resolved_up_to() == 30.0
    assert pilot.describe(tau) == "at least 150 steps (more than a pilot of 200 steps resolves)"
    resolved = CorrelationPilot(30, 4000)
    for row in _ar1(4000, 30, 0.8):
        resolved.record([row])
    assert resolved.describe(resolved.correlation_time()).endswith(" steps")
    assert "at least" not in resolved.describe(resolved.correlation_time())


def test_pooled_autocorrelation_time_is_less_noisy_than_each_series() -> None:
    rows = _ar1(1000, 8, 0.9, seed=3).T.numpy()  # truth 19
    each = integrated_autocorrelation_time(rows)
    pooled = integrated_autocorrelation_time(rows, pooled=True)
    assert isinstance(pooled, float) and each.shape == (8,)
    assert abs(pooled - 19.0) < np.abs(each - 19.0).max()
    assert pooled == pytest.approx(19.0, rel=0.25)
