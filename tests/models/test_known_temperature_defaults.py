"""The headline number at the defaults: ``ThermoCallback()`` recovers a known temperature.

The known-temperature problem (SGD with Gaussian gradient noise on a quadratic over a sphere,
``T = lr sigma^2 / 2``) trained through Lightning, 20,000 steps per learning rate, each run
logged by Lightning's own CSVLogger into ``lightning_logs/version_N``, then read by the
report. The set-up (R^33, sigma 0.3, curvatures 2..4, learning rates 0.006-0.024) is the one
where the earlier defaults (windows of 1000 consecutive iterates) recovered only 0.56-0.67 of
``T``; it is not the demo's.
"""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from tests.helpers.trainers import quiet_trainer
from thermo_lightning import SphereProjectionStrategy, ThermoCallback
from thermo_lightning.models import LangevinSphere, LangevinSphereModule
from thermo_lightning.report import make_report

DIM, SIGMA, STEPS = 33, 0.3, 20_000
LRS = [0.006 * math.sqrt(2) ** i for i in range(5)]  # a 4x range


@pytest.mark.slow
def test_default_callback_recovers_the_known_temperature(tmp_path) -> None:
    problem = LangevinSphere(dim=DIM, noise_std=SIGMA,
                             curvatures=torch.linspace(2.0, 4.0, DIM - 1))
    for i, lr in enumerate(LRS):
        logger = CSVLogger(tmp_path, name="lightning_logs")
        logger.log_hyperparams({"lr": lr, "model": "langevin", "noise_std": SIGMA})
        callback = ThermoCallback(snr=None)  # the defaults; this problem has no data loader
        trainer = quiet_trainer(strategy=SphereProjectionStrategy(verify=False),
                                max_steps=STEPS, callbacks=[callback], precision="64-true",
                                logger=logger)
        trainer.fit(LangevinSphereModule(problem, lr=lr, seed=i, init_seed=i))
        # the callback chose its stride from the run: about one correlation time
        assert callback.meter.stride > 1
        assert math.isfinite(callback.meter.correlation_time)
    report = make_report(tmp_path / "lightning_logs", tmp_path / "report", tensorboard=False)
    t = report.temperature
    assert len(t) == len(LRS) and (t["regime"] == "stationary").all(), report.runs[
        ["lr", "regime", "reason"]]
    interior = t.iloc[1:-1]
    ratio = (interior["T"] / interior["T_true"]).to_numpy()
    assert ((ratio > 0.85) & (ratio < 1.15)).all(), t[["lr", "T", "T_true"]]
    assert not report.runs["low_ess"].any()
