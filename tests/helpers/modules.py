"""LightningModules written the way users write them, for the reliability tests."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn

from thermo_lightning.models import ScaleInvariantConvNet


class NoForward(pl.LightningModule):
    """The most common Lightning pattern: no ``forward``; ``training_step`` calls
    ``self.net(x)``. Records the loss of every training batch (undivided)."""

    def __init__(self, lr: float = 0.2, width: int = 2) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = ScaleInvariantConvNet(width, in_channels=1)
        self.lr = lr
        self.batch_losses: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train/loss", loss)
        if torch.is_grad_enabled():  # not the strategy's check (no_grad) of scale invariance
            self.batch_losses.append(float(loss.detach()))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD([p for p in self.parameters() if p.requires_grad], lr=self.lr)


class ManualNoForward(NoForward):
    """Manual optimisation and no ``forward``: nothing the strategy can run to check scale
    invariance. ``parts`` optimiser steps per batch, one on each part of the batch; the
    recorded batch loss is their mean."""

    def __init__(self, parts: int = 1) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.parts = parts

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        x, y = batch
        losses = []
        for xs, ys in zip(x.chunk(self.parts), y.chunk(self.parts), strict=True):
            loss = nn.functional.cross_entropy(self.net(xs), ys)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
            losses.append(float(loss.detach()))
        self.batch_losses.append(sum(losses) / len(losses))
        return torch.tensor(self.batch_losses[-1])


class TwoStepsPerBatch(ManualNoForward):
    """Manual optimisation with two optimiser steps per batch (two halves of the batch)."""

    def __init__(self) -> None:
        super().__init__(parts=2)


class GrowsAParameter(NoForward):
    """Adds a scale-invariant layer's weight after the strategy has set up its group."""

    def __init__(self, at_batch: int = 0) -> None:
        super().__init__()
        self.at_batch = at_batch

    def on_train_batch_start(self, batch, batch_idx):
        if batch_idx == self.at_batch:
            self.net.features[0].weight2 = nn.Parameter(torch.randn(2, 1, 3, 3))
