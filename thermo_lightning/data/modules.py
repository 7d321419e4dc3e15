"""Lightning data modules over in-memory tensors: digits (offline) and CIFAR-10/100.

Training batches are drawn i.i.d. with replacement (:class:`TensorBatchLoader`) for as many
steps as the trainer runs; the whole training set is also available in order
(:meth:`TensorDataModule.full_batches`) for full-data losses and gradients. No augmentation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import Tensor

from thermo_lightning._availability import require
from thermo_lightning.data.sampling import TensorBatchLoader

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "CIFARDataModule", "DigitsDataModule", "TensorDataModule"]

#: per-channel mean and std of the CIFAR-10 training images (also used for CIFAR-100, as the
#: paper does)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class TensorDataModule(pl.LightningDataModule):
    """Base data module: images and labels held as tensors, batches drawn with replacement.

    Args:
        batch_size: samples per training batch (the paper: 128).
        num_steps: training batches per epoch; default ``trainer.max_steps *
            accumulate_grad_batches`` (one epoch is then the whole run).
        seed: seed of the batch sequence.
        on_device: keep the whole data set on the training device (fast on a GPU).
    """

    num_classes: int = 10
    in_channels: int = 3

    def __init__(
        self, batch_size: int = 128, num_steps: int | None = None, seed: int = 0,
        on_device: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}.")
        if num_steps is not None and (not isinstance(num_steps, int) or num_steps < 1):
            raise ValueError(f"`num_steps` must be None or a positive integer, got {num_steps!r}.")
        self.batch_size = batch_size
        self.num_steps = num_steps
        self.seed = seed
        self.on_device = on_device
        self.images: Tensor | None = None
        self.labels: Tensor | None = None

    # subclasses provide the raw tensors -------------------------------------------------
    def load_tensors(self) -> tuple[Tensor, Tensor]:
        """Return ``(images, labels)``: images ``(N, C, H, W)`` (any dtype ``transform``
        accepts), labels ``(N,)`` int64."""
        raise NotImplementedError

    def transform(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Per-batch transform after gathering (default: none)."""
        return batch

    # Lightning hooks ---------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.images is None:
            images, labels = self.load_tensors()
            if images.shape[0] != labels.shape[0]:
                raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels.")
            self.images, self.labels = images, labels.long()

    def _num_batches(self) -> int:
        if self.num_steps is not None:
            return self.num_steps
        trainer = self.trainer
        if trainer is None or trainer.max_steps is None or trainer.max_steps < 1:
            raise ValueError(
                "set `num_steps` on the data module or `Trainer(max_steps=...)`: batches are "
                "drawn with replacement, so an epoch has no natural length."
            )
        return trainer.max_steps * trainer.accumulate_grad_batches

    def _data(self) -> tuple[Tensor, Tensor]:
        self.setup()
        assert self.images is not None and self.labels is not None, "setup loads the data"
        if self.on_device and self.trainer is not None:
            device = self.trainer.strategy.root_device
            self.images, self.labels = self.images.to(device), self.labels.to(device)
        return self.images, self.labels

    def train_dataloader(self) -> TensorBatchLoader:
        """Batches i.i.d. with replacement, ``num_steps`` of them, resumable."""
        return TensorBatchLoader(
            self._data(), self.batch_size, self._num_batches(), self.seed, transform=self.transform
        )

    def full_batches(
        self, batch_size: int | None = None, device: torch.device | str | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The whole training set in order, ``batch_size`` at a time (default: the training
        batch size), transformed, on ``device``: for full-data loss and gradient."""
        images, labels = self._data()
        bs = batch_size or self.batch_size
        for start in range(0, images.shape[0], bs):
            batch = (images[start : start + bs], labels[start : start + bs])
            if device is not None:
                batch = (batch[0].to(device), batch[1].to(device))
            yield self.transform(batch)  # type: ignore[misc]

    def state_dict(self) -> dict:
        return {"seed": self.seed, "batch_size": self.batch_size}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("seed", self.seed) != self.seed:
            raise ValueError(
                f"the checkpoint was trained with data seed {state_dict['seed']}, this data "
                f"module has seed {self.seed}; resuming would change the batch sequence."
            )


class DigitsDataModule(TensorDataModule):
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes, one channel): offline.

    Pixels (0..16) are scaled to [0, 1] and standardised with the data set's mean and std.

    Example:
        >>> dm = DigitsDataModule(batch_size=32, num_steps=5)
        >>> dm.setup()
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> tuple(x.shape), x.dtype, tuple(y.shape)
        ((32, 1, 8, 8), torch.float32, (32,))
    """

    num_classes = 10
    in_channels = 1

    def load_tensors(self) -> tuple[Tensor, Tensor]:
        datasets = require("sklearn.datasets")
        digits = datasets.load_digits()
        x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        x = (x - x.mean()) / x.std()
        return x, torch.tensor(digits.target, dtype=torch.long)


class CIFARDataModule(TensorDataModule):
    """CIFAR-10 or CIFAR-100 training set (torchvision), normalised with CIFAR-10 mean/std.

    Images are kept as uint8 ``(N, 3, 32, 32)`` (150 MB) and converted per batch.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        root: folder of the torchvision data set.
        download: let torchvision download it (needs the internet).
        data: ``(images_uint8 (N, 32, 32, 3) or (N, 3, 32, 32), labels)`` to use instead of
            torchvision (tests, or a copy already in memory).
        **kwargs: :class:`TensorDataModule` arguments.
    """

    in_channels = 3

    def __init__(
        self,
        name: str = "cifar10",
        root: str | Path = "data",
        download: bool = False,
        data: tuple[Tensor, Tensor] | None = None,
        **kwargs: int | bool | None,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if name not in ("cifar10", "cifar100"):
            raise ValueError(f"`name` must be 'cifar10' or 'cifar100', got {name!r}.")
        self.name = name
        self.num_classes = 10 if name == "cifar10" else 100
        self.root = Path(root)
        self.download = download
        self._given = data
        self._mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
        self._std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)

    def prepare_data(self) -> None:
        if self._given is None and self.download:
            datasets = require("torchvision").datasets
            cls = datasets.CIFAR10 if self.name == "cifar10" else datasets.CIFAR100
            cls(str(self.root), train=True, download=True)

    def load_tensors(self) -> tuple[Tensor, Tensor]:
        if self._given is not None:
            images, labels = self._given
            images = torch.as_tensor(images)
            labels = torch.as_tensor(labels)
        else:
            datasets = require("torchvision").datasets
            cls = datasets.CIFAR10 if self.name == "cifar10" else datasets.CIFAR100
            try:
                ds = cls(str(self.root), train=True, download=False)
            except RuntimeError as err:
                raise RuntimeError(
                    f"{self.name} was not found under {self.root}: pass `download=True` (needs "
                    "the internet) or point `root` at a torchvision copy."
                ) from err
            images, labels = torch.from_numpy(ds.data), torch.tensor(ds.targets)
        if images.dtype != torch.uint8:
            raise ValueError(f"CIFAR images must be uint8 (0..255), got {images.dtype}.")
        if images.ndim == 4 and images.shape[-1] == 3:
            images = images.permute(0, 3, 1, 2)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"CIFAR images must be (N, 32, 32, 3) or (N, 3, 32, 32), got "
                             f"{tuple(images.shape)}.")
        if int(labels.max()) >= self.num_classes or int(labels.min()) < 0:
            raise ValueError(f"labels must lie in [0, {self.num_classes}) for {self.name}.")
        return images.contiguous(), labels.long()

    def transform(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        images, labels = batch
        x = images.float().div_(255.0)
        x = (x - self._mean.to(x.device)) / self._std.to(x.device)
        return x, labels
