"""Extra batches for the measurement's passes, drawn without touching the training stream."""

from __future__ import annotations

import pickle

import pytest
import torch

from thermo_lightning.data import TensorBatchLoader
from thermo_lightning.data.sources import ExtraBatches, full_data_batches


def _loader() -> TensorBatchLoader:
    x = torch.arange(100.0).reshape(100, 1)
    return TensorBatchLoader((x, x.squeeze(1).long()), batch_size=8, num_batches=5, seed=3)


def test_independent_draws_are_a_pure_function_of_the_index() -> None:
    loader = _loader()
    training = [b[0].clone() for b in loader]
    extra = ExtraBatches(seed=1)
    a = extra.draw(4, loader=loader, index=2)
    b = extra.draw(4, loader=loader, index=2)
    assert all(torch.equal(u[0], v[0]) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0][0], extra.draw(4, loader=loader, index=3)[0][0])
    assert all(torch.equal(u, v[0]) for u, v in zip(training, _loader(), strict=True))


def test_a_given_source_is_cycled_and_pickles() -> None:
    extra = ExtraBatches(lambda: iter([1, 2, 3]))
    assert extra.draw(5, loader=None, index=0) == [1, 2, 3, 1, 2]
    assert pickle.loads(pickle.dumps(ExtraBatches([1, 2]))).draw(3, loader=None, index=0) == [
        1, 2, 1]


def test_no_source_and_an_ordinary_loader_gives_none() -> None:
    assert ExtraBatches().draw(2, loader=[(torch.zeros(1),)], index=0) is None


def test_full_data_needs_a_source() -> None:
    with pytest.raises(ValueError, match="full_data"):
        full_data_batches(None, object())
    assert list(full_data_batches([1, 2], None)) == [1, 2]
