"""Small LightningModules: image classification with a scale-invariant net, and the toy
sphere problems of docs/reproduction.md, 'The toy problems'."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import torch
import torchmetrics
from torch import Tensor, nn

from thermo_lightning.data.sampling import TensorBatchLoader, _mix, _ResumableIndex
from thermo_lightning.models.langevin import LangevinSphere
from thermo_lightning.models.toy import toy_objects

__all__ = [
    "ClassificationTask",
    "GaussianNoiseLoader",
    "LangevinSphereModule",
    "ToySphereModule",
    "toy_objects",
]


class ClassificationTask(pl.LightningModule):
    """Cross-entropy training of ``net`` with plain SGD (no momentum, no weight decay by
    default, as the paper trains on the sphere).

    Logs ``train/loss`` and ``train/acc`` (training accuracy: an under-parameterised net never
    reaches 100%).

    Args:
        net: the network, ``(B, ...) -> (B, num_classes)`` logits.
        lr: learning rate (the effective LR when the SI weights are on the unit sphere).
        num_classes: for the accuracy metric (default: read from ``net.head``).
        momentum, weight_decay: SGD options (the sphere strategy warns when they are used).
    """

    def __init__(
        self,
        net: nn.Module,
        lr: float = 0.01,
        num_classes: int | None = None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        if not lr > 0:
            raise ValueError(f"`lr` must be positive, got {lr!r}.")
        self.net = net
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        if num_classes is None:
            head = getattr(net, "head", None)
            num_classes = getattr(head, "out_features", None)
            if num_classes is None:
                raise ValueError("pass `num_classes`: `net` has no `head.out_features`.")
        self.train_acc = torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)
        self.save_hyperparameters(ignore=["net"])

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def loss(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy and logits of a batch ``(x, y)``."""
        x, y = batch
        logits = self(x)
        return nn.functional.cross_entropy(logits, y), logits

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss, logits = self.loss(batch)
        self.train_acc(logits, batch[1])
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=True, on_epoch=False)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                               weight_decay=self.weight_decay)


class ToySphereModule(pl.LightningModule):
    """The toy problem of docs/reproduction.md ('The toy problems'): a point ``x`` on the unit
    sphere in ``R^3``, per-object loss ``l_i(x) = (a_i . x)^2 / ||x||^2``, batch size 1 (one
    object per step, drawn with replacement), plain SGD.

    The loss is scale-invariant, so its gradient is tangent to the sphere; with
    :class:`~thermo_lightning.SphereProjectionStrategy` every step is "step, renormalise".
    Train it in float64 (``Trainer(precision="64-true")``) as the paper does.

    Args:
        kind: ``"op"`` (two objects, a shared zero) or ``"up"`` (three objects).
        lr: learning rate.
        x0: starting point (normalised); the paper: ``(-0.8, 0.6, 0.1)``.
        seed: seed of the object sequence.
        num_steps: steps of the train loader (default ``trainer.max_steps``).
    """

    def __init__(
        self,
        kind: str = "up",
        lr: float = 0.1,
        x0: tuple[float, float, float] = (-0.8, 0.6, 0.1),
        seed: int = 0,
        num_steps: int | None = None,
    ) -> None:
        super().__init__()
        if not lr > 0:
            raise ValueError(f"`lr` must be positive, got {lr!r}.")
        self.save_hyperparameters()
        self.register_buffer("objects", toy_objects(kind))
        x = torch.tensor(x0, dtype=torch.float64)
        self.x = nn.Parameter(x / x.norm())

    def scale_invariant_parameters(self) -> list[nn.Parameter]:
        """The loss is scale-invariant in ``x`` by construction (nothing to detect)."""
        return [self.x]

    def object_losses(self, x: Tensor | None = None) -> Tensor:
        """``(n_objects,)`` per-object losses at ``x`` (default: the current point)."""
        x = self.x if x is None else x
        return (self.objects.to(x) @ x) ** 2 / (x @ x)

    @torch.no_grad()
    def full_loss(self) -> Tensor:
        """Mean loss over all objects (the finite-sum objective), without gradient."""
        return self.object_losses().mean()

    def forward(self, idx: Tensor) -> Tensor:
        return self.object_losses()[idx]

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        (idx,) = batch
        loss = self(idx).mean()
        self.log("train/loss", loss)
        return loss

    def full_batches(self) -> Iterator[tuple[Tensor]]:
        """The whole data set (the objects) as one batch of indices: for the exact SNR and
        the full-data loss."""
        yield (torch.arange(self.objects.shape[0], device=self.objects.device),)

    def train_dataloader(self) -> TensorBatchLoader:
        n = self.hparams.num_steps or (self.trainer.max_steps if self.trainer.max_steps > 0 else 0)
        if n < 1:
            raise ValueError("set `num_steps` or `Trainer(max_steps=...)` for the toy problem.")
        ids = torch.arange(self.objects.shape[0])
        return TensorBatchLoader((ids,), batch_size=1, num_batches=n, seed=self.hparams.seed)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([self.x], lr=self.hparams.lr)


class GaussianNoiseLoader(_ResumableIndex):
    """``num_batches`` standard Gaussian vectors of size ``dim``: batch ``b`` is a pure function
    of ``(seed, rank, b)``; resumable like :class:`~thermo_lightning.data.TensorBatchLoader`."""

    def __init__(self, dim: int, num_batches: int, seed: int = 0) -> None:
        self.dim = dim
        self.num_batches = num_batches
        self.seed = seed
        self._init_position()

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self):
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        for i in self._positions():
            yield self._batch(self.seed, rank, self._global_index(i))

    def _batch(self, seed: int, rank: int, index: int) -> tuple[Tensor]:
        gen = torch.Generator().manual_seed(_mix(seed, rank, index))
        return (torch.randn(self.dim, generator=gen, dtype=torch.float64),)

    def extra_batches(self, count: int, *, seed: int, start: int, rank: int = 0
                      ) -> list[tuple[Tensor]]:
        """``count`` noise batches ``start .. start+count-1`` of an independent stream (its
        own ``seed``): the mini-batches of the gradient SNR and of the configurational
        temperature, drawn without touching the training noise."""
        return [self._batch(seed, rank, start + j) for j in range(count)]


class LangevinSphereModule(pl.LightningModule):
    """The known-temperature problem trained through Lightning.

    A point ``w`` on the unit sphere in ``R^n`` (one parameter tensor), energy
    ``L(w) = 0.5 sum_k lambda_k w_k^2 / ||w||^2`` and, each step, a Gaussian noise vector ``xi``
    from the data loader: the training loss is ``L(w) + sigma <xi, w / ||w||>``, whose gradient
    is ``grad L + sigma (xi projected to the tangent plane) / ||w||``. With
    :class:`~thermo_lightning.SphereProjectionStrategy` and plain SGD this is exactly
    :meth:`~thermo_lightning.models.LangevinSphere.simulate`, with stationary temperature
    ``T = lr sigma^2 / 2``. ``training_step`` returns the noise-free energy as ``"energy"``,
    which :class:`~thermo_lightning.callback.ThermoCallback` averages as ``U``.

    Args:
        problem: the :class:`LangevinSphere` (dimension, curvatures, ``sigma``).
        lr: learning rate.
        seed: seed of the noise sequence.
        init_seed: seed of the starting point (a draw from the small-``T`` Gibbs law).
    """

    def __init__(self, problem: LangevinSphere | None = None, lr: float = 0.01, seed: int = 0,
                 init_seed: int = 0) -> None:
        super().__init__()
        if not lr > 0:
            raise ValueError(f"`lr` must be positive, got {lr!r}.")
        self.problem = problem or LangevinSphere()
        self.lr = lr
        self.seed = seed
        gen = torch.Generator().manual_seed(init_seed)
        w0 = self.problem.initial_points(torch.tensor([lr]), 1, gen)[0, 0]
        self.w = nn.Parameter(w0)

    def temperature(self) -> float:
        """The known temperature ``lr sigma^2 / 2``."""
        return self.problem.temperature(self.lr)

    def scale_invariant_parameters(self) -> list[nn.Parameter]:
        return [self.w]

    def energy(self) -> Tensor:
        """``L(w)`` at the current point."""
        return self.problem.loss(self.w)

    def forward(self, xi: Tensor) -> Tensor:
        """The noisy training loss for the noise vector ``xi`` (scale-invariant in ``w``)."""
        xi = xi.reshape(-1).to(self.w)
        return self.energy() + self.problem.noise_std * (xi @ self.w) / self.w.norm()

    def loss(self, batch: Any) -> Tensor:
        """The noisy training loss of one step (``batch = (xi,)``)."""
        (xi,) = batch
        return self(xi)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        return {"loss": self.loss(batch), "energy": self.energy().detach()}

    def train_dataloader(self) -> GaussianNoiseLoader:
        n = self.trainer.max_steps if self.trainer.max_steps > 0 else 0
        if n < 1:
            raise ValueError("set `Trainer(max_steps=...)` for the Langevin problem.")
        return GaussianNoiseLoader(self.problem.dim, n, seed=self.seed)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([self.w], lr=self.lr)
