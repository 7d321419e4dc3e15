"""Small, quiet Trainers and recording callbacks shared by the Lightning tests."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from thermo_lightning.functional import joint_norm


def quiet_trainer(**kwargs: Any) -> pl.Trainer:
    """A CPU Trainer without logger, checkpoints, progress bar or model summary."""
    defaults = {
        "accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
        "enable_progress_bar": False, "enable_model_summary": False,
    }
    defaults.update(kwargs)
    return pl.Trainer(**defaults)


class NormRecorder(pl.Callback):
    """After every training batch: the joint norm of the strategy's SI group, the number of
    projections so far, and a copy of the SI weights."""

    def __init__(self, keep_weights: bool = False) -> None:
        self.norms: list[float] = []
        self.projections: list[int] = []
        self.weights: list[torch.Tensor] = []
        self.batch_fingerprints: list[float] = []
        self.keep_weights = keep_weights

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        projector = trainer.strategy.projector
        self.norms.append(float(joint_norm(projector.parameters)))
        self.projections.append(projector.projection_count)
        first = batch[0] if isinstance(batch, list | tuple) else batch
        self.batch_fingerprints.append(float(first.double().sum()))
        if self.keep_weights:
            self.weights.append(torch.cat([p.detach().reshape(-1).clone()
                                           for p in projector.parameters]))
