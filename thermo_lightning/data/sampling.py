"""Mini-batches drawn i.i.d. with replacement, as the paper trains (docs/sphere.md).

Every step draws ``batch_size`` indices uniformly from the whole training set, independently
of every other step: SGD then minimises a fixed finite-sum objective with stationary noise.
Batch ``b`` of rank ``r`` is a pure function of ``(seed, r, b)``, so a run is reproducible,
ranks under DDP draw different batches, and a resumed run continues exactly where it stopped.

- :class:`WithReplacementBatchSampler`: a batch sampler for any map-style dataset.
- :class:`TensorBatchLoader`: a loader over in-memory tensors (optionally on the GPU) that
  indexes them directly: no per-sample collation, which matters over a million steps.

Both are resumable: ``state_dict()`` records the batches already handed out; Lightning saves
it in checkpoints (the loader is ``_Stateful``) and restores it on resume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import BatchSampler, Sampler

from thermo_lightning._validation import positive_int

__all__ = ["TensorBatchLoader", "WithReplacementBatchSampler", "batch_indices"]

_MASK = (1 << 63) - 1


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64 finaliser over a running combination)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
        h = h * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 29
    return h & _MASK


def batch_indices(
    num_samples: int, batch_size: int, *, seed: int, index: int, rank: int = 0
) -> Tensor:
    """Indices of batch ``index`` for ``rank``: ``batch_size`` draws, uniform over
    ``range(num_samples)``, with replacement; a pure function of its arguments.

    Returns:
        ``(batch_size,)`` int64 tensor on the CPU.
    """
    gen = torch.Generator().manual_seed(_mix(seed, rank, index))
    return torch.randint(num_samples, (batch_size,), generator=gen)


def _dist_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class _ResumableIndex:
    """Shared bookkeeping: epoch, the next batch to hand out, and state (de)serialisation."""

    num_batches: int
    seed: int

    def _init_position(self) -> None:
        self.epoch = 0
        self._next = 0  # next batch of the current epoch

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch (batch indices continue across
        epochs)."""
        if epoch != self.epoch:
            self.epoch = epoch
            self._next = 0

    def _global_index(self, i: int) -> int:
        return self.epoch * self.num_batches + i

    def _positions(self) -> Iterator[int]:
        if self._next >= self.num_batches:
            # the last epoch was handed out to its end by a consumer that stopped at len()
            # (Lightning) without exhausting the generator: this is the next epoch
            self.epoch += 1
            self._next = 0
        start = self._next
        for i in range(start, self.num_batches):
            self._next = i + 1
            yield i
        self.epoch += 1
        self._next = 0

    def state_dict(self) -> dict[str, int]:
        """``{"seed", "epoch", "next_batch"}``: enough to continue the same sequence."""
        return {"seed": self.seed, "epoch": self.epoch, "next_batch": self._next}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a :meth:`state_dict`. The seed must match (it defines the batches)."""
        if int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(
                f"the checkpoint's sampler seed {state['seed']} differs from this one's "
                f"({self.seed}); resuming would change the batch sequence."
            )
        self.epoch = int(state.get("epoch", 0))
        self._next = int(state.get("next_batch", 0))


class WithReplacementBatchSampler(BatchSampler, _ResumableIndex):
    """Batch sampler drawing every batch i.i.d. with replacement, for ``num_batches`` batches
    per epoch.

    Args:
        num_samples: size of the dataset.
        batch_size: indices per batch (the paper: 128).
        num_batches: batches per epoch (set it to the number of steps).
        seed: the seed of the whole sequence.
        sampler: ignored except for its ``rank`` when it is a ``DistributedSampler`` (Lightning
            passes one when it re-creates batch samplers under DDP); without it the rank comes
            from ``torch.distributed`` when that is initialised.
        drop_last: accepted for the ``BatchSampler`` interface; batches are always full.

    Example:
        >>> s = WithReplacementBatchSampler(10, batch_size=4, num_batches=3, seed=0)
        >>> [len(b) for b in s]
        [4, 4, 4]
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        num_batches: int,
        seed: int = 0,
        *,
        sampler: Sampler | None = None,
        drop_last: bool = False,
    ) -> None:
        Sampler.__init__(self)
        self.num_samples = positive_int(num_samples, "num_samples")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.num_batches = positive_int(num_batches, "num_batches")
        self.seed = int(seed)
        self.drop_last = drop_last
        self.sampler = sampler
        self._init_position()

    @property
    def rank(self) -> int:
        """Rank used to draw batches (different ranks draw different batches)."""
        rank = getattr(self.sampler, "rank", None)
        return int(rank) if rank is not None else _dist_rank()

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rank = self.rank
        for i in self._positions():
            idx = batch_indices(self.num_samples, self.batch_size, seed=self.seed,
                                index=self._global_index(i), rank=rank)
            yield idx.tolist()


class TensorBatchLoader(_ResumableIndex):
    """Iterate ``num_batches`` batches drawn with replacement from in-memory tensors.

    Args:
        tensors: tensors sharing their first dimension (e.g. ``(images, labels)``), on any
            device; batches are gathered where the tensors live.
        batch_size: samples per batch.
        num_batches: batches per epoch (the number of steps).
        seed: the seed of the whole sequence.
        transform: optional function applied to each batch tuple (e.g. uint8 -> normalised
            float), after gathering.

    Yields:
        Tuples ``(t[idx] for t in tensors)`` (after ``transform``).

    It is a sized iterable with ``state_dict``/``load_state_dict``: Lightning uses it as a
    train dataloader, saves its position in checkpoints and restores it on resume.
    """

    def __init__(
        self,
        tensors: Sequence[Tensor],
        batch_size: int,
        num_batches: int,
        seed: int = 0,
        *,
        transform: Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]] | None = None,
    ) -> None:
        self.tensors = tuple(tensors)
        if not self.tensors:
            raise ValueError("`tensors` is empty.")
        n = self.tensors[0].shape[0]
        if any(t.shape[0] != n for t in self.tensors):
            sizes = [t.shape[0] for t in self.tensors]
            raise ValueError(f"`tensors` must share their first dimension, got {sizes}.")
        self.num_samples = positive_int(n, "len(tensors[0])")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.num_batches = positive_int(num_batches, "num_batches")
        self.seed = int(seed)
        self.transform = transform
        self._init_position()

    def extra_batches(self, count: int, *, seed: int, start: int, rank: int = 0
                      ) -> list[tuple[Tensor, ...]]:
        """``count`` batches ``start .. start+count-1`` of an independent stream (its own
        ``seed``): draws for measurements (the gradient SNR) that leave the training
        sequence untouched. A pure function of the arguments, like :func:`batch_indices`."""
        out = []
        for j in range(count):
            idx = batch_indices(self.num_samples, self.batch_size, seed=seed, index=start + j,
                                rank=rank).to(self.tensors[0].device)
            batch = tuple(t[idx] for t in self.tensors)
            out.append(self.transform(batch) if self.transform is not None else batch)
        return out

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        rank = _dist_rank()
        device = self.tensors[0].device
        for i in self._positions():
            idx = batch_indices(self.num_samples, self.batch_size, seed=self.seed,
                                index=self._global_index(i), rank=rank).to(device)
            batch = tuple(t[idx] for t in self.tensors)
            yield self.transform(batch) if self.transform is not None else batch
