"""Where a measurement's extra batches come from (the SNR's mini-batches, the full-data pass),
without disturbing the training sequence. No Lightning: the callback hands in its loader and
data module.

A plain :class:`torch.utils.data.DataLoader` over a map-style dataset (``len`` and indexing)
is enough for both: the SNR's mini-batches are seeded index draws from its dataset, collated
with the loader's own ``collate_fn``, and the full pass goes through the dataset in order, in
batches of the loader's size. The loader itself is never iterated (the training order stays as
it is), and the random states a dataset's transforms may use (torch, ``random``, NumPy) are
restored after every access. Only an :class:`~torch.utils.data.IterableDataset` (no indexing)
needs ``snr_data=`` and ``full_data=``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader, IterableDataset

from thermo_lightning.data.sampling import batch_indices
from thermo_lightning.probes import preserved_rng

__all__ = ["DataSpec", "ExtraBatches", "MapStyleSource", "full_data_batches"]

DataSpec = Iterable[Any] | Callable[[], Iterable[Any]] | None
_SNR_SEED_OFFSET = 0x5EED_0F_5A


def _iterate(source: Iterable[Any] | Callable[[], Iterable[Any]]) -> Iterator[Any]:
    return iter(source() if callable(source) else source)


@dataclass(frozen=True)
class MapStyleSource:
    """A loader's map-style dataset, batch size and ``collate_fn``: what extra batches are
    drawn from without touching the loader (module docstring)."""

    dataset: Any
    size: int
    batch_size: int
    collate_fn: Callable[[list[Any]], Any]

    @classmethod
    def of(cls, loader: Any) -> MapStyleSource | None:
        """The source behind ``loader``; ``None`` when it is no ``DataLoader`` or its dataset
        cannot be indexed (an ``IterableDataset``), is empty, or its batch size is unknown."""
        if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
            return None
        dataset = loader.dataset
        try:
            size = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            return None
        batch_size = loader.batch_size or getattr(loader.batch_sampler, "batch_size", None)
        if not size or not isinstance(batch_size, int) or batch_size < 1:
            return None
        return cls(dataset, size, batch_size, loader.collate_fn)

    def collate(self, indices: Sequence[int]) -> Any:
        """The batch of ``indices``, as the loader would collate it (random states kept)."""
        with preserved_rng():
            return self.collate_fn([self.dataset[i] for i in indices])

    def draw(self, count: int, *, seed: int, start: int, rank: int = 0) -> list[Any]:
        """``count`` batches ``start .. start+count-1`` of an independent seeded stream
        (uniform indices with replacement, :func:`~thermo_lightning.data.batch_indices`)."""
        return [self.collate(batch_indices(self.size, self.batch_size, seed=seed,
                                           index=start + j, rank=rank).tolist())
                for j in range(count)]

    def __len__(self) -> int:
        """Batches of a full pass."""
        return math.ceil(self.size / self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        """The whole dataset in order, in batches of the loader's size (the last one short)."""
        for start in range(0, self.size, self.batch_size):
            yield self.collate(range(start, min(start + self.batch_size, self.size)))


def _draws_its_own(loader: Any) -> bool:
    """Whether ``loader`` draws independent batches itself (``extra_batches``, as
    :class:`~thermo_lightning.data.TensorBatchLoader`)."""
    return callable(getattr(loader, "extra_batches", None))


class ExtraBatches:
    """Mini-batches for the gradient SNR.

    Args:
        source: an iterable of batches or a callable returning one (cycled: a fresh pass when
            one ends); ``None``: independent draws from the train loader: a loader with
            ``extra_batches(count, *, seed, start, rank)`` (a
            :class:`~thermo_lightning.data.TensorBatchLoader`, the known-temperature
            problem's noise loader) draws them itself from its own seeded stream, a
            ``DataLoader`` over a map-style dataset by index (:class:`MapStyleSource`); the
            training batches are untouched either way.
        seed: offsets the independent stream.
    """

    def __init__(self, source: DataSpec = None, seed: int = 0) -> None:
        self.source, self.seed = source, seed
        self._iter: Iterator[Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_iter": None}  # an iterator does not pickle

    def draw(self, count: int, *, loader: Any, index: int, rank: int = 0) -> list[Any] | None:
        """``count`` batches; ``index`` numbers the measurement (draws are a pure function of
        it). ``None`` when there is no source and ``loader`` cannot draw independent ones."""
        if self.source is not None:
            out: list[Any] = []
            while len(out) < count:
                if self._iter is None:
                    self._iter = _iterate(self.source)
                try:
                    out.append(next(self._iter))
                except StopIteration:
                    self._iter = None
            return out
        if _draws_its_own(loader):
            return loader.extra_batches(count, seed=getattr(loader, "seed", 0)
                                        + _SNR_SEED_OFFSET + self.seed, start=index * count,
                                        rank=rank)
        mapped = MapStyleSource.of(loader)
        if mapped is not None:
            return mapped.draw(count, seed=_SNR_SEED_OFFSET + self.seed, start=index * count,
                               rank=rank)
        return None

    def can_draw(self, loader: Any) -> bool:
        """Whether :meth:`draw` gets batches for ``loader`` (a source of its own, a loader
        with ``extra_batches`` or a ``DataLoader`` over a map-style dataset)."""
        return (self.source is not None or _draws_its_own(loader)
                or MapStyleSource.of(loader) is not None)


def full_data_batches(source: DataSpec, datamodule: Any, module: Any = None,
                      loader: Any = None) -> Iterable[Any]:
    """The whole training set in batches: ``source``, else ``datamodule.full_batches()``,
    else ``module.full_batches()`` (a LightningModule that holds its own data, like the toy
    problems), else the map-style dataset of the train ``loader`` (:class:`MapStyleSource`,
    which has a ``len``).

    Raises:
        ValueError: none of them is there.
    """
    for owner in (datamodule, module):
        if source is None and callable(getattr(owner, "full_batches", None)):
            source = owner.full_batches
    if source is None:
        mapped = MapStyleSource.of(loader)
        if mapped is not None:
            return mapped
        raise ValueError("energy='full' and snr='exact' need the whole training set: pass "
                         "`full_data=` (an iterable of batches or a callable returning one), "
                         "use a data module (or module) with `full_batches()`, or train from a "
                         "DataLoader over a map-style dataset (not an IterableDataset).")
    return _iterate(source)
