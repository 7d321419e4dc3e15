"""Data: i.i.d. with-replacement batches, digits (offline) and CIFAR-10/100."""

from thermo_lightning.data.modules import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFARDataModule,
    DigitsDataModule,
    TensorDataModule,
)
from thermo_lightning.data.sampling import (
    TensorBatchLoader,
    WithReplacementBatchSampler,
    batch_indices,
)

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFARDataModule",
    "DigitsDataModule",
    "TensorBatchLoader",
    "TensorDataModule",
    "WithReplacementBatchSampler",
    "batch_indices",
]
