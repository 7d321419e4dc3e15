"""Make your own network jointly scale-invariant, check it, and measure it.

A plain MLP is not scale-invariant: its biases, a trainable last layer and normalisation
layers with affine parameters all break ``f(c w) = f(w)``. This script shows the check
failing on such a network and naming the culprits, then builds the scale-invariant version
(bias-free linear layers each followed by ``BatchNorm1d(affine=False)``, a frozen head),
verifies it and trains it a few steps on digits with the sphere strategy and ThermoCallback.

Usage::

    python examples/custom_model.py            # a few seconds
"""

from __future__ import annotations

import argparse

import lightning.pytorch as pl
import torch
from torch import nn

from thermo_lightning import (
    SphereProjectionStrategy,
    ThermoCallback,
    find_scale_invariant_parameters,
    verify_scale_invariance,
)
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.models import ClassificationTask, frozen_linear_head


def naive_mlp(hidden: int = 32) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                         nn.Linear(hidden, 10))


class ScaleInvariantMLP(nn.Module):
    """``Linear(no bias) -> BatchNorm1d(affine=False) -> ReLU`` blocks and a frozen head."""

    def __init__(self, hidden: int = 32, depth: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = 64
        for _ in range(depth):
            layers += [nn.Linear(width, hidden, bias=False),
                       nn.BatchNorm1d(hidden, affine=False), nn.ReLU()]
            width = hidden
        self.features = nn.Sequential(*layers)
        self.head = frozen_linear_head(hidden, 10)  # fixed weights, Frobenius norm 10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def main(argv: list[str] | None = None) -> ThermoCallback:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    args = p.parse_args(argv)
    batch = torch.randn(32, 1, 8, 8)

    naive = naive_mlp()
    everything = [(n, q) for n, q in naive.named_parameters() if q.requires_grad]
    report = verify_scale_invariance(naive, everything, batch)
    print("naive MLP, all trainable parameters:", report)
    detected = [n for n, _ in find_scale_invariant_parameters(naive)]
    print("  detected scale-invariant group:", detected)

    net = ScaleInvariantMLP()
    group = find_scale_invariant_parameters(net)
    print("scale-invariant MLP:", [n for n, _ in group], verify_scale_invariance(net, group, batch))

    thermo = ThermoCallback(window=20, k=5, schedule=max(1, args.steps // 3), snr_batches=4)
    trainer = pl.Trainer(strategy=SphereProjectionStrategy(), callbacks=[thermo],
                         max_steps=args.steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(ClassificationTask(net, lr=0.1), DigitsDataModule(batch_size=64))
    print(thermo.history[["step", "thermo/U", "thermo/S", "thermo/snr"]].to_string(index=False))
    return thermo


if __name__ == "__main__":
    main()
