"""Exact k-NN search with FAISS (``faiss-cpu``, or ``faiss-gpu`` when installed).

FAISS is imported lazily. It computes in float32 and returns *squared* L2 distances; this
backend centres the window first (float64 means), asks for ``k + 1`` neighbours, removes each
point itself and returns Euclidean distances.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from thermo_lightning._availability import require

__all__ = ["FaissKnn"]


class FaissKnn:
    """Exact k-NN backend on ``faiss.IndexFlatL2``.

    Args:
        use_gpu: ``None`` (default) uses a FAISS GPU index when the window is on a CUDA device
            and the installed FAISS has GPU support; ``False`` always searches on the CPU.

    FAISS needs a centred float32 copy of the window in host memory (``N * D * 4`` bytes);
    for windows that live on a GPU, the torch backend avoids that copy.
    """

    name = "faiss"

    def __init__(self, use_gpu: bool | None = None) -> None:
        self.use_gpu = use_gpu

    def search(
        self,
        x: Tensor,
        k: int,
        *,
        center: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        if dtype != torch.float32:
            raise ValueError(
                f"the faiss backend computes in float32 only, got `dtype`={dtype}; use "
                "backend='torch' for float64."
            )
        n, d = x.shape
        if not 1 <= k < n:
            raise ValueError(f"`k` must satisfy 1 <= k < N={n}, got {k}.")
        faiss = require("faiss")
        with torch.no_grad():
            xh = x.detach()
            if center:
                xh = xh - xh.mean(dim=0, dtype=torch.float64).to(xh.dtype)
            data = np.ascontiguousarray(xh.to("cpu", torch.float32).numpy())
        index = faiss.IndexFlatL2(d)
        gpu = self.use_gpu
        if gpu is None:
            gpu = x.is_cuda and hasattr(faiss, "StandardGpuResources")
        if gpu:
            if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
                raise RuntimeError(
                    "`use_gpu=True` needs faiss-gpu and a visible GPU; install "
                    "'thermo-lightning[gpu]' (not together with faiss-cpu) or pass use_gpu=False."
                )
            device = x.device.index if x.is_cuda and x.device.index is not None else 0
            index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), device, index)
        index.add(data)
        sq, ids = index.search(data, k + 1)
        return torch.from_numpy(_drop_self(sq, ids, k)).to(x.device)


def _drop_self(sq: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Remove each query from its own neighbour list and return Euclidean distances.

    With duplicate points a query may not come first among its zero-distance neighbours, or
    may be missing from the ``k + 1`` results; then the farthest result is dropped instead.
    """
    n = sq.shape[0]
    is_self = ids == np.arange(n)[:, None]
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True
    # exactly one True per row: keep the other k entries in their (ascending) order
    kept = sq[~is_self].reshape(n, k)
    return np.sqrt(np.maximum(kept, 0.0))
