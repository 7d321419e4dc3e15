"""The gradient SNR and the full-data energy from a plain ``torch.utils.data.DataLoader``, the
loader most Lightning projects use (issue 26): independent seeded index draws from its
map-style dataset through its own ``collate_fn``; the training order and every random state
untouched; only an ``IterableDataset`` needs ``snr_data=``."""

from __future__ import annotations

import logging
import math
import random
import warnings

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from tests.helpers.modules import NoForward
from tests.helpers.trainers import quiet_trainer
from thermo_lightning import SphereProjectionStrategy, keys
from thermo_lightning.callback import ThermoCallback
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.data.sources import ExtraBatches, MapStyleSource, full_data_batches
from thermo_lightning.functional import gradient_snr
from thermo_lightning.probes import flat_gradient, training_step_loss


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    return DigitsDataModule().load_tensors()


class _Noisy(Dataset):
    """A map-style dataset whose items use every global random generator (as augmentations
    do), returned as dicts (collated by a custom ``collate_fn``)."""

    def __init__(self, n: int = 40) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        noise = torch.rand(()) + random.random() + float(np.random.rand())  # noqa: NPY002
        return {"x": torch.tensor([float(i)]), "noise": noise}


def _collate(items: list[dict]) -> dict:
    return {"x": torch.stack([it["x"] for it in items]), "n": len(items)}


def test_draws_come_from_the_dataset_through_the_loaders_collate_fn() -> None:
    loader = DataLoader(_Noisy(), batch_size=8, shuffle=True, collate_fn=_collate)
    extra = ExtraBatches(seed=1)
    assert extra.can_draw(loader)
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)  # noqa: NPY002
    states = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())  # noqa: NPY002
    a = extra.draw(3, loader=loader, index=2)
    after = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())  # noqa: NPY002
    assert torch.equal(states[0], after[0]) and states[1] == after[1]
    assert np.array_equal(states[2], after[2])  # the augmentations' random states restored
    assert [b["n"] for b in a] == [8, 8, 8] and a[0]["x"].shape == (8, 1)
    b = extra.draw(3, loader=loader, index=2)
    assert all(torch.equal(u["x"], v["x"]) for u, v in zip(a, b, strict=True))  # pure
    c = extra.draw(3, loader=loader, index=3)
    assert not torch.equal(a[0]["x"], c[0]["x"])  # the next measurement draws afresh
    assert not torch.equal(a[0]["x"], extra.draw(3, loader=loader, index=2, rank=1)[0]["x"])


def test_a_batch_sampler_loader_and_the_full_pass() -> None:
    data = TensorDataset(torch.arange(10.0).reshape(10, 1))
    from torch.utils.data import BatchSampler, RandomSampler

    loader = DataLoader(data, batch_sampler=BatchSampler(RandomSampler(data), 4, False))
    source = MapStyleSource.of(loader)
    assert source is not None and source.batch_size == 4
    full = full_data_batches(None, None, None, loader)
    assert len(full) == 3  # type: ignore[arg-type]
    assert [b[0].reshape(-1).tolist() for b in full] == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]  # every sample once, in order


def test_an_iterable_dataset_cannot_be_drawn_from() -> None:
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(torch.arange(4.0).reshape(4, 1))

    loader = DataLoader(Stream(), batch_size=2)
    assert not ExtraBatches().can_draw(loader) and ExtraBatches().draw(
        2, loader=loader, index=0) is None
    with pytest.raises(ValueError, match="IterableDataset"):
        full_data_batches(None, None, None, loader)
    assert ExtraBatches([1]).can_draw(loader)  # snr_data= given: it is used


class _PlainLoader(NoForward):
    """No ``forward``, a shuffled plain ``DataLoader`` over digits from ``train_dataloader``."""

    def __init__(self, n: int = 1797, batch_size: int = 16) -> None:
        super().__init__(lr=0.2)
        self.n, self.batch_size = n, batch_size

    def train_dataloader(self):
        x, y = load_digits_tensors()
        return DataLoader(TensorDataset(x[: self.n], y[: self.n]), batch_size=self.batch_size,
                          shuffle=True)


def test_the_default_callback_measures_the_snr_from_a_plain_loader() -> None:
    pl.seed_everything(0)
    cb = ThermoCallback(window=10, k=3, schedule=lambda s: s == 12, snr_batches=4)
    model = _PlainLoader()
    trainer = quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=12, callbacks=[cb])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model)
    assert not [w for w in caught if "no gradient SNR" in str(w.message)]
    assert cb.meter.snr_plan() == ("unbiased", 4)  # 113 batches > K / 2
    snr = cb.history[keys.SNR].iloc[-1]
    assert math.isfinite(snr)
    # the very batches the callback drew, at the final weights: the same SNR
    cb.meter.measurements -= 1
    batches = cb._snr_batches(trainer, 4)
    params = trainer.strategy.projector.parameters
    grads = torch.stack([flat_gradient(training_step_loss(model, b), params) for b in batches])
    assert snr == pytest.approx(gradient_snr(grads)["snr"], rel=1e-5)


class _Batches(pl.Callback):
    """A fingerprint of every training batch, in order."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append(float(batch[0].double().sum()))


def test_measuring_a_plain_loader_does_not_change_training() -> None:
    def final_weights(callbacks):
        pl.seed_everything(0)
        model, batches = _PlainLoader(), _Batches()
        quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=25,
                      callbacks=[*callbacks, batches]).fit(model)
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()]), batches.seen

    plain, plain_batches = final_weights([])
    measured, measured_batches = final_weights([
        ThermoCallback(window=10, k=3, schedule=6, energy="full", snr="exact", snr_batches=3)])
    assert plain_batches == measured_batches  # the same shuffled batches, in the same order
    assert torch.equal(plain, measured)


def test_a_small_plain_dataset_gives_the_exact_snr_and_the_full_energy() -> None:
    pl.seed_everything(0)
    # the net has BatchNorm: snr="auto" keeps the unbiased estimate (issue 27), so the exact
    # SNR, its full pass drawn from the plain DataLoader's dataset, is asked for
    cb = ThermoCallback(window=10, k=3, schedule=lambda s: s == 8, energy="full",
                        snr_batches=4, snr="exact")
    model = _PlainLoader(n=64, batch_size=32)
    trainer = quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=8, callbacks=[cb])
    trainer.fit(model)
    assert cb.meter.snr_plan() == ("exact", 4)
    x, y = load_digits_tensors()
    model.train()
    with torch.no_grad():
        expected = sum(float(torch.nn.functional.cross_entropy(model.net(x[i:i + 32]),
                                                              y[i:i + 32])) * 32
                       for i in (0, 32)) / 64
    assert cb.history[keys.ENERGY].iloc[-1] == pytest.approx(expected, rel=1e-5)
    assert math.isfinite(cb.history[keys.SNR].iloc[-1])


def test_an_iterable_dataset_is_said_once_and_not_announced(caplog) -> None:
    class Stream(IterableDataset):
        def __iter__(self):
            x, y = load_digits_tensors()
            return iter(zip(x[:320], y[:320], strict=True))

    class StreamModule(NoForward):
        def train_dataloader(self):
            return DataLoader(Stream(), batch_size=16)

    cb = ThermoCallback(window=5, k=2, schedule=5, snr_batches=4)
    trainer = quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=15, callbacks=[cb])
    with caplog.at_level(logging.INFO), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(StreamModule())
    said = [str(w.message) for w in caught if "no gradient SNR" in str(w.message)]
    assert len(said) == 1 and "IterableDataset" in said[0] and "snr_data=" in said[0]
    assert "unbiased estimate" not in caplog.text  # no announcement of an SNR it cannot take
    assert keys.SNR not in cb.history or cb.history[keys.SNR].isna().all()
    assert math.isfinite(cb.history[keys.ENTROPY].iloc[-1])
    # with only the configurational temperature on, the warning names what is left out
    conf = ThermoCallback(window=5, k=2, schedule=5, snr=None, conf_temperature=True)
    trainer = quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=15,
                            callbacks=[conf])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(StreamModule())
    said = [str(w.message) for w in caught if "ThermoCallback measures no" in str(w.message)]
    assert len(said) == 1 and "no configurational temperature in this fit" in said[0]
    assert "SNR" not in said[0].split(":")[0]
