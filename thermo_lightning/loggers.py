"""Metric keys, the TensorBoard layout, and writing metrics to every attached logger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger

__all__ = [
    "DUPLICATES",
    "ELR",
    "ENERGY",
    "ENTROPY",
    "ESS",
    "FREE_ENERGY",
    "GRAD_NORM",
    "NOISE_SCALE",
    "SKIPPED",
    "SNR",
    "STOCH_GRAD_NORM",
    "STRIDE",
    "T_LOCAL",
    "WEIGHT_NORM",
    "WINDOW_FILL",
    "custom_scalars_layout",
    "entropy_key",
    "log_metrics",
    "write_layout",
]

PREFIX = "thermo/"
ENERGY = PREFIX + "U"  #: mean training loss over the window (or the full-data loss)
ENTROPY = PREFIX + "S"  #: entropy of the window for the first k
T_LOCAL = PREFIX + "T_local"  #: dU/dS along the run (central difference)
FREE_ENERGY = PREFIX + "F"  #: U - T S for a given temperature
SNR = PREFIX + "snr"  #: gradient signal-to-noise ratio
GRAD_NORM = PREFIX + "grad_norm"  #: ||g||, full-data gradient norm (estimated or exact)
STOCH_GRAD_NORM = PREFIX + "stoch_grad_norm"  #: mean_b ||g_b||
NOISE_SCALE = PREFIX + "noise_scale"  #: tr(Sigma) / ||g||^2
ELR = PREFIX + "elr"  #: effective learning rate lr / ||w||^2
WEIGHT_NORM = PREFIX + "weight_norm"  #: joint norm of the scale-invariant group
ESS = PREFIX + "ess"  #: effective sample size of the window
WINDOW_FILL = PREFIX + "window_fill"  #: fraction of the window filled
STRIDE = PREFIX + "stride"  #: steps between snapshots
DUPLICATES = PREFIX + "duplicates"  #: snapshots whose nearest neighbour is identical
SKIPPED = PREFIX + "skipped"  #: snapshots dropped for NaN/Inf (total)


def entropy_key(k: int) -> str:
    """``thermo/S_k{k}``."""
    return f"{PREFIX}S_k{k}"


def custom_scalars_layout(ks: Sequence[int]) -> dict:
    """TensorBoard custom-scalars layout: one "thermo" category with charts for energy and
    free energy, entropy over k, temperature, SNR and norms."""
    return {
        "thermo": {
            "energy and free energy": ["Multiline", [ENERGY, FREE_ENERGY]],
            "entropy over k": ["Multiline", [entropy_key(k) for k in ks]],
            "temperature": ["Multiline", [T_LOCAL]],
            "gradient SNR": ["Multiline", [SNR, NOISE_SCALE]],
            "norms": ["Multiline", [GRAD_NORM, STOCH_GRAD_NORM, WEIGHT_NORM, ELR]],
            "window": ["Multiline", [ESS, WINDOW_FILL, STRIDE, DUPLICATES]],
        }
    }


def write_layout(trainer: pl.Trainer, ks: Sequence[int]) -> None:
    """Write the custom-scalars layout to every TensorBoard logger (global rank 0 only)."""
    if trainer.global_rank != 0:
        return
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_custom_scalars(custom_scalars_layout(ks))


def log_metrics(trainer: pl.Trainer, metrics: Mapping[str, float], step: int) -> None:
    """Send ``metrics`` at ``step`` to every attached logger (loggers write on rank 0)."""
    if not metrics:
        return
    for logger in trainer.loggers:
        logger.log_metrics(dict(metrics), step=step)
