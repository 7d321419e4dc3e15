"""The package's warnings point at the user's line and have their own category (issue 26: a
new user's script showed ``/.../thermo_lightning/projector.py:175:`` before each message, a
line of this package that the user cannot act on)."""

from __future__ import annotations

import warnings

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.helpers.trainers import quiet_trainer
from thermo_lightning import ThermoCallback, ThermoWarning
from thermo_lightning._warnings import user_stacklevel
from thermo_lightning.functional.entropy import DuplicatePointsWarning


class _Task(pl.LightningModule):
    """A module without ``forward``, a head outside the sphere (one warning) and no ``loss``
    (another)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 8, bias=False), nn.BatchNorm1d(8, affine=False),
                                 nn.ReLU(), nn.Linear(8, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_warnings_of_a_fit_point_at_the_users_fit_call() -> None:
    x = torch.randn(64, 6, generator=torch.Generator().manual_seed(0))
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)
    trainer = quiet_trainer(strategy="sphere_projection", max_steps=12,
                            callbacks=[ThermoCallback(window=4, k=2, stride=1, snr=None)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(_Task(), data)  # the line the package's warnings name
    ours = [w for w in caught if issubclass(w.category, ThermoWarning)]
    assert any("outside the sphere" in str(w.message) for w in ours), [str(w.message)
                                                                      for w in caught]
    assert all(w.filename == __file__ for w in ours), {w.filename for w in ours}


def test_the_category_filters_them_and_the_duplicate_warning_keeps_its_own() -> None:
    assert issubclass(DuplicatePointsWarning, ThermoWarning)
    assert issubclass(DuplicatePointsWarning, RuntimeWarning)  # as before
    assert issubclass(ThermoWarning, UserWarning)
    from thermo_lightning._warnings import warn

    with warnings.catch_warnings():
        warnings.simplefilter("error", ThermoWarning)
        with pytest.raises(ThermoWarning, match="biased"):
            warn("S biased low")


def test_the_level_names_the_first_frame_outside_the_package() -> None:
    def from_here() -> int:
        return user_stacklevel()

    # called from this test file: the function itself is outside the package (level 1)
    assert from_here() == 1
