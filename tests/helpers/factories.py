"""A user's model factory with an argument of its own (for ``model_args`` grid axes)."""

from __future__ import annotations

import lightning.pytorch as pl

from thermo_lightning.models import LangevinSphere, LangevinSphereModule


def langevin(lr: float, width: int, datamodule, seed: int, noise: float = 0.5
             ) -> pl.LightningModule:
    """The known-temperature problem with its gradient noise as the factory's own argument
    ``noise`` (T = lr noise^2 / 2)."""
    pl.seed_everything(seed, verbose=False)
    return LangevinSphereModule(LangevinSphere(dim=4, noise_std=noise), lr=lr, seed=seed)
