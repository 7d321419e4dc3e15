"""The paper's scale-invariant pre-activation ResNet-18 (docs/reproduction.md)."""

from __future__ import annotations

from torch import Tensor, nn

from thermo_lightning._validation import positive_int
from thermo_lightning.models.heads import frozen_linear_head

__all__ = ["ScaleInvariantResNet18"]


class _PreActBlock(nn.Module):
    """``BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3`` plus a shortcut; the 1x1 shortcut
    convolution (when the shape changes) also reads the normalised input."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, affine=False)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, affine=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + skip


class ScaleInvariantResNet18(nn.Module):
    """Pre-activation ResNet-18 of width ``k`` (64 is the standard width), scale-invariant in
    all its trainable weights.

    Stem ``conv3x3(in->k)``; four stages of two pre-activation blocks with ``k, 2k, 4k, 8k``
    channels and strides ``1, 2, 2, 2``; final ``BN-ReLU``, global average pool (AvgPool4 on
    32x32 inputs), flatten, frozen bias-free ``Linear(8k->classes)``. BatchNorm everywhere with
    ``affine=False``, no convolution bias. Trainable parameters: ``27k + 2724k^2`` for RGB.

    Args:
        width: ``k`` (the paper: 4 under-, 32 or 48 over-parameterised).
        num_classes: outputs of the frozen head.
        in_channels: image channels.
        head_seed: seed of the frozen head's weights.

    Example:
        >>> net = ScaleInvariantResNet18(4)
        >>> sum(p.numel() for p in net.parameters() if p.requires_grad) == 27 * 4 + 2724 * 16
        True
    """

    def __init__(
        self, width: int, num_classes: int = 10, in_channels: int = 3, *, head_seed: int = 0
    ) -> None:
        super().__init__()
        for name, value in (("width", width), ("num_classes", num_classes),
                            ("in_channels", in_channels)):
            positive_int(value, name)
        k = width
        self.width = width
        self.stem = nn.Conv2d(in_channels, k, 3, padding=1, bias=False)
        blocks = []
        c_in = k
        for c_out, stride in ((k, 1), (2 * k, 2), (4 * k, 2), (8 * k, 2)):
            blocks += [_PreActBlock(c_in, c_out, stride), _PreActBlock(c_out, c_out, 1)]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(8 * k, affine=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.head = frozen_linear_head(8 * k, num_classes, seed=head_seed)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: images ``(B, in_channels, H, W)``; returns logits ``(B, num_classes)``."""
        out = self.blocks(self.stem(x))
        return self.head(self.flatten(self.pool(self.relu(self.bn(out)))))
