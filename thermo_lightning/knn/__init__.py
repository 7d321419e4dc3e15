"""k-nearest-neighbour search behind one small interface.

``knn_distances(x, k, backend=...)`` returns the ``(N, k)`` Euclidean distances from every row
of a window to its ``k`` nearest other rows. Backends: ``"torch"`` (exact chunked GEMM on
centred data; always available, CPU and GPU, float32 or float64) and ``"faiss"`` (faiss-cpu /
faiss-gpu, float32). ``"auto"`` picks FAISS only where it pays: a float32 window too large for
the torch backend to hold its ``N x N`` distance block in one piece, with FAISS importable.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from thermo_lightning._availability import module_available
from thermo_lightning.knn.base import (
    KnnBackend,
    as_window,
    full_precision_matmul,
    raise_nonfinite,
)
from thermo_lightning.knn.faiss_backend import FaissKnn
from thermo_lightning.knn.torch_backend import (
    TorchKnn,
    knn_from_sq_distances,
    pairwise_sq_distances,
)

__all__ = [
    "BACKENDS",
    "FaissKnn",
    "KnnBackend",
    "TorchKnn",
    "as_window",
    "full_precision_matmul",
    "get_backend",
    "knn_distances",
    "knn_from_sq_distances",
    "pairwise_sq_distances",
    "resolve_backend",
]

BACKENDS = ("auto", "torch", "faiss")
#: windows with at least this many points go to FAISS under ``backend="auto"`` (the torch
#: backend's N x N float32 block would pass 1 GiB)
AUTO_FAISS_MIN_POINTS = 16384


def resolve_backend(backend: str | KnnBackend, n: int, dtype: torch.dtype) -> KnnBackend:
    """Turn a backend name (or instance) into a backend for a window of ``n`` points."""
    if not isinstance(backend, str):
        if not isinstance(backend, KnnBackend):
            raise ValueError(
                f"`backend` must be one of {BACKENDS} or an object with a `search` method, "
                f"got {backend!r}."
            )
        return backend
    if backend not in BACKENDS:
        raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}.")
    if backend == "auto":
        use_faiss = (
            n >= AUTO_FAISS_MIN_POINTS and dtype == torch.float32 and module_available("faiss")
        )
        backend = "faiss" if use_faiss else "torch"
    return get_backend(backend)


def get_backend(name: str) -> KnnBackend:
    """Backend instance for ``"torch"`` or ``"faiss"`` with default settings."""
    if name == "torch":
        return TorchKnn()
    if name == "faiss":
        return FaissKnn()
    raise ValueError(f"`backend` must be 'torch' or 'faiss', got {name!r}.")


def knn_distances(
    x: Tensor | np.ndarray,
    k: int,
    *,
    backend: str | KnnBackend = "auto",
    center: bool = True,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Euclidean distances from each row of ``x`` to its ``k`` nearest other rows.

    Args:
        x: window ``(N, D)``, tensor or array.
        k: neighbours per point, ``1 <= k < N``.
        backend: ``"auto"``, ``"torch"``, ``"faiss"`` or a :class:`KnnBackend`.
        center: subtract the window mean before the GEMM (keeps close points exact).
        dtype: computation dtype; default float64 for float64 input, else float32.

    Returns:
        ``(N, k)`` tensor sorted ascending along dim 1, on ``x``'s device.
    """
    xw = as_window(x, check_finite=False)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k < xw.shape[0]:
        raise ValueError(f"`k` must be an integer with 1 <= k < N={xw.shape[0]}, got {k!r}.")
    cdtype = dtype or (torch.float64 if xw.dtype == torch.float64 else torch.float32)
    knn = resolve_backend(backend, xw.shape[0], cdtype)
    if not isinstance(knn, TorchKnn):  # the torch backend checks in its own pass
        raise_nonfinite(xw)
    return knn.search(xw, int(k), center=center, dtype=cdtype)
