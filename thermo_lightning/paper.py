"""Settings and published numbers of Sadrtdinov et al. (2025), docs/reproduction.md.

Used by the CIFAR examples to run the paper's set-ups and by the reproduction notes to compare
against the published fitted temperatures ``T = b * lr**a``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PAPER_SETUPS", "PaperSetup", "paper_lr_grid"]


@dataclass(frozen=True)
class PaperSetup:
    """One row of the paper's experiments: model, data set, regime and its fitted
    temperature ``T = b * lr**a``."""

    model: str  # "convnet" or "resnet18"
    dataset: str  # "cifar10" or "cifar100"
    regime: str  # "up" or "op"
    width: int
    num_parameters: int  # D, scale-invariant parameters
    steps: int
    b: float
    a: float

    def temperature(self, lr: float) -> float:
        return self.b * lr**self.a


PAPER_SETUPS: tuple[PaperSetup, ...] = (
    PaperSetup("convnet", "cifar10", "up", 8, 24_408, 1_600_000, 3.9e-3, 0.85),
    PaperSetup("convnet", "cifar10", "op", 64, 1_550_016, 1_600_000, 2.5e-4, 0.86),
    PaperSetup("resnet18", "cifar10", "up", 4, 43_692, 1_000_000, 3.9e-4, 0.57),
    PaperSetup("resnet18", "cifar10", "op", 32, 2_790_240, 1_000_000, 2.4e-6, 0.34),
    PaperSetup("convnet", "cifar100", "up", 8, 24_408, 1_600_000, 5.8e-5, 0.29),
    PaperSetup("convnet", "cifar100", "op", 96, 3_486_240, 1_600_000, 9.9e-7, 0.07),
    PaperSetup("resnet18", "cifar100", "up", 4, 43_692, 1_000_000, 6.2e-5, 0.32),
    PaperSetup("resnet18", "cifar100", "op", 48, 6_277_392, 1_000_000, 1.5e-6, 0.23),
)


def paper_lr_grid() -> list[float]:
    """24 learning rates in ``[1e-5, 1]``: two per decade outside ``[1e-3, 1e-2]``, 15 per
    decade inside it (the paper's grids have 22-28 points with that density)."""
    low = np.geomspace(1e-5, 1e-3, 5)
    mid = np.geomspace(1e-3, 1e-2, 16)
    high = np.geomspace(1e-2, 1.0, 5)
    grid = np.unique(np.round(np.concatenate([low, mid, high]), 12))
    return [float(f"{v:.4g}") for v in grid]


def find_setup(model: str, dataset: str, regime: str) -> PaperSetup:
    """The paper's set-up for ``(model, dataset, regime)``."""
    for s in PAPER_SETUPS:
        if (s.model, s.dataset, s.regime) == (model, dataset, regime):
            return s
    raise ValueError(f"no paper set-up for {(model, dataset, regime)}.")
