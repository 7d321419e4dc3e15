"""The frozen last layer shared by the paper's networks."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["frozen_linear_head"]


def frozen_linear_head(
    in_features: int, num_classes: int, *, norm: float = 10.0, seed: int = 0
) -> nn.Linear:
    """A bias-free linear layer with fixed weights: PyTorch's default initialisation drawn
    from ``seed``, rescaled to Frobenius norm ``norm``, ``requires_grad=False``.

    Freezing the head makes the logits a function of the scale-invariant features only, so the
    whole trainable weight vector lives on the sphere (docs/sphere.md).
    """
    if not norm > 0:
        raise ValueError(f"`norm` must be positive, got {norm!r}.")
    head = nn.Linear(in_features, num_classes, bias=False)
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / in_features**0.5  # nn.Linear's default kaiming-uniform bound for a=sqrt(5)
    with torch.no_grad():
        head.weight.copy_(torch.rand(head.weight.shape, generator=gen) * 2 * bound - bound)
        head.weight.mul_(norm / head.weight.norm())
    head.weight.requires_grad_(False)
    return head
