"""The one small interface every k-NN backend implements, plus shared input handling.

A backend answers one question: for each of the ``N`` rows of a window ``x`` of shape
``(N, D)``, the Euclidean distances to its ``k`` nearest *other* rows, sorted ascending,
shape ``(N, k)``. Backends differ only in how they search; the entropy estimators in
:mod:`thermo_lightning.functional.entropy` do the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "KnnBackend",
    "as_window",
    "finite_rows",
    "full_precision_matmul",
    "nonfinite_rows",
    "raise_nonfinite",
]


@runtime_checkable
class KnnBackend(Protocol):
    """A k-nearest-neighbour search over the rows of one window."""

    name: str

    def search(
        self,
        x: Tensor,
        k: int,
        *,
        center: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Return the Euclidean distances ``(N, k)`` from each row to its ``k`` nearest other
        rows, sorted ascending, in ``dtype`` (a backend may refuse dtypes it cannot do)."""
        ...


def as_window(x: Tensor | np.ndarray, name: str = "x", *, check_finite: bool = True) -> Tensor:
    """Validate a window of points and return it as a floating tensor ``(N, D)``.

    ``check_finite=False`` leaves the NaN/Inf check (one pass over the window) to the caller:
    the torch backend folds it into its own pass and calls :func:`raise_nonfinite`.

    Raises:
        ValueError: not 2-D, fewer than 2 rows, no columns, or non-finite values.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except Exception as err:
            raise ValueError(
                f"`{name}` must be a tensor or array of shape (N, D), got {type(x).__name__}."
            ) from err
    if x.ndim != 2:
        hint = " For scalar samples pass x[:, None]." if x.ndim == 1 else ""
        raise ValueError(
            f"`{name}` must have shape (N, D) (N points in D dimensions), got shape "
            f"{tuple(x.shape)}.{hint}"
        )
    n, d = x.shape
    if n < 2:
        raise ValueError(f"`{name}` needs at least 2 points (rows), got N={n}.")
    if d < 1:
        raise ValueError(f"`{name}` needs at least 1 dimension (column), got D={d}.")
    if not x.is_floating_point():
        x = x.to(torch.float64 if x.dtype == torch.int64 else torch.float32)
    if check_finite:
        raise_nonfinite(x, name)
    return x.detach()


def raise_nonfinite(x: Tensor, name: str = "x", *, overflow: bool = False) -> None:
    """Raise a ValueError naming how many rows of ``x`` hold NaN or Inf (none: return, or
    with ``overflow=True`` raise that the values overflowed the computation dtype)."""
    bad = nonfinite_rows(x)
    n = x.shape[0]
    if bad:
        raise ValueError(
            f"`{name}` contains NaN or Inf in {bad} of {n} rows; drop those snapshots first."
        )
    if overflow:
        raise ValueError(
            f"`{name}` is finite but its squared distances overflow {x.dtype}; rescale the "
            "window or pass dtype=torch.float64."
        )


def finite_rows(x: Tensor, block_bytes: int = 64 * 2**20) -> Tensor:
    """Boolean mask ``(N,)``: which rows of ``x`` ``(N, D)`` hold only finite values.

    One pass of row sums (a NaN or Inf anywhere in a row makes its sum non-finite); only rows
    whose sum is not finite (which a finite overflow can also cause) are checked element by
    element, in row blocks whose masks stay within ``block_bytes`` (``isfinite`` on the whole
    window would allocate a copy of it). One host synchronisation.
    """
    with torch.no_grad():
        mask = torch.isfinite(x.sum(dim=1))
        suspects = (~mask).nonzero().flatten().tolist()
        rows = max(1, block_bytes // max(1, x.shape[1] * x.element_size()))
        for i in range(0, len(suspects), rows):
            idx = torch.tensor(suspects[i : i + rows], device=x.device)
            mask[idx] = torch.isfinite(x[idx]).all(dim=1)
    return mask


def nonfinite_rows(x: Tensor, block_bytes: int = 64 * 2**20) -> int:
    """Number of rows of ``x`` (N, D) holding a NaN or Inf (see :func:`finite_rows`)."""
    return int((~finite_rows(x, block_bytes)).sum())


@contextlib.contextmanager
def full_precision_matmul() -> Iterator[None]:
    """Turn off reduced-precision float32 matmul (TF32 on CUDA, bf16 in oneDNN on CPU) inside
    the block and restore the caller's settings afterwards.

    Distances between iterates that are 1e-4 apart lose every digit under TF32 (10-bit
    mantissa), so every distance GEMM runs inside this context.
    """
    saved: list[tuple[object, str]] = []
    targets = []
    cuda_matmul = getattr(torch.backends.cuda, "matmul", None)
    mkldnn_matmul = getattr(torch.backends.mkldnn, "matmul", None)
    for obj in (cuda_matmul, mkldnn_matmul):
        if obj is not None and hasattr(obj, "fp32_precision"):
            targets.append(obj)
    if targets:  # torch >= 2.9: the fine-grained API (never mix it with the legacy flags)
        for obj in targets:
            saved.append((obj, obj.fp32_precision))
        try:
            for obj in targets:
                obj.fp32_precision = "ieee"
            yield
        finally:
            for obj, value in saved:
                obj.fp32_precision = value
        return
    prec = torch.get_float32_matmul_precision()
    tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.set_float32_matmul_precision("highest")
        torch.backends.cuda.matmul.allow_tf32 = False
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.set_float32_matmul_precision(prec)
