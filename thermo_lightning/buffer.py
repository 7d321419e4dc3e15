"""TrajectoryBuffer: a ring buffer of snapshots of the scale-invariant (SI) weight vector.

A window holds the last ``N`` snapshots (one every ``stride`` optimiser steps) of the
flattened SI vector ``w`` (``D`` numbers), in float32, on the training device (or in pinned
host memory). Entropy is estimated from it at logging points. Three ways keep it small:

- ``stride``: thin the trajectory (also what makes snapshots nearly independent);
- ``sketch_dim=m``: store a CountSketch ``S w`` (``m`` numbers): every coordinate ``j`` is
  added, with a random sign ``s_j``, to one of ``m`` buckets ``h_j``. ``E ||S x||^2 = ||x||^2``,
  so distances are preserved in expectation; cost ``O(D)`` per snapshot, ``O(D)`` memory for
  the hash;
- ``shard=(rank, world_size)``: under DDP each rank keeps a slice of the coordinates; squared
  distances of the slices add up (one all-reduce of an N x N matrix; the window is never
  gathered on one rank).

Snapshots are copied without a host synchronisation; whether a snapshot is valid (all
finite) is decided only when the window is read. The window's own statistics, its effective
sample size and its entropy, are computed here too (sharded or not: ``reduce`` sums a
tensor over the ranks).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from thermo_lightning._validation import positive_int
from thermo_lightning.knn.base import finite_rows

if TYPE_CHECKING:
    import numpy as np

    from thermo_lightning.functional.entropy import EntropyEstimate, EntropyEstimator

__all__ = ["TrajectoryBuffer", "WindowMemoryError", "available_memory", "default_memory_budget"]


class WindowMemoryError(MemoryError):
    """The window would not fit in its memory budget."""


def available_memory(device: torch.device) -> tuple[int, str]:
    """Bytes that ``device`` can still give, and how that was measured.

    GPU: ``torch.cuda.mem_get_info``'s free memory. Host: ``MemAvailable`` of
    ``/proc/meminfo`` (free memory plus what the kernel can reclaim, the page cache above
    all; ``MemFree`` alone stays near zero on a busy machine), else psutil's
    ``virtual_memory().available``, else the physical memory size.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), "free GPU memory (torch.cuda.mem_get_info)"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available), "psutil.virtual_memory().available"
    except ImportError:
        pass
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(total), "physical memory size (no MemAvailable, no psutil)"
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX hosts
        return 8 * 2**30, "assumed 8 GiB (no way to measure)"


def default_memory_budget(device: torch.device) -> int:
    """A quarter of the memory ``device`` can still give (:func:`available_memory`)."""
    return available_memory(device)[0] // 4


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


class TrajectoryBuffer:
    """Ring buffer of the last ``window`` snapshots of a parameter group.

    Args:
        num_features: ``D``, the number of scalars in the group.
        window: ``N``, snapshots kept (the paper: 1000).
        device: where the window lives (the training device; or ``"cpu"`` to offload).
        pin_memory: pinned host memory (with ``device="cpu"``): device-to-host copies then do
            not block the training loop.
        sketch_dim: store a CountSketch of ``m`` numbers per snapshot instead of ``D``. The
            entropy differences between adjacent learning rates that ``T`` is computed from
            keep a worst error of 6.5% at ``m = 256``, 3.9% at 1024 and 1.5% at 4096 on
            thinned windows (benchmarks/sketch_temperature.py); more on correlated windows.
        sketch_seed: seed of the sketch's hash and signs.
        shard: ``(rank, world_size)``: keep only this rank's slice of the coordinates.
        memory_budget: bytes the window may take; default a quarter of free device memory.

    Raises:
        WindowMemoryError: the window does not fit; the message gives the numbers and the
            ways out.
    """

    def __init__(
        self,
        num_features: int,
        window: int = 1000,
        *,
        device: torch.device | str = "cpu",
        pin_memory: bool = False,
        sketch_dim: int | None = None,
        sketch_seed: int = 0,
        shard: tuple[int, int] | None = None,
        memory_budget: int | None = None,
    ) -> None:
        self.num_features = positive_int(num_features, "num_features")
        self.window = positive_int(window, "window")
        self.device = torch.device(device)
        if sketch_dim is not None:
            positive_int(sketch_dim, "sketch_dim")
            if shard is not None and shard[1] > 1:
                raise ValueError("use either `sketch_dim` or sharding, not both.")
        if shard is not None:
            rank, world = shard
            if not 0 <= rank < world:
                raise ValueError(
                    f"`shard` must be (rank, world_size) with 0 <= rank < world_size, got "
                    f"{shard!r}."
                )
        self.sketch_dim = sketch_dim
        self.shard = shard
        rank, world = shard or (0, 1)
        self.col_start = rank * num_features // world
        self.col_stop = (rank + 1) * num_features // world
        self.local_features = sketch_dim or (self.col_stop - self.col_start)
        nbytes = self.window * self.local_features * 4
        if memory_budget is not None:
            budget = positive_int(memory_budget, "memory_budget")
            source = "`memory_budget`"
        else:
            avail, how = available_memory(self.device)
            budget = avail // 4
            source = f"a quarter of {_fmt_bytes(avail)} available ({how})"
        if nbytes > budget:
            raise WindowMemoryError(
                f"a window of {self.window} snapshots x {self.local_features:,} numbers x 4 bytes "
                f"= {_fmt_bytes(nbytes)} exceeds the memory budget of {_fmt_bytes(budget)} on "
                f"{self.device} ({source}). Ways out: a smaller "
                f"`window`; `sketch_dim=m` (a CountSketch: window x m x 4 bytes); `shard=True` "
                f"under DDP (the window split over ranks); `buffer_device='cpu'` with "
                "`pin_memory=True` (host memory); or a larger `memory_budget`."
            )
        pin = pin_memory and self.device.type == "cpu" and torch.cuda.is_available()
        self.data = torch.empty(self.window, self.local_features, dtype=torch.float32,
                                device=self.device, pin_memory=pin)
        self.steps = [-1] * self.window
        self.count = 0
        self._views_key: tuple[int, ...] = ()
        self._views: list[Tensor] = []
        if sketch_dim is not None:
            gen = torch.Generator().manual_seed(sketch_seed)
            self._hash = torch.randint(sketch_dim, (num_features,), generator=gen)
            self._sign = (torch.randint(0, 2, (num_features,), generator=gen) * 2 - 1).float()
            self._hash_dev: Tensor | None = None
            self._sign_dev: Tensor | None = None

    # ------------------------------------------------------------------ writing
    def add(self, tensors: Sequence[Tensor], step: int) -> None:
        """Store a snapshot of ``tensors`` (the group, in a fixed order), taken at ``step``."""
        slot = self.count % self.window
        row = self.data[slot]
        with torch.no_grad():
            if self.sketch_dim is not None:
                self._sketch_into(row, tensors)
            elif self.shard is None and all(t.dtype == torch.float32 for t in tensors):
                # the common case: one kernel, no host synchronisation
                flats = self._flat_views(tensors)
                torch.cat(flats, out=row)
            else:
                self._copy_slice_into(row, tensors)
        self.steps[slot] = int(step)
        self.count += 1

    def _flat_views(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        """Flat views of ``tensors`` (cached while the same tensors come back: the
        parameters of a run)."""
        key = tuple(id(t) for t in tensors)
        if key != self._views_key:
            flats = [t.detach().reshape(-1) for t in tensors]
            n = sum(f.numel() for f in flats)
            if n != self.num_features:
                raise ValueError(f"the snapshot has {n} numbers, the buffer expects "
                                 f"{self.num_features}.")
            self._views_key, self._views = key, flats
        return self._views

    def _copy_slice_into(self, row: Tensor, tensors: Sequence[Tensor]) -> None:
        offset = 0
        for t in tensors:
            n = t.numel()
            lo, hi = max(offset, self.col_start), min(offset + n, self.col_stop)
            if lo < hi:
                flat = t.detach().reshape(-1)[lo - offset : hi - offset]
                row[lo - self.col_start : hi - self.col_start].copy_(flat, non_blocking=True)
            offset += n
        if offset != self.num_features:
            raise ValueError(f"the snapshot has {offset} numbers, the buffer expects "
                             f"{self.num_features}.")

    def _sketch_into(self, row: Tensor, tensors: Sequence[Tensor]) -> None:
        flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
        if flat.numel() != self.num_features:
            raise ValueError(f"the snapshot has {flat.numel()} numbers, the buffer expects "
                             f"{self.num_features}.")
        if self._hash_dev is None or self._hash_dev.device != flat.device:
            self._hash_dev = self._hash.to(flat.device)
            self._sign_dev = self._sign.to(flat.device)
        sketch = torch.zeros(self.sketch_dim, dtype=torch.float32, device=flat.device)  # type: ignore[arg-type]
        sketch.index_add_(0, self._hash_dev, flat * self._sign_dev)
        row.copy_(sketch, non_blocking=True)

    def clear(self) -> None:
        """Forget every snapshot (e.g. after the stride changed)."""
        self.count = 0
        self.steps = [-1] * self.window

    # ------------------------------------------------------------------ reading
    @property
    def filled(self) -> int:
        """Snapshots currently held (at most ``window``)."""
        return min(self.count, self.window)

    @property
    def fill_fraction(self) -> float:
        return self.filled / self.window

    @property
    def full(self) -> bool:
        return self.count >= self.window

    @property
    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()

    def time_order(self) -> list[int]:
        """Slots of the held snapshots, oldest first."""
        n = self.filled
        if self.count <= self.window:
            return list(range(n))
        start = self.count % self.window
        return [(start + i) % self.window for i in range(self.window)]

    def snapshots(self) -> tuple[Tensor, list[int], list[int]]:
        """The valid snapshots (any order), their slots, and the steps of invalid ones.

        Returns:
            ``(rows (n_valid, local_features), valid_slots (time order), invalid_steps)``.
            Checks every held row for NaN/Inf (:func:`~thermo_lightning.knn.base.finite_rows`:
            one pass of row sums, one host synchronisation).
        """
        order = self.time_order()
        valid = finite_rows(self.data).cpu().tolist()
        good = [s for s in order if valid[s]]
        bad_steps = [self.steps[s] for s in order if not valid[s]]
        rows = self.data if len(good) == self.window else self.data[good]
        return rows, good, bad_steps

    # ------------------------------------------------------------------ statistics
    def projections(self, rows: Tensor, slots: list[int], n_directions: int, seed: int,
                    reduce: Callable[[Tensor], Tensor] | None = None) -> np.ndarray:
        """``(n_directions, N)``: the valid snapshots (``rows``, ``slots`` from
        :meth:`snapshots`) projected on ``n_directions`` fixed random directions, in time
        order; a sharded window's projections are summed over the ranks (``reduce``)."""
        from thermo_lightning.functional.stationarity import raw_window_projections

        if len(slots) == rows.shape[0] and slots == sorted(slots):
            ordered = rows
        else:  # time order for the autocorrelation
            ordered = self.data[torch.tensor(slots, device=self.data.device)]
        proj = raw_window_projections(ordered, n_directions, seed=seed,
                                      column_offset=self.col_start)
        if self.shard is not None and reduce is not None:
            proj = reduce(proj)
        return proj.T.cpu().numpy()

    def entropy(self, rows: Tensor, ks: Sequence[int], estimator: EntropyEstimator,
                dim: int, backend: str = "auto",
                reduce: Callable[[Tensor], Tensor] | None = None) -> EntropyEstimate:
        """The k-NN entropy of ``rows`` for every ``k`` (intrinsic dimension ``dim``); a
        sharded window adds up its ranks' squared distances (``reduce``) first."""
        from thermo_lightning.functional.entropy import (
            entropy_from_knn_distances,
            knn_entropy_estimate,
        )
        from thermo_lightning.knn.torch_backend import (
            knn_from_sq_distances,
            pairwise_sq_distances,
        )

        if self.shard is None:
            return knn_entropy_estimate(rows, tuple(ks), estimator=estimator, dim=dim,
                                        backend=backend, warn=False)
        # each process holds a slice of the coordinates: squared distances add up
        sq = pairwise_sq_distances(rows, center=True)
        if reduce is not None:
            sq = reduce(sq)
        dist = knn_from_sq_distances(sq.to(torch.float32), max(ks))
        return entropy_from_knn_distances(dist, tuple(ks), estimator=estimator, dim=dim,
                                          warn=False)

    # ------------------------------------------------------------------ state
    def state_dict(self, include_data: bool = False) -> dict[str, Any]:
        state: dict[str, Any] = {"count": self.count, "steps": list(self.steps),
                                 "window": self.window, "local_features": self.local_features}
        if include_data:
            state["data"] = self.data.detach().cpu().clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a window saved with ``include_data=True`` (a state without data leaves
        the buffer empty: it refills)."""
        if "data" not in state:
            self.clear()
            return
        if (state.get("window"), state.get("local_features")) != (self.window, self.local_features):
            saved = (state.get("window"), state.get("local_features"))
            raise ValueError(
                f"the saved window has shape {saved}, this buffer "
                f"({self.window}, {self.local_features}); it cannot be restored."
            )
        self.data.copy_(state["data"])
        self.steps = list(state["steps"])
        self.count = int(state["count"])
