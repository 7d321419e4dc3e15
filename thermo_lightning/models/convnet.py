"""The paper's scale-invariant ConvNet (docs/reproduction.md)."""

from __future__ import annotations

from torch import Tensor, nn

from thermo_lightning._validation import positive_int
from thermo_lightning.models.heads import frozen_linear_head

__all__ = ["ScaleInvariantConvNet"]


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(c_out, affine=False),
        nn.ReLU(),
    ]


class ScaleInvariantConvNet(nn.Module):
    """ConvNet of width ``c``, scale-invariant in all its trainable weights.

    ``conv3x3(in->c)-BN-ReLU; conv(c->2c)-BN-ReLU-MaxPool2; conv(2c->4c)-BN-ReLU-MaxPool2;
    conv(4c->8c)-BN-ReLU-MaxPool2; global max pool; flatten; frozen Linear(8c->classes)``,
    convolutions without bias, BatchNorm with ``affine=False``, the head frozen at Frobenius
    norm 10. On 32x32 inputs the global max pool is the paper's MaxPool4; it also accepts
    smaller images (8x8 digits). Trainable parameters: ``9 in c + 378 c^2`` (``27c + 378c^2``
    for RGB).

    Args:
        width: ``c`` (the paper: 8 under-, 64 or 96 over-parameterised).
        num_classes: outputs of the frozen head.
        in_channels: image channels (3 for CIFAR, 1 for digits).
        head_seed: seed of the frozen head's weights.

    Example:
        >>> net = ScaleInvariantConvNet(8)
        >>> sum(p.numel() for p in net.parameters() if p.requires_grad) == 27 * 8 + 378 * 8**2
        True
    """

    def __init__(
        self, width: int, num_classes: int = 10, in_channels: int = 3, *, head_seed: int = 0
    ) -> None:
        super().__init__()
        for name, value in (("width", width), ("num_classes", num_classes),
                            ("in_channels", in_channels)):
            positive_int(value, name)
        c = width
        self.width = width
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, c),
            *_conv_bn_relu(c, 2 * c),
            nn.MaxPool2d(2),
            *_conv_bn_relu(2 * c, 4 * c),
            nn.MaxPool2d(2),
            *_conv_bn_relu(4 * c, 8 * c),
            nn.MaxPool2d(2),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = frozen_linear_head(8 * c, num_classes, seed=head_seed)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: images ``(B, in_channels, H, W)`` with ``H, W >= 8``; returns logits
        ``(B, num_classes)``."""
        return self.head(self.features(x))
