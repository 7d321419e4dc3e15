"""GPU paths (skipped without a CUDA device): exact entropy on the device, projection and
snapshots without host synchronisation, the strategy and callback on a GPU."""

from __future__ import annotations

import math

import pytest
import torch

from tests.helpers.runif import RunIf
from tests.helpers.trainers import quiet_trainer
from thermo_lightning import ThermoCallback
from thermo_lightning.buffer import TrajectoryBuffer
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.functional import joint_norm, knn_entropy
from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet
from thermo_lightning.strategy import SphereProjector

pytestmark = RunIf(min_cuda_gpus=1)


def test_entropy_on_gpu_equals_float64_reference() -> None:
    g = torch.Generator().manual_seed(0)
    d = 50_000
    u = torch.randn(d, generator=g, dtype=torch.float64)
    u /= u.norm()
    x = (u + 1e-5 * torch.randn(500, d, generator=g, dtype=torch.float64) / math.sqrt(d)).float()
    ref = knn_entropy(x.double(), k=20, dim=d - 1)
    torch.backends.cuda.matmul.allow_tf32 = True  # the estimator must switch it off itself
    try:
        got = knn_entropy(x.cuda(), k=20, dim=d - 1, backend="torch")
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    assert got == pytest.approx(ref, abs=1e-3)


def test_projection_and_snapshot_do_not_synchronise() -> None:
    net = ScaleInvariantConvNet(8).cuda()
    params = [p for p in net.parameters() if p.requires_grad]
    projector = SphereProjector()
    projector.attach(net, [torch.optim.SGD(params, lr=0.1)])
    buf = TrajectoryBuffer(sum(p.numel() for p in params), window=4, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(3):
            projector.project()
            buf.add(params, step)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert abs(float(joint_norm(params)) - 1.0) < 1e-5
    rows, _slots, bad = buf.snapshots()
    assert rows.shape[0] == 3 and bad == []


def test_strategy_and_callback_on_gpu() -> None:
    cb = ThermoCallback(window=20, k=5, schedule=20, snr_batches=4)
    trainer = quiet_trainer(accelerator="gpu", strategy="sphere_projection", max_steps=20,
                            callbacks=[cb])
    model = ClassificationTask(ScaleInvariantConvNet(4, in_channels=1), lr=0.1)
    trainer.fit(model, DigitsDataModule(batch_size=64, on_device=True))
    assert trainer.strategy.root_device.type == "cuda"
    assert cb.buffer.data.device.type == "cuda"
    last = cb.history.iloc[-1]
    assert math.isfinite(last["thermo/S"]) and abs(last["thermo/weight_norm"] - 1) < 1e-5
