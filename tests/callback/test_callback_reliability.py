"""ThermoCallback with the modules users write: no ``forward``, gradient accumulation, several
optimiser steps per batch, other precisions, resumed and reused callbacks (issue 11)."""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from tests.helpers.modules import NoForward, TwoStepsPerBatch
from tests.helpers.trainers import quiet_trainer
from thermo_lightning import SphereProjectionStrategy, keys
from thermo_lightning.buffer import available_memory
from thermo_lightning.callback import ThermoCallback
from thermo_lightning.data import DigitsDataModule


def _fit(model, cb, **kwargs):
    kwargs.setdefault("strategy", SphereProjectionStrategy())
    trainer = quiet_trainer(callbacks=[cb], **kwargs)
    trainer.fit(model, DigitsDataModule(batch_size=16))
    return trainer


def test_module_without_forward_is_measured() -> None:
    model = NoForward()
    cb = ThermoCallback(window=10, k=3, schedule=10, snr_batches=3)
    with pytest.warns(UserWarning, match="compute losses with training_step"):
        trainer = _fit(model, cb, max_steps=20)
    assert trainer.strategy.projector.verification.passed
    hist = cb.history
    assert math.isfinite(hist[keys.ENTROPY].iloc[-1]) and math.isfinite(hist[keys.SNR].iloc[-1])


def test_energy_is_the_batch_loss_under_gradient_accumulation() -> None:
    # 12 optimiser steps x 4 micro-batches; the window holds the last 10 steps (40 batches)
    model = NoForward()
    cb = ThermoCallback(window=10, k=3, schedule=12, snr=None)
    _fit(model, cb, max_steps=12, accumulate_grad_batches=4)
    assert len(model.batch_losses) == 48
    expected = np.mean(model.batch_losses[-40:])
    assert cb.history[keys.ENERGY].iloc[-1] == pytest.approx(expected, rel=1e-6)


def test_energy_with_two_optimiser_steps_per_batch() -> None:
    # 10 batches, 20 steps; the window of 8 snapshots spans the last 4 batches, each batch's
    # loss standing for both of its steps (no slot left at 0)
    model = TwoStepsPerBatch()
    cb = ThermoCallback(window=8, k=3, schedule=20, snr=None)
    with pytest.warns(UserWarning, match="scale-invariance of the sphere's group was not checked"):
        trainer = _fit(model, cb, max_steps=20)
    assert trainer.global_step == 20 and len(model.batch_losses) == 10
    assert cb.history[keys.ENERGY].iloc[-1] == pytest.approx(np.mean(model.batch_losses[-4:]),
                                                             rel=1e-6)
    assert torch.isfinite(cb.meter._losses).all() and (cb.meter._losses > 0).all()


def test_energy_window_starts_empty_not_zero() -> None:
    model = NoForward()
    cb = ThermoCallback(window=50, k=3, schedule=5, snr=None)
    _fit(model, cb, max_steps=5)
    # 5 of 50 slots filled: U is their mean, the 45 empty ones are not zeros
    assert cb.history[keys.ENERGY].iloc[-1] == pytest.approx(np.mean(model.batch_losses),
                                                             rel=1e-6)


def test_resume_with_stride_keeps_the_snapshot_phase(tmp_path: Path) -> None:
    def run(ckpt_path=None):
        pl.seed_everything(0)
        cb = ThermoCallback(window=6, k=2, stride=3, schedule=40, snr=None, save_window=True)
        ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=20,  # the first run writes
                               save_top_k=-1 if ckpt_path is None else 0)
        trainer = quiet_trainer(strategy="sphere_projection", max_steps=40,
                                callbacks=[cb, ckpt], enable_checkpointing=True)
        trainer.fit(NoForward(), DigitsDataModule(batch_size=16), ckpt_path=ckpt_path)
        return cb

    full = run()
    resumed = run(ckpt_path=tmp_path / "epoch=0-step=20.ckpt")  # 20 is not a multiple of 3
    assert sorted(resumed.buffer.steps) == sorted(full.buffer.steps) == list(range(24, 40, 3))
    assert resumed.history[keys.ENTROPY].iloc[-1] == pytest.approx(
        full.history[keys.ENTROPY].iloc[-1], rel=1e-9)


def test_reused_callback_starts_a_fresh_history() -> None:
    cb = ThermoCallback(window=5, k=2, schedule=5, snr=None)
    _fit(NoForward(), cb, max_steps=10)
    first = cb.history
    _fit(NoForward(), cb, max_steps=10)
    assert cb.history["step"].tolist() == first["step"].tolist() == [5.0, 10.0]


def test_double_precision_with_snr() -> None:
    cb = ThermoCallback(window=5, k=2, schedule=5, snr_batches=3)
    with pytest.warns(UserWarning, match="compute losses with training_step"):
        _fit(NoForward(), cb, max_steps=10, precision="64-true")
    assert np.isfinite(cb.history[keys.SNR]).all()


def test_log_schedule_with_max_epochs() -> None:
    cb = ThermoCallback(window=5, k=2, snr=None)  # schedule="log" needs the run's length
    model = NoForward()
    trainer = quiet_trainer(strategy=SphereProjectionStrategy(), max_epochs=1, callbacks=[cb])
    trainer.fit(model, DigitsDataModule(batch_size=16, num_steps=30))
    assert trainer.global_step == 30
    assert cb.history["step"].iloc[-1] == 30.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": [3, 3]}, "`k`"),
        ({"k": 2.5}, "`k`"),
        ({"k": "5"}, "`k`"),
        ({"schedule": 0}, "`schedule`"),
        ({"schedule": -5}, "`schedule`"),
        ({"schedule": True}, "`schedule`"),
        ({"memory_budget": 0}, "`memory_budget`"),
        ({"memory_budget": -1}, "`memory_budget`"),
        ({"buffer_device": "bogus"}, "`buffer_device`"),
        ({"temperature": "0.1"}, "`temperature`"),
        ({"temperature": math.nan}, "`temperature`"),
        ({"parameters": 42}, "`parameters`"),
        ({"parameters": "net.features.0.weight"}, "`parameters`"),
        ({"save_window": "yes"}, "`save_window`"),
        ({"seed": 1.5}, "`seed`"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ThermoCallback(**kwargs)


def test_default_memory_budget_uses_available_memory() -> None:
    avail, how = available_memory(torch.device("cpu"))
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        pytest.skip("no /proc/meminfo")
    fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines())
    expected = int(fields["MemAvailable"].split()[0]) * 1024
    assert "MemAvailable" in how
    assert avail == pytest.approx(expected, rel=0.1)  # memory moves a little between reads
    # a window that fits in a quarter of it is accepted by default (MemFree would refuse
    # it on a machine whose page cache is full)
    from thermo_lightning.buffer import TrajectoryBuffer

    TrajectoryBuffer(1000, 10, memory_budget=None)


def test_pickle_round_trip_before_and_after_fit() -> None:
    import pickle

    cb = ThermoCallback(window=5, k=2, schedule=5, snr=None)
    clone = pickle.loads(pickle.dumps(cb))
    assert clone.state_key == cb.state_key
    _fit(NoForward(), cb, max_steps=10)
    clone = pickle.loads(pickle.dumps(cb))  # keeps no trainer, hooks or iterators
    assert clone.history.equals(cb.history) and clone.spec == cb.spec
    _fit(NoForward(), clone, max_steps=5)  # and measures a new run
    assert clone.history["step"].tolist() == [5.0]


def test_paper_preset() -> None:
    cb = ThermoCallback.paper(snr=None)
    m = cb.meter
    assert (m.window, m.ks, m.stride_spec, m.estimator.name, m.schedule_spec) == (
        1000, (50,), 1, "knn_graph", "log")
    assert cb.snr is None
    assert ThermoCallback.paper(window=200).meter.window == 200
