"""The paper's ResNet-18 experiments on CIFAR-10 / CIFAR-100 (needs the data set; a GPU).

Pre-activation ResNet-18, under-parameterised width 4, over-parameterised width 32 (CIFAR-10)
or 48 (CIFAR-100), 1.0M steps per LR; otherwise as ``examples/cifar_convnet.py``.

Usage::

    python examples/cifar_resnet.py --dataset cifar100 --regime op --data-root ~/data \\
        --accelerator gpu --workers 4
    python examples/cifar_resnet.py --fast --data-root ~/data
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "cifar_convnet", Path(__file__).with_name("cifar_convnet.py"))
assert _spec is not None and _spec.loader is not None
cifar_convnet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cifar_convnet)

MODEL = "resnet18"


def main(argv: list[str] | None = None) -> dict[str, object]:
    return cifar_convnet.run(cifar_convnet.parse(argv, MODEL), MODEL)


if __name__ == "__main__":
    main()
