"""Exact k-NN search in pure torch: chunked GEMM on centred data (CPU and GPU).

Squared distances are summed over slices of coordinates (columns)::

    ||x_i - x_j||^2 = sum_c ( ||x_i^c||^2 + ||x_j^c||^2 - 2 <x_i^c, x_j^c> )

where ``x^c`` is one column slice of the window, centred by its own column means. Centring
changes no distance but removes the huge common component of unit-norm iterates that makes
the GEMM form lose every digit (METHOD.md section 8). Working slice by slice keeps the extra
memory at ``O(B*N + N*chunk)`` (``B`` rows per block; ``B = N`` unless ``N^2`` exceeds the
budget) instead of a centred copy of the whole window, and the same sum is what a rank
computes over its own slice of coordinates when a window is sharded under DDP.
"""

from __future__ import annotations

import torch
from torch import Tensor

from thermo_lightning.knn.base import full_precision_matmul

__all__ = ["TorchKnn", "knn_from_sq_distances", "pairwise_sq_distances"]

_CPU_CHUNK_BYTES = 64 * 2**20
_GPU_CHUNK_BYTES = 256 * 2**20
_BLOCK_BYTES = 1024 * 2**20


def _default_chunk(n: int, itemsize: int, device: torch.device) -> int:
    budget = _GPU_CHUNK_BYTES if device.type == "cuda" else _CPU_CHUNK_BYTES
    return max(1, budget // (n * itemsize))


def _check_dtype(dtype: torch.dtype) -> None:
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"`dtype` must be torch.float32 or torch.float64, got {dtype}.")


def pairwise_sq_distances(
    x: Tensor,
    *,
    center: bool = True,
    dtype: torch.dtype = torch.float32,
    chunk_size: int | None = None,
    rows: tuple[int, int] | None = None,
) -> Tensor:
    """Squared Euclidean distances between rows ``rows[0]:rows[1]`` of ``x`` and all rows.

    Args:
        x: window ``(N, D)``.
        center: subtract the column means (per column slice) before the GEMM.
        dtype: accumulation and GEMM dtype, float32 or float64.
        chunk_size: columns per slice; default keeps a slice near 64 MiB (256 MiB on GPU).
        rows: a half-open row range ``(r0, r1)``; default all rows.

    Returns:
        ``(r1 - r0, N)`` tensor in ``dtype`` on ``x.device``. Entries can be slightly
        negative from rounding (clamp before ``sqrt``); the diagonal is not touched.
    """
    _check_dtype(dtype)
    n, d = x.shape
    r0, r1 = (0, n) if rows is None else rows
    if not 0 <= r0 < r1 <= n:
        raise ValueError(f"`rows` must satisfy 0 <= r0 < r1 <= N={n}, got {rows!r}.")
    itemsize = torch.empty((), dtype=dtype).element_size()
    chunk = chunk_size or _default_chunk(n, itemsize, x.device)
    if chunk < 1:
        raise ValueError(f"`chunk_size` must be a positive integer, got {chunk_size!r}.")
    chunk = min(chunk, d)
    out = torch.zeros(r1 - r0, n, dtype=dtype, device=x.device)
    buf = torch.empty(n, chunk, dtype=dtype, device=x.device)
    with torch.no_grad(), full_precision_matmul():
        for c0 in range(0, d, chunk):
            w = min(chunk, d - c0)
            xc = buf[:, :w]
            xc.copy_(x[:, c0 : c0 + w])
            if center:
                xc.sub_(xc.mean(dim=0, keepdim=True))
            sq = xc.square().sum(dim=1)
            out.addmm_(xc[r0:r1], xc.T, alpha=-2.0)
            out.add_(sq[r0:r1, None])
            out.add_(sq[None, :])
    return out


def knn_from_sq_distances(sq: Tensor, k: int, *, row_offset: int = 0) -> Tensor:
    """Euclidean distances to the ``k`` nearest other points from a block of squared
    distances.

    Args:
        sq: ``(B, N)`` squared distances of rows ``row_offset .. row_offset+B-1`` to all ``N``
            points. Modified in place (self-distances set to ``inf``, negatives clamped).
        k: number of neighbours, ``1 <= k < N``.
        row_offset: index of the first row of the block among the ``N`` points.

    Returns:
        ``(B, k)`` distances sorted ascending, self excluded.
    """
    b, n = sq.shape
    if not 1 <= k < n:
        raise ValueError(f"`k` must satisfy 1 <= k < N={n}, got {k}.")
    idx = torch.arange(b, device=sq.device)
    sq[idx, idx + row_offset] = float("inf")
    sq.clamp_min_(0.0)
    vals = torch.topk(sq, k, dim=1, largest=False, sorted=True).values
    return vals.sqrt_()


class TorchKnn:
    """Exact k-NN backend: chunked GEMM on centred data, float32 or float64, CPU or GPU.

    Args:
        chunk_size: columns per GEMM slice (default: about 64 MiB per slice, 256 MiB on GPU).
        block_bytes: the most memory one block of squared distances may take; rows are
            processed in blocks of ``block_bytes // (N * itemsize)`` (default 1 GiB, so
            ``N <= 16384`` runs in one block in float32).
    """

    name = "torch"

    def __init__(self, chunk_size: int | None = None, block_bytes: int = _BLOCK_BYTES) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"`chunk_size` must be a positive integer, got {chunk_size!r}.")
        if block_bytes < 1:
            raise ValueError(f"`block_bytes` must be positive, got {block_bytes!r}.")
        self.chunk_size = chunk_size
        self.block_bytes = block_bytes

    def search(
        self,
        x: Tensor,
        k: int,
        *,
        center: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        _check_dtype(dtype)
        n = x.shape[0]
        if not 1 <= k < n:
            raise ValueError(f"`k` must satisfy 1 <= k < N={n}, got {k}.")
        itemsize = torch.empty((), dtype=dtype).element_size()
        block = max(1, min(n, self.block_bytes // (n * itemsize)))
        parts = []
        for r0 in range(0, n, block):
            r1 = min(n, r0 + block)
            sq = pairwise_sq_distances(
                x, center=center, dtype=dtype, chunk_size=self.chunk_size, rows=(r0, r1)
            )
            parts.append(knn_from_sq_distances(sq, k, row_offset=r0))
            del sq
        return parts[0] if len(parts) == 1 else torch.cat(parts)
