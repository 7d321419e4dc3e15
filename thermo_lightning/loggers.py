"""Writing only: metrics, the TensorBoard custom-scalars layout and the window's description
to every logger attached to a Trainer. The names live in :mod:`thermo_lightning.keys`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger

from thermo_lightning.keys import custom_scalars_layout

__all__ = ["log_hyperparams", "log_metrics", "write_layout"]


def write_layout(trainer: pl.Trainer) -> None:
    """Write the custom-scalars layout to every TensorBoard logger (global rank 0 only)."""
    if trainer.global_rank != 0:
        return
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_custom_scalars(custom_scalars_layout())


def log_metrics(trainer: pl.Trainer, metrics: Mapping[str, float], step: int) -> None:
    """Send ``metrics`` at ``step`` to every attached logger (loggers write on rank 0)."""
    if not metrics:
        return
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=step)


def log_hyperparams(trainer: pl.Trainer, params: Mapping[str, Any]) -> None:
    """Add ``params`` to every attached logger's hyperparameters (Lightning's own loggers merge
    them with the module's, e.g. into ``hparams.yaml``).

    A ``TensorBoardLogger`` only merges them into its ``hparams`` (its ``hparams.yaml``):
    its ``log_hyperparams`` would also write an hparams session, and TensorBoard shows a run's
    first session only, which would hide the module's own (its ``lr``) behind this one."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger) and isinstance(logger.hparams, dict):
            logger.hparams.update(dict(params))
        else:
            logger.log_hyperparams(dict(params))
