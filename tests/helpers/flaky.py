"""A model factory for the sweep tests whose first run is interrupted at step 15."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl

from thermo_lightning.models import LangevinSphere, LangevinSphereModule


class _Interrupt(pl.Callback):
    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 15 and not self.flag.exists():
            self.flag.write_text("interrupted once")
            raise RuntimeError("simulated interruption at step 15")


class FlakyLangevin(LangevinSphereModule):
    def configure_callbacks(self):
        return [_Interrupt(Path(os.environ["THERMO_FLAKY_FLAG"]))]


def make(lr: float, width: int, datamodule, seed: int) -> pl.LightningModule:
    pl.seed_everything(seed, verbose=False)
    return FlakyLangevin(LangevinSphere(dim=4), lr=lr, seed=seed)
