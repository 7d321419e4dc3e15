"""Writing to Lightning's loggers: metrics, the custom-scalars layout, the window spec."""

from __future__ import annotations

from pathlib import Path

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
