"""One helper for conditional skips (GPU, FAISS, distributed, optional packages)."""

from __future__ import annotations

import pytest
import torch

from thermo_lightning._availability import module_available


def RunIf(
    *,
    min_cuda_gpus: int = 0,
    faiss: bool = False,
    sklearn: bool = False,
    scipy: bool = False,
    torchvision: bool = False,
) -> pytest.MarkDecorator:
    """``@RunIf(faiss=True)``: skip unless every named requirement is met."""
    reasons = []
    if min_cuda_gpus and torch.cuda.device_count() < min_cuda_gpus:
        reasons.append(f"needs {min_cuda_gpus} CUDA GPU(s)")
    for flag, mod in ((faiss, "faiss"), (sklearn, "sklearn"), (scipy, "scipy"),
                      (torchvision, "torchvision")):
        if flag and not module_available(mod):
            reasons.append(f"needs {mod}")
    return pytest.mark.skipif(bool(reasons), reason=", ".join(reasons) or "runs")
