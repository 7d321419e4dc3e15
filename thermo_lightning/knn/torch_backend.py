"""Exact k-NN search in pure torch: chunked GEMM on centred data (CPU and GPU).

Squared distances are summed over slices of coordinates (columns)::

    ||x_i - x_j||^2 = sum_c ( ||x_i^c||^2 + ||x_j^c||^2 - 2 <x_i^c, x_j^c> )

where ``x^c`` is one column slice of the window, centred by its own column means. Centring
changes no distance but removes the huge common component of unit-norm iterates that makes
the GEMM form lose every digit (docs/concepts.md, 'Centring and precision'). Working slice
by slice keeps the extra memory at ``O(B*N + N*chunk)`` (``B`` rows per block; ``B = N``
unless ``N^2`` exceeds the budget) instead of a centred copy of the whole window, and the
same sum is what a rank computes over its own slice of coordinates when a window is sharded
under DDP.
"""

from __future__ import annotations

import torch
from torch import Tensor

from thermo_lightning.knn.base import full_precision_matmul, raise_nonfinite

__all__ = [
    "SquaredDistanceOverflow",
    "TorchKnn",
    "knn_from_sq_distances",
    "pairwise_sq_distances",
    "power_of_two_scale",
]

_CPU_CHUNK_BYTES = 32 * 2**20  # measured fastest on a 2-core CPU (16-64 MiB tried)
_GPU_CHUNK_BYTES = 256 * 2**20
_BLOCK_BYTES = 1024 * 2**20
_SYMMETRIC_BLOCKS = 4  # row blocks of the lower-triangular Gram accumulation
_ROUNDING_FLOOR = 32  # squared distances below this many eps of the norms are recomputed
_EXACT_BUDGET = 2**27  # most coordinate differences spent on recomputing such entries


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
    scale: float = 1.0,
) -> Tensor:
    """Squared Euclidean distances between rows ``rows[0]:rows[1]`` of ``scale * x`` and all
    rows.

    The Gram matrix ``G = sum_c X^c X^c^T`` of the centred slices and the squared norms
    ``n_i = sum_c ||x_i^c||^2`` are accumulated; then
    ``||x_i - x_j||^2 = n_i + n_j - 2 G_ij``. For all rows (the default) only the lower block
    triangle of ``G`` is multiplied (``_SYMMETRIC_BLOCKS`` row blocks: about 60% of the
    multiply-adds) and mirrored, so the result is exactly symmetric.

    Args:
        x: window ``(N, D)``.
        center: subtract the column means (per column slice) before the GEMM.
        dtype: accumulation and GEMM dtype, float32 or float64.
        chunk_size: columns per slice; default keeps a slice near 32 MiB (256 MiB on GPU).
        rows: a half-open row range ``(r0, r1)``; default all rows.
        scale: multiply the window by this (a power of two from :func:`power_of_two_scale`
            is exact): squared distances of data at 1e-30 or 1e30 would under- or overflow
            float32, those of the scaled window do not. The result is in scaled units.

    Entries at or below the rounding level of the GEMM form, ``32 eps (||x_i||^2 +
    ||x_j||^2)`` with centred norms and ``eps`` of ``dtype``, carry no correct digit (points
    much closer to each other than to the window's centre, as in low-dimensional data): they
    are recomputed from the coordinate differences in float64, so the floor is the actual
    distance, and only true duplicates come out as 0. Past a budget of ``2**27`` coordinate
    differences the rest are set to 0 (then counted as duplicates by the entropy
    estimators). No entry is negative.

    Returns:
        ``(r1 - r0, N)`` tensor in ``dtype`` on ``x.device``; the diagonal is 0 up to
        rounding and is not excluded here.

    Raises:
        ValueError: ``x`` holds NaN or Inf (the rows are counted), or its squared norms
            overflow ``dtype``.
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
    full = (r0, r1) == (0, n)
    bounds = _row_blocks(n) if full else []
    out = torch.zeros(r1 - r0, n, dtype=dtype, device=x.device)
    sq = torch.zeros(n, dtype=dtype, device=x.device)
    buf = torch.empty(n, chunk, dtype=dtype, device=x.device)
    with torch.no_grad(), full_precision_matmul():
        for c0 in range(0, d, chunk):
            w = min(chunk, d - c0)
            xc = buf[:, :w]
            view = x[:, c0 : c0 + w]
            if scale != 1.0 and not 2.0**-120 < scale < 2.0**120:
                view = view.double() * scale  # float32 cannot hold the factor itself
                factor = 1.0
            else:  # a power of two: exact, applied in place to the centred slice
                factor = scale
            if center:  # one pass: mean, then the centred copy written straight into buf
                mean = view.mean(dim=0, keepdim=True, dtype=dtype)
                torch.sub(view.to(dtype), mean, out=xc)
            else:
                xc.copy_(view)
            if factor != 1.0:
                xc.mul_(factor)
            # the norms summed directly, not read off the Gram diagonal: float32 GEMM
            # diagonals carry a bias that shifts every distance by ~2e-7 relative
            sq.add_(xc.square().sum(dim=1))
            if full:
                for b0, b1 in bounds:  # lower block triangle of the Gram matrix
                    out[b0:b1, :b1].addmm_(xc[b0:b1], xc[:b1].T)
            else:
                out.addmm_(xc[r0:r1], xc.T)
        if not bool(torch.isfinite(sq).all()):
            # NaN/Inf anywhere reaches every norm through the column means: the window's own
            # finiteness check, folded into this pass
            raise_nonfinite(x)
            raise SquaredDistanceOverflow(
                f"`x` is finite but its squared distances overflow {dtype}; rescale the "
                "window or pass dtype=torch.float64.")
        if full:
            for i, (b0, b1) in enumerate(bounds):  # mirror: exactly symmetric
                diag = out[b0:b1, b0:b1]
                diag.copy_(diag.tril() + diag.tril(-1).T)
                for c0_, c1_ in bounds[i + 1 :]:
                    out[b0:b1, c0_:c1_] = out[c0_:c1_, b0:b1].T
        out.mul_(-2.0)
        tol = _ROUNDING_FLOOR * torch.finfo(dtype).eps
        suspect: list[Tensor] = []
        for b0 in range(0, r1 - r0, 256):  # row blocks bound the temporaries
            part = out[b0 : b0 + 256]
            norms = sq[r0 + b0 : r0 + b0 + part.shape[0], None] + sq[None, :]
            part.add_(norms)  # one add of a symmetric term keeps the result symmetric
            # below the rounding level of the GEMM form a squared distance is noise
            low = part <= norms.mul_(tol)
            part.masked_fill_(low, 0.0)
            pairs = low.nonzero()
            if pairs.numel():
                pairs[:, 0] += r0 + b0
                suspect.append(pairs[pairs[:, 0] != pairs[:, 1]])  # not the diagonal
        if suspect:
            _recompute_exactly(x, out, torch.cat(suspect), r0, scale)
    return out


def power_of_two_scale(x: Tensor) -> float:
    """``2**e`` with ``max |x| * 2**e`` in ``[0.5, 1)``; 1 for an all-zero or non-finite
    window (the non-finite check reports the latter)."""
    if not x.numel():
        return 1.0
    low, high = torch.aminmax(x.detach())  # no |x| copy of a gigabyte window
    peak = max(-float(low), float(high))
    if not (peak > 0 and torch.isfinite(torch.tensor(peak))):
        return 1.0
    exponent = -torch.frexp(torch.tensor(peak, dtype=torch.float64)).exponent.item()
    exponent = max(-1000, min(1000, exponent))  # within float64's range
    return float(2.0**exponent)


class SquaredDistanceOverflow(ValueError):
    """A finite window whose squared distances overflow the computation dtype."""


#: squared distances all below this are redone on the window scaled by a power of two (data
#: near 1e-30 would lose its digits to float32's subnormal range)
_TINY = 2.0**-80


def _recompute_exactly(x: Tensor, out: Tensor, pairs: Tensor, r0: int, scale: float) -> None:
    """Set ``out[i - r0, j]`` to ``||x_i - x_j||^2`` from the coordinate differences (float64),
    for the ``(i, j)`` rows of ``pairs``, in the scaled units of ``out``; within the budget."""
    n_pairs = min(pairs.shape[0], max(1, _EXACT_BUDGET // max(1, x.shape[1])))
    if n_pairs == 0:
        return
    pairs = pairs[:n_pairs]
    per_block = max(1, (64 * 2**20) // (8 * max(1, x.shape[1])))
    for p0 in range(0, n_pairs, per_block):
        i, j = pairs[p0 : p0 + per_block].unbind(1)
        diff = (x[i].to(torch.float64) - x[j].to(torch.float64)) * scale
        out[i - r0, j] = diff.square().sum(dim=1).to(out.dtype)



def _row_blocks(n: int) -> list[tuple[int, int]]:
    """Row blocks for the lower-triangular Gram accumulation (one block for small ``N``)."""
    blocks = _SYMMETRIC_BLOCKS if n >= 256 else 1
    size = -(-n // blocks)
    return [(b0, min(n, b0 + size)) for b0 in range(0, n, size)]


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
        chunk_size: columns per GEMM slice (default: about 32 MiB per slice, 256 MiB on GPU).
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
        # the window as it is, unless its squared distances overflow or underflow float32:
        # then scaled by a power of two (exact); a pass to find the scale of every window
        # cost 5% of the search
        try:
            scale, parts = 1.0, self._blocks(x, k, block, center, dtype, 1.0)
            if float(max(p[:, -1].max() for p in parts)) ** 2 < _TINY:
                scale = power_of_two_scale(x)
                if scale != 1.0:
                    parts = self._blocks(x, k, block, center, dtype, scale)
        except SquaredDistanceOverflow:
            scale = power_of_two_scale(x)
            parts = self._blocks(x, k, block, center, dtype, scale)
        dist = parts[0] if len(parts) == 1 else torch.cat(parts)
        return dist if scale == 1.0 else dist.div_(scale)  # back to the data's units

    def _blocks(self, x: Tensor, k: int, block: int, center: bool, dtype: torch.dtype,
                scale: float) -> list[Tensor]:
        """The ``k`` nearest distances of every row of ``scale * x``, ``block`` rows at a
        time."""
        parts = []
        for r0 in range(0, x.shape[0], block):
            sq = pairwise_sq_distances(x, center=center, dtype=dtype, chunk_size=self.chunk_size,
                                       rows=(r0, min(x.shape[0], r0 + block)), scale=scale)
            parts.append(knn_from_sq_distances(sq, k, row_offset=r0))
            del sq
        return parts
