"""Digits (offline) and CIFAR data modules; CIFAR tested with small fake data only."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.runif import RunIf
from tests.helpers.trainers import quiet_trainer
from thermo_lightning.data import CIFAR10_MEAN, CIFAR10_STD, CIFARDataModule, DigitsDataModule


@RunIf(sklearn=True)
def test_digits_module() -> None:
    dm = DigitsDataModule(batch_size=32, num_steps=3)
    dm.setup()
    assert dm.images.shape == (1797, 1, 8, 8) and dm.labels.shape == (1797,)
    assert float(dm.images.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(dm.images.std()) == pytest.approx(1.0, abs=1e-5)
    batches = list(dm.train_dataloader())
    assert len(batches) == 3 and batches[0][0].shape == (32, 1, 8, 8)
    full = list(dm.full_batches(500))
    assert [b[0].shape[0] for b in full] == [500, 500, 500, 297]
    assert torch.equal(torch.cat([b[1] for b in full]), dm.labels)


def test_num_steps_comes_from_the_trainer() -> None:
    dm = DigitsDataModule(batch_size=8)
    with pytest.raises(ValueError, match="max_steps"):
        dm.train_dataloader()
    trainer = quiet_trainer(max_steps=7, accumulate_grad_batches=2)
    dm.trainer = trainer
    assert len(dm.train_dataloader()) == 14
    with pytest.raises(ValueError, match="`batch_size`"):
        DigitsDataModule(batch_size=0)


def _fake_cifar(n: int = 64, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g)
    return images, torch.randint(0, classes, (n,), generator=g)


def test_cifar_module_with_fake_tensors() -> None:
    images, labels = _fake_cifar()
    dm = CIFARDataModule("cifar10", data=(images, labels), batch_size=8, num_steps=2)
    dm.setup()
    assert dm.images.shape == (64, 3, 32, 32) and dm.images.dtype == torch.uint8
    x, _y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32
    # normalisation: (pixel / 255 - mean) / std, channel by channel
    ref = (images.permute(0, 3, 1, 2).float() / 255 - torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1))
    ref = ref / torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    full_x, full_y = next(dm.full_batches(64))
    torch.testing.assert_close(full_x, ref)
    assert torch.equal(full_y, labels)


def test_cifar_module_validates_data() -> None:
    images, labels = _fake_cifar()
    with pytest.raises(ValueError, match="uint8"):
        CIFARDataModule(data=(images.float(), labels)).setup()
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        CIFARDataModule(data=(images, labels + 10)).setup()
    with pytest.raises(ValueError, match="`name`"):
        CIFARDataModule("svhn")
    assert CIFARDataModule("cifar100", data=_fake_cifar(classes=100)).num_classes == 100


def _write_fake_torchvision_cifar(root: Path, name: str, n: int = 20) -> None:
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files, key, classes = [f"data_batch_{i}" for i in range(1, 6)], "labels", 10
        meta = ("batches.meta", {"label_names": [str(i) for i in range(10)]})
    else:
        folder = root / "cifar-100-python"
        files, key, classes = ["train"], "fine_labels", 100
        meta = ("meta", {"fine_label_names": [str(i) for i in range(100)]})
    folder.mkdir(parents=True)
    for f in files:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 key: rng.integers(0, classes, n).tolist()}
        (folder / f).write_bytes(pickle.dumps(entry))
    (folder / meta[0]).write_bytes(pickle.dumps(meta[1]))


@RunIf(torchvision=True)
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_module_reads_a_torchvision_copy(tmp_path: Path, monkeypatch, name: str) -> None:
    import torchvision.datasets.cifar as tv_cifar

    _write_fake_torchvision_cifar(tmp_path, name)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)  # fake files
    dm = CIFARDataModule(name, root=tmp_path, batch_size=4, num_steps=1)
    dm.setup()
    n_files = 5 if name == "cifar10" else 1
    assert dm.images.shape == (20 * n_files, 3, 32, 32)


@RunIf(torchvision=True)
def test_missing_cifar_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="download=True"):
        CIFARDataModule(root=tmp_path).setup()
