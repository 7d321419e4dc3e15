"""Where a measurement's extra batches come from (the SNR's mini-batches, the full-data pass),
without disturbing the training sequence. No Lightning: the callback hands in its loader and
data module."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from thermo_lightning.data.sampling import TensorBatchLoader

__all__ = ["DataSpec", "ExtraBatches", "full_data_batches"]

DataSpec = Iterable[Any] | Callable[[], Iterable[Any]] | None
_SNR_SEED_OFFSET = 0x5EED_0F_5A


def _iterate(source: Iterable[Any] | Callable[[], Iterable[Any]]) -> Iterator[Any]:
    return iter(source() if callable(source) else source)


class ExtraBatches:
    """Mini-batches for the gradient SNR.

    Args:
        source: an iterable of batches or a callable returning one (cycled: a fresh pass when
            one ends); ``None``: independent draws from the training tensors of a
            :class:`~thermo_lightning.data.TensorBatchLoader` (its own seeded stream: the
            training batches are untouched).
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
        if isinstance(loader, TensorBatchLoader):
            return loader.extra_batches(count, seed=loader.seed + _SNR_SEED_OFFSET + self.seed,
                                        start=index * count, rank=rank)
        return None


def full_data_batches(source: DataSpec, datamodule: Any, module: Any = None) -> Iterator[Any]:
    """The whole training set in batches: ``source``, else ``datamodule.full_batches()``,
    else ``module.full_batches()`` (a LightningModule that holds its own data, like the toy
    problems).

    Raises:
        ValueError: none of them is there.
    """
    for owner in (datamodule, module):
        if source is None and callable(getattr(owner, "full_batches", None)):
            source = owner.full_batches
    if source is None:
        raise ValueError("energy='full' and snr='exact' need the whole training set: pass "
                         "`full_data=` (an iterable of batches or a callable returning one) or "
                         "use a data module (or module) with `full_batches()`.")
    return _iterate(source)
