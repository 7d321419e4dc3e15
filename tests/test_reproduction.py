"""The paper's toy-problem findings (docs/reproduction.md, 'The toy problems'), reproduced
within stated tolerances. Numbers from a 50,000-step float64 run per LR, as the paper; see
docs/reproduction.md."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from thermo_lightning.models import simulate_toy

LRS = np.array([1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 0.6, 2.0, 5.0, 10.0])


@pytest.fixture(scope="module")
def op():
    return simulate_toy("op", LRS, steps=50_000, record_every=50)


@pytest.fixture(scope="module")
def up():
    return simulate_toy("up", LRS, steps=50_000, record_every=50)


def test_op_loss_vanishes_below_lr_one(op) -> None:
    loss = op.tail_mean("loss").numpy()
    assert (loss[LRS <= 0.6] < 1e-6).all()  # paper: "goes to ~0 for eta below about 1"
    assert (loss[LRS >= 2.0] > 0.05).all()  # ... and not above it (measured 0.18-0.29)


def test_op_snr_plateaus_near_0_6(op) -> None:
    snr = op.tail_mean("snr").numpy()
    small = snr[LRS <= 3e-3]  # not yet converged to machine zero: the SNR is defined
    np.testing.assert_allclose(small, 0.6, atol=0.05)  # measured 0.578-0.580


def test_up_stationary_loss_rises_from_0_04_to_0_4(up) -> None:
    loss = up.tail_mean("loss").numpy()
    assert loss[LRS == 1e-2][0] == pytest.approx(0.04, abs=0.003)  # measured 0.0388
    assert loss[LRS == 10.0][0] == pytest.approx(0.4, abs=0.05)  # measured 0.378
    assert loss.min() >= 0.04 / 1.04 - 1e-12  # never below the minimum ...
    assert loss.min() == pytest.approx(0.04 / 1.04, abs=5e-4)  # ... reached at small eta
    assert (np.diff(loss) > 0).all()  # rising with the LR


def test_up_snr_falls_to_zero_while_stochastic_gradients_stay(up) -> None:
    snr = up.tail_mean("snr").numpy()
    sg = up.tail_mean("stoch_grad_norm").numpy()
    g = up.tail_mean("grad_norm").numpy()
    assert snr[0] < 0.03  # measured 0.018 at eta = 1e-3
    assert (np.diff(snr[LRS <= 0.6]) > 0).all()  # falling towards small LRs
    np.testing.assert_allclose(sg[LRS <= 0.3], 0.37, atol=0.03)  # measured 0.365-0.385
    assert g[0] < 0.05 * sg[0]  # the full gradient vanishes, the noise does not


# --------------------------------------------------------------------------- digits, CPU
# ScaleInvariantConvNet on scikit-learn's digits (1797 images): width 1 (387 SI parameters)
# cannot fit the training set (accuracy ~0.65), width 16 (96,912) fits it. Reduced from the
# runs in docs/reproduction.md to fit the CI budget.


# The under-parameterised net's T(eta) (width 1) is not tested here: one seed of a chaotic
# network is one draw (a single-seed test of it passed and failed on the same machine as the
# code around it changed), and the seeds-based protocol (the demo's network half: 21 runs,
# docs/reproduction.md: 30 runs) takes 5-10 minutes, beyond CI's budget. Its figures are
# measured at 3 seeds and 3 seed offsets in docs/reproduction.md and the README.


@pytest.mark.slow
def test_digits_over_parameterised_converges_with_falling_temperature(tmp_path) -> None:
    from thermo_lightning.functional import local_temperature
    from thermo_lightning.report import make_report, read_run
    from thermo_lightning.sweep import SweepConfig, run_dir_name, run_sweep

    cfg = SweepConfig(model="convnet", data="digits", width=16, lrs=[0.003], steps=1500,
                      window=200, stride=1, k=[20], snr=None, schedule=25)
    run_sweep(cfg, tmp_path, progress=False)
    result = make_report(tmp_path, tmp_path / "report")
    assert result.runs["regime"].tolist() == ["converging"]
    assert result.runs["train_acc"].iloc[0] == 1.0
    h = read_run(tmp_path / run_dir_name(0.003)).history.dropna(subset=["thermo/U", "thermo/S"])
    t = local_temperature(h["thermo/U"], h["thermo/S"])
    t = t[np.isfinite(t)]
    third = len(t) // 3
    # the temperature keeps falling along the run (measured: 4.9e-7 at the first points, a
    # median of 6.9e-9 over the first third and 1.9e-9 over the last)
    assert np.median(t[-third:]) < 0.5 * np.median(t[:third])
    good = t > 0
    assert good.mean() > 0.9
    steps = h["step"].to_numpy()[np.isfinite(local_temperature(h["thermo/U"], h["thermo/S"]))]
    slope = np.polyfit(np.log(steps[good]), np.log(t[good]), 1)[0]
    assert slope < -0.5
    # the callback's thermo/T_local (U and S drifting together) is logged along this
    # collapse, positive and falling
    logged = h["thermo/T_local"].dropna() if "thermo/T_local" in h else pd.Series(dtype=float)
    assert len(logged) >= 0.5 * len(h) and (logged > 0).all()
    third = len(logged) // 3
    assert logged.iloc[-third:].median() < 0.5 * logged.iloc[:third].median()
