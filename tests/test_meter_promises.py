"""What ThermoMeter's docs promise, held under the ways users break it (issue 26): a resume
taken between two snapshots, a meter pickled during a run, a sketch no smaller than the
weights, ``update()`` before ``setup()`` and per-sample losses."""

from __future__ import annotations

import pickle
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from tests.helpers.trainers import quiet_trainer
from thermo_lightning import keys
from thermo_lightning.callback import ThermoCallback
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.functional import knn_entropy
from thermo_lightning.meter import ThermoMeter
from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet

STEPS = 60


def _meter(**kwargs) -> ThermoMeter:
    kwargs = {"window": 8, "k": 2, "stride": 3, "schedule": 6, "save_window": True, **kwargs}
    return ThermoMeter(**kwargs)


def _weights() -> torch.Tensor:
    return torch.zeros(12, dtype=torch.float64)


def _steps(meter: ThermoMeter, w: torch.Tensor, start: int, stop: int) -> None:
    """Steps ``start..stop`` of a deterministic 'training': the weights and the loss of step
    ``t`` are functions of ``t`` alone, so a run can be cut anywhere and continued."""
    for t in range(start, stop + 1):
        w.copy_(torch.randn(12, generator=torch.Generator().manual_seed(t),
                            dtype=torch.float64))
        meter.snapshot()
        meter.update(torch.tensor(float(t % 7) + 0.01 * t))
        if meter.should_measure(t):
            meter.measure(t)


def _straight() -> pd.DataFrame:
    meter, w = _meter(), _weights()
    meter.setup([w], radius=None, max_steps=STEPS)
    _steps(meter, w, 1, STEPS)
    return meter.history


@pytest.mark.parametrize("cut", [20, 22, 24])  # two, one and no batches after a snapshot
def test_a_resume_between_snapshots_gives_the_uninterrupted_history(cut: int) -> None:
    first, w = _meter(), _weights()
    first.setup([w], radius=None, max_steps=STEPS)
    _steps(first, w, 1, cut)
    state = pickle.loads(pickle.dumps(first.state_dict()))  # a checkpoint on disk
    resumed = _meter()
    resumed.load_state_dict(state)
    resumed.setup([w], radius=None, max_steps=STEPS)
    _steps(resumed, w, cut + 1, STEPS)
    pd.testing.assert_frame_equal(resumed.history, _straight(), check_exact=True)


def test_a_meter_pickled_during_a_run_continues_it() -> None:
    first, w = _meter(save_window=False), _weights()
    first.setup([w], radius=None, max_steps=STEPS)
    _steps(first, w, 1, 20)
    clone = pickle.loads(pickle.dumps(first))  # no detach(): the run goes on
    assert clone.history.equals(first.history)
    clone.setup([w], radius=None, max_steps=STEPS)
    assert clone.history.equals(first.history)  # setup() kept the history ...
    _steps(clone, w, 21, STEPS)
    # ... and the window: the rest of the run is measured as if never interrupted
    pd.testing.assert_frame_equal(clone.history, _straight(), check_exact=True)


def test_a_meter_pickled_after_its_run_measures_a_new_one() -> None:
    meter, w = _meter(), _weights()
    meter.setup([w], radius=None, max_steps=STEPS)
    _steps(meter, w, 1, 12)
    meter.detach()  # the run is over (the callback detaches at the end of every fit)
    clone = pickle.loads(pickle.dumps(meter))
    clone.setup([w], radius=None, max_steps=STEPS)
    assert clone.history.empty


def test_lightning_resume_from_last_off_the_stride(tmp_path: Path) -> None:
    def run(ckpt_path=None, max_steps=40):
        pl.seed_everything(0)
        cb = ThermoCallback(window=6, k=2, stride=3, schedule=5, snr=None, save_window=True)
        ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=20 if ckpt_path is None
                               else 0, save_last=True)
        torch.manual_seed(0)
        model = ClassificationTask(ScaleInvariantConvNet(2, in_channels=1), lr=0.3)
        trainer = quiet_trainer(strategy="sphere_projection", max_steps=max_steps,
                                callbacks=[cb, ckpt], enable_checkpointing=True)
        trainer.fit(model, DigitsDataModule(batch_size=16, num_steps=40), ckpt_path=ckpt_path)
        return cb.history

    run(max_steps=20)  # last.ckpt at step 20: two batches after the snapshot of step 18
    resumed = run(ckpt_path=tmp_path / "last.ckpt")
    for stale in tmp_path.glob("*.ckpt"):
        stale.unlink()
    full = run()
    pd.testing.assert_frame_equal(resumed, full, check_exact=False, rtol=1e-9)


def test_a_sketch_no_smaller_than_the_weights_keeps_the_exact_window() -> None:
    said: list[str] = []
    meter = ThermoMeter(window=8, k=2, stride=1, schedule=12, sketch_dim=12, warn=said.append)
    w = _weights()
    spec = meter.setup([w], radius=None, max_steps=STEPS)
    assert spec.sketch_dim is None and any("not smaller than the 12 weights" in m for m in said)
    _steps(meter, w, 1, 12)
    rows, _, _ = meter.buffer.snapshots()  # a full window: rows in slot order
    latest = {(t - 1) % 8: torch.randn(12, generator=torch.Generator().manual_seed(t),
                                       dtype=torch.float64) for t in range(1, 13)}
    exact = torch.stack([latest[slot] for slot in range(8)])  # the weights themselves
    torch.testing.assert_close(rows.double(), exact, rtol=1e-6, atol=1e-6)
    assert meter.history[keys.ENTROPY].iloc[-1] == pytest.approx(
        knn_entropy(exact.float(), k=2, dim=12), rel=1e-5)


def test_update_before_setup_and_per_sample_losses_say_what_to_do() -> None:
    meter = _meter()
    with pytest.raises(RuntimeError, match=r"before setup\(\)"):
        meter.update(1.0)
    meter.setup([_weights()], radius=None, max_steps=STEPS)
    with pytest.raises(ValueError, match=r"shape \(32,\).*loss\.mean\(\)"):
        meter.update(torch.ones(32))
    meter.update(torch.ones(1))  # one number in any shape is a loss
