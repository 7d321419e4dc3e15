"""Writing to Lightning's loggers: metrics, the custom-scalars layout, the window spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from tests.helpers.trainers import quiet_trainer
from thermo_lightning import keys
from thermo_lightning.callback import ThermoCallback
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.meter import WindowSpec
from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet


def test_spec_metrics_and_layout_reach_every_logger(tmp_path: Path) -> None:
    cb = ThermoCallback(window=10, k=[3, 2], schedule=10, snr=None)
    loggers = [CSVLogger(tmp_path, name="csv"), TensorBoardLogger(tmp_path, name="tb")]
    model = ClassificationTask(ScaleInvariantConvNet(2, in_channels=1), lr=0.1)
    quiet_trainer(strategy="sphere_projection", max_steps=20, callbacks=[cb], log_every_n_steps=5,
                  logger=loggers).fit(model, DigitsDataModule(batch_size=16))
    for folder in (tmp_path / "csv" / "version_0", tmp_path / "tb" / "version_0"):
        hparams = yaml.safe_load((folder / "hparams.yaml").read_text())
        assert WindowSpec.from_hparams(hparams) == cb.spec  # merged with the module's own
        assert hparams["lr"] == 0.1
    csv = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0]
    assert keys.ENERGY in csv and keys.ENTROPY in csv
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tb" / "version_0"))
    acc.Reload()
    assert "custom_scalars__config__" in acc.Tags()["tensors"]
    assert keys.ENTROPY in acc.Tags()["scalars"]


class _WritesALayout(ClassificationTask):
    """A module that writes its own custom-scalars layout, before the callback's (``setup``)
    or after it (``on_train_start``)."""

    def __init__(self, when: str) -> None:
        super().__init__(ScaleInvariantConvNet(2, in_channels=1), lr=0.1)
        self.when = when

    def _write(self) -> None:
        self.logger.experiment.add_custom_scalars(
            {"mine": {"loss": ["Multiline", ["train/loss"]]}})

    def setup(self, stage: str) -> None:
        if self.when == "setup":
            self._write()

    def on_train_start(self) -> None:
        if self.when == "train_start":
            self._write()


def _shown_layout(folder: Path) -> dict:
    """The layout TensorBoard shows for a run: the last one written (the custom-scalars
    plugin reads one point, the last)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    acc.Reload()
    proto = layout_pb2.Layout()
    proto.ParseFromString(acc.Tensors("custom_scalars__config__")[-1].tensor_proto.string_val[0])
    return {c.title: [chart.title for chart in c.chart] for c in proto.category}


@pytest.mark.parametrize("when", ["setup", "train_start"])
def test_the_users_custom_scalars_layout_is_merged_not_replaced(tmp_path: Path,
                                                                when: str) -> None:
    cb = ThermoCallback(window=5, k=2, schedule=5, snr=None)
    logger = TensorBoardLogger(tmp_path, name="tb")
    quiet_trainer(strategy="sphere_projection", max_steps=6, callbacks=[cb],
                  logger=logger).fit(_WritesALayout(when), DigitsDataModule(batch_size=16))
    shown = _shown_layout(tmp_path / "tb" / "version_0")
    assert shown["mine"] == ["loss"]  # the user's chart ...
    assert set(keys.custom_scalars_layout()) <= set(shown)  # ... and the callback's


def test_merge_layouts_keeps_every_chart_and_the_later_wins_a_clash() -> None:
    from thermo_lightning.loggers import merge_layouts

    a = {"x": {"one": ["Multiline", ["a"]], "two": ["Multiline", ["b"]]}}
    b = {"x": {"two": ["Multiline", ["c"]]}, "y": {"m": ["Margin", ["v", "lo", "hi"]]}}
    assert merge_layouts(a, b) == {"x": {"one": ["Multiline", ["a"]],
                                         "two": ["Multiline", ["c"]]},
                                   "y": {"m": ["Margin", ["v", "lo", "hi"]]}}


def _fit_into(folder: Path, lr: float, steps: int, ckpt_path=None, **kwargs) -> ThermoCallback:
    cb = ThermoCallback(window=5, k=2, stride=1, schedule=5, snr=None)
    torch.manual_seed(0)
    model = ClassificationTask(ScaleInvariantConvNet(2, in_channels=1), lr=lr)
    quiet_trainer(strategy="sphere_projection", max_steps=steps, callbacks=[cb],
                  logger=TensorBoardLogger(folder, name="", version=0), **kwargs).fit(
        model, DigitsDataModule(batch_size=16, num_steps=40), ckpt_path=ckpt_path)
    return cb


def test_a_logger_version_used_for_two_trainings_is_read_as_the_last(tmp_path: Path) -> None:
    from thermo_lightning.runs import read_run

    _fit_into(tmp_path, lr=0.3, steps=40)
    second = _fit_into(tmp_path, lr=0.05, steps=20)  # the same version_0 folder
    run = read_run(tmp_path / "version_0")
    assert run.lr == 0.05 and run.history["step"].max() == 20  # not the first's steps 25-40
    want = second.history.set_index("step")[keys.ENERGY]
    got = run.history.set_index("step")[keys.ENERGY]
    assert np.allclose(got.reindex(want.index).to_numpy(), want.to_numpy(), rtol=1e-6)
    assert any("2 trainings" in p for p in run.problems)


def test_a_fit_resumed_into_its_own_version_is_one_training(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    from thermo_lightning.runs import read_run

    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=20, save_top_k=-1)
    cb = ThermoCallback(window=5, k=2, stride=1, schedule=5, snr=None)
    torch.manual_seed(0)
    model = ClassificationTask(ScaleInvariantConvNet(2, in_channels=1), lr=0.3)
    quiet_trainer(strategy="sphere_projection", max_steps=40, callbacks=[cb, ckpt],
                  enable_checkpointing=True,
                  logger=TensorBoardLogger(tmp_path, name="", version=0)).fit(
        model, DigitsDataModule(batch_size=16, num_steps=40))
    full = cb.history
    resumed = _fit_into(tmp_path, lr=0.3, steps=40,
                        ckpt_path=tmp_path / "ckpt" / "epoch=0-step=20.ckpt")
    run = read_run(tmp_path / "version_0")
    assert not [p for p in run.problems if "trainings" in p]
    assert run.history["step"].tolist() == full["step"].tolist()  # nothing lost or doubled
    got = run.history.set_index("step")[keys.ENERGY]
    assert np.allclose(got.to_numpy(), full[keys.ENERGY].to_numpy(), rtol=1e-6)
    assert resumed.history["step"].tolist() == full["step"].tolist()
    # measured at step 0 only: kept by the checkpoint (a new user saw None after a resume)
    assert cb.random_loss is not None and resumed.random_loss == cb.random_loss
