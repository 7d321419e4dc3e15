"""With-replacement batches: determinism, uniformity, ranks, resumability."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from thermo_lightning.data import TensorBatchLoader, WithReplacementBatchSampler, batch_indices


def test_batch_indices_are_a_pure_function() -> None:
    a = batch_indices(100, 16, seed=1, index=7)
    assert torch.equal(a, batch_indices(100, 16, seed=1, index=7))
    assert not torch.equal(a, batch_indices(100, 16, seed=1, index=8))
    assert not torch.equal(a, batch_indices(100, 16, seed=2, index=7))
    assert not torch.equal(a, batch_indices(100, 16, seed=1, index=7, rank=1))
    assert a.dtype == torch.int64 and int(a.min()) >= 0 and int(a.max()) < 100


def test_draws_are_uniform_and_with_replacement() -> None:
    n, bs, nb = 20, 64, 500
    draws = torch.cat([batch_indices(n, bs, seed=0, index=i) for i in range(nb)])
    counts = np.bincount(draws.numpy(), minlength=n)
    expected = bs * nb / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 50  # 19 degrees of freedom: P(chi2 > 50) < 1e-4
    assert any(len(set(batch_indices(n, bs, seed=0, index=i).tolist())) < bs for i in range(3))


def test_sampler_is_reproducible_and_sized() -> None:
    s = WithReplacementBatchSampler(50, 8, 6, seed=4)
    batches = list(s)
    assert len(s) == 6 and len(batches) == 6 and all(len(b) == 8 for b in batches)
    assert batches == list(WithReplacementBatchSampler(50, 8, 6, seed=4))
    assert list(s) != batches  # the next epoch continues the sequence


def test_sampler_resumes_from_its_state() -> None:
    full = list(WithReplacementBatchSampler(50, 8, 10, seed=4))
    s = WithReplacementBatchSampler(50, 8, 10, seed=4)
    it = iter(s)
    first = [next(it) for _ in range(4)]
    state = s.state_dict()
    resumed = WithReplacementBatchSampler(50, 8, 10, seed=4)
    resumed.load_state_dict(state)
    assert first + list(resumed) == full
    with pytest.raises(ValueError, match="seed"):
        WithReplacementBatchSampler(50, 8, 10, seed=5).load_state_dict(state)


def test_sampler_takes_the_rank_of_a_distributed_sampler() -> None:
    ds = TensorDataset(torch.arange(50))
    r1 = WithReplacementBatchSampler(50, 8, 3, seed=0,
                                     sampler=DistributedSampler(ds, num_replicas=2, rank=1))
    assert r1.rank == 1
    assert list(r1) != list(WithReplacementBatchSampler(50, 8, 3, seed=0))


def test_sampler_in_a_dataloader() -> None:
    ds = TensorDataset(torch.arange(30.0), torch.arange(30))
    loader = DataLoader(ds, batch_sampler=WithReplacementBatchSampler(30, 5, 4, seed=0))
    batches = list(loader)
    assert len(batches) == 4
    idx = batch_indices(30, 5, seed=0, index=0)
    assert torch.equal(batches[0][1], idx)


def test_tensor_loader_matches_the_sampler_and_resumes() -> None:
    x = torch.randn(40, 3)
    y = torch.arange(40)
    loader = TensorBatchLoader((x, y), 6, 5, seed=2, transform=lambda b: (b[0] * 2, b[1]))
    batches = list(loader)
    sampler_batches = list(WithReplacementBatchSampler(40, 6, 5, seed=2))
    for (bx, by), idx in zip(batches, sampler_batches, strict=True):
        assert by.tolist() == idx
        torch.testing.assert_close(bx, x[idx] * 2)
    again = TensorBatchLoader((x, y), 6, 5, seed=2)
    it = iter(again)
    next(it), next(it)
    state = again.state_dict()
    assert state == {"seed": 2, "epoch": 0, "next_batch": 2}
    fresh = TensorBatchLoader((x, y), 6, 5, seed=2)
    fresh.load_state_dict(state)
    assert [b[1].tolist() for b in fresh] == [b[1].tolist() for b in batches[2:]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"batch_size": 0}, "`batch_size`"), ({"num_batches": -1}, "`num_batches`"),
     ({"batch_size": 2.5}, "`batch_size`")],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"batch_size": 2, "num_batches": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        WithReplacementBatchSampler(10, **args)
    with pytest.raises(ValueError, match=match):
        TensorBatchLoader((torch.zeros(10),), **args)
    with pytest.raises(ValueError, match="first dimension"):
        TensorBatchLoader((torch.zeros(10), torch.zeros(9)), 2, 3)


@pytest.mark.parametrize("make", ["sampler", "loader"])
def test_epochs_consumed_up_to_len_keep_coming(make: str) -> None:
    # Lightning takes len() batches per epoch and never exhausts the generator (nor calls
    # set_epoch on a custom loader): every epoch must still hand out len() new batches
    x = torch.arange(50.0)[:, None]
    source = (WithReplacementBatchSampler(50, batch_size=4, num_batches=5, seed=0)
              if make == "sampler" else TensorBatchLoader([x], batch_size=4, num_batches=5, seed=0))
    seen = []
    for _ in range(3):
        it = iter(source)
        for _ in range(len(source)):
            batch = next(it)
            seen.append(tuple(batch if make == "sampler" else batch[0][:, 0].tolist()))
    assert len(seen) == 15
    exhausted = [tuple(b if make == "sampler" else b[0][:, 0].tolist())
                 for b in (WithReplacementBatchSampler(50, batch_size=4, num_batches=15, seed=0)
                           if make == "sampler" else
                           TensorBatchLoader([x], batch_size=4, num_batches=15, seed=0))]
    assert seen == exhausted  # the same sequence as one long epoch


def test_max_epochs_runs_every_epoch() -> None:
    import lightning.pytorch as pl

    from tests.helpers.trainers import quiet_trainer
    from thermo_lightning import SphereProjectionStrategy
    from thermo_lightning.data import DigitsDataModule
    from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet

    pl.seed_everything(0, verbose=False)
    trainer = quiet_trainer(strategy=SphereProjectionStrategy(), max_epochs=3)
    trainer.fit(ClassificationTask(ScaleInvariantConvNet(1, in_channels=1), lr=0.01),
                DigitsDataModule(batch_size=16, num_steps=20))
    assert trainer.global_step == 60 == trainer.estimated_stepping_batches
