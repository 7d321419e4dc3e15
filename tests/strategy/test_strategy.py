"""SphereProjectionStrategy in Lightning: the sphere after every step actually taken."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.precision import MixedPrecision

from tests.helpers.trainers import NormRecorder, quiet_trainer
from thermo_lightning import (
    DDPSphereProjectionStrategy,
    ScaleInvarianceError,
    SphereProjectionStrategy,
)
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.functional import joint_norm
from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet, ToySphereModule


def _task(width: int = 2, lr: float = 0.1, **kwargs) -> ClassificationTask:
    torch.manual_seed(0)
    return ClassificationTask(ScaleInvariantConvNet(width, in_channels=1), lr=lr, **kwargs)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("lr", [1e-4, 1.0, 100.0])
def test_joint_norm_is_radius_after_every_step(lr: float, precision: str) -> None:
    rec = NormRecorder()
    trainer = quiet_trainer(strategy=SphereProjectionStrategy(radius=1.0), max_steps=8,
                            precision=precision, callbacks=[rec])
    trainer.fit(_task(lr=lr), DigitsDataModule(batch_size=32))
    assert len(rec.norms) == 8
    assert max(abs(n - 1.0) for n in rec.norms) <= 1e-5
    assert rec.projections == list(range(2, 10))  # set-up + one per step


def test_other_radius_and_effective_lr() -> None:
    rec = NormRecorder()
    strategy = SphereProjectionStrategy(radius=3.0)
    trainer = quiet_trainer(strategy=strategy, max_steps=4, callbacks=[rec])
    trainer.fit(_task(lr=0.9), DigitsDataModule(batch_size=16))
    assert max(abs(n - 3.0) for n in rec.norms) <= 3e-5
    assert strategy.effective_lr == pytest.approx(0.1)
    assert strategy.radius == 3.0
    assert len(strategy.scale_invariant_parameters) == 4


def test_per_tensor_projection() -> None:
    trainer = quiet_trainer(strategy=SphereProjectionStrategy(per_tensor=True), max_steps=3)
    trainer.fit(_task(), DigitsDataModule(batch_size=16))
    for _, p in trainer.strategy.scale_invariant_parameters:
        assert float(p.detach().norm()) == pytest.approx(1.0, rel=1e-5)


def test_registry_names_build_the_strategies() -> None:
    assert isinstance(quiet_trainer(strategy="sphere_projection").strategy,
                      SphereProjectionStrategy)
    trainer = quiet_trainer(strategy="ddp_sphere_projection", devices=2)
    assert isinstance(trainer.strategy, DDPSphereProjectionStrategy)
    assert trainer.strategy.radius == 1.0


def test_single_device_strategy_takes_its_device_from_the_accelerator() -> None:
    trainer = quiet_trainer(strategy="sphere_projection")
    assert trainer.strategy.root_device == torch.device("cpu")
    with pytest.raises(ValueError, match="ddp_sphere_projection"):
        quiet_trainer(strategy="sphere_projection", devices=2)


class _BlowUpAt(ClassificationTask):
    """Returns an infinite loss at one batch: AMP's scaler must skip that step."""

    def __init__(self, bad_batch: int, **kwargs) -> None:
        torch.manual_seed(0)
        super().__init__(ScaleInvariantConvNet(2, in_channels=1), **kwargs)
        self.bad_batch = bad_batch

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("inf") if batch_idx == self.bad_batch else loss


def test_step_skipped_by_amp_projects_nothing() -> None:
    rec = NormRecorder(keep_weights=True)
    trainer = quiet_trainer(
        strategy=SphereProjectionStrategy(), max_steps=6, callbacks=[rec],
        plugins=[MixedPrecision("16-mixed", "cpu", torch.amp.GradScaler("cpu"))],
    )
    trainer.fit(_BlowUpAt(bad_batch=3, lr=0.5), DigitsDataModule(batch_size=16))
    assert torch.equal(rec.weights[3], rec.weights[2])  # the skipped step changed nothing
    assert rec.projections[3] == rec.projections[2]  # ... and projected nothing
    assert not torch.equal(rec.weights[4], rec.weights[3])  # training went on afterwards
    assert max(abs(n - 1.0) for n in rec.norms) <= 1e-5


def test_gradient_accumulation_projects_at_boundaries_only() -> None:
    rec = NormRecorder(keep_weights=True)
    trainer = quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=3,
                            accumulate_grad_batches=3, callbacks=[rec])
    trainer.fit(_task(lr=0.5), DigitsDataModule(batch_size=16))
    assert len(rec.projections) == 9
    assert rec.projections == [1, 1, 2, 2, 2, 3, 3, 3, 4]
    assert torch.equal(rec.weights[0], rec.weights[1])  # no step inside an accumulation


class _Manual(ClassificationTask):
    """Manual optimisation: steps on even batches only."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(ScaleInvariantConvNet(2, in_channels=1), lr=0.5)
        self.automatic_optimization = False
        self.steps_taken = 0

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        loss, _ = self.loss(batch)
        self.manual_backward(loss)
        if batch_idx % 2 == 0:
            opt.step()
            self.steps_taken += 1
        opt.zero_grad()
        return loss


def test_manual_optimisation() -> None:
    rec = NormRecorder()
    model = _Manual()
    trainer = quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=5, callbacks=[rec])
    trainer.fit(model, DigitsDataModule(batch_size=16, num_steps=10))
    assert model.steps_taken == 5
    assert trainer.strategy.projector.projection_count == 1 + 5
    assert max(abs(n - 1.0) for n in rec.norms) <= 1e-5


def test_momentum_and_weight_decay_warn_once() -> None:
    trainer = quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=2)
    with pytest.warns(UserWarning, match="momentum=0.9") as record:
        trainer.fit(_task(momentum=0.9, weight_decay=1e-4), DigitsDataModule(batch_size=16))
    assert sum("momentum=" in str(w.message) for w in record) == 1


class _AdamTask(ClassificationTask):
    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def test_non_sgd_optimiser_warns() -> None:
    torch.manual_seed(0)
    model = _AdamTask(ScaleInvariantConvNet(2, in_channels=1))
    with pytest.warns(UserWarning, match="Adam updates the scale-invariant weights"):
        quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=2).fit(
            model, DigitsDataModule(batch_size=16)
        )


def test_verification_failure_names_the_tensor() -> None:
    model = _task()
    model.net.head.weight.requires_grad_(True)
    strategy = SphereProjectionStrategy(parameters=lambda n, p: p.requires_grad)
    with pytest.raises(ScaleInvarianceError, match=r"net\.head\.weight.*affine=False"):
        quiet_trainer(strategy=strategy, max_steps=2).fit(model, DigitsDataModule(batch_size=16))


def test_no_scale_invariant_parameter_says_how_to_fix() -> None:
    class Plain(ClassificationTask):
        def __init__(self) -> None:
            net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
            super().__init__(net, num_classes=10)

    with pytest.raises(ScaleInvarianceError, match="BatchNorm"):
        quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=1).fit(
            Plain(), DigitsDataModule(batch_size=8)
        )


def test_trainable_parameters_outside_the_group_warn() -> None:
    model = _task()
    model.net.head.weight.requires_grad_(True)
    with pytest.warns(UserWarning, match=r"outside the sphere: \['net.head.weight'\]"):
        quiet_trainer(strategy=SphereProjectionStrategy(verify=False), max_steps=1).fit(
            model, DigitsDataModule(batch_size=8)
        )


def test_parameters_by_name() -> None:
    names = ["net.features.0.weight", "net.features.3.weight"]
    strategy = SphereProjectionStrategy(parameters=names, verify=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the other two layers are "outside the sphere"
        quiet_trainer(strategy=strategy, max_steps=2).fit(_task(), DigitsDataModule(batch_size=8))
    assert [n for n, _ in strategy.scale_invariant_parameters] == names
    assert float(joint_norm(strategy.projector.parameters)) == pytest.approx(1.0, rel=1e-5)


def test_bad_radius() -> None:
    for bad in (0.0, -1.0, float("nan"), "1"):
        with pytest.raises(ValueError, match="`radius`"):
            SphereProjectionStrategy(radius=bad)


def test_toy_problem_in_float64_stays_on_the_unit_sphere() -> None:
    model = ToySphereModule(kind="up", lr=0.5)
    trainer = quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=50,
                            precision="64-true")
    trainer.fit(model)
    assert model.x.dtype == torch.float64
    assert float(model.x.detach().norm()) == pytest.approx(1.0, abs=1e-12)


def test_resume_keeps_sphere_and_sampler_position(tmp_path: Path) -> None:
    def run(max_steps: int, ckpt_path=None):
        rec = NormRecorder(keep_weights=True)
        pl.seed_everything(0)
        # the checkpoint callback in both runs (as Lightning asks of a resume); the first
        # writes
        ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=5,
                               save_top_k=-1 if ckpt_path is None else 0)
        trainer = quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=max_steps,
                                callbacks=[rec, ckpt], enable_checkpointing=True)
        model = _task(lr=0.5)
        trainer.fit(model, DigitsDataModule(batch_size=16, seed=3), ckpt_path=ckpt_path)
        return rec

    full = run(12)
    path = tmp_path / "epoch=0-step=5.ckpt"
    assert path.exists(), sorted(p.name for p in tmp_path.iterdir())
    resumed = run(12, ckpt_path=path)
    assert resumed.batch_fingerprints == full.batch_fingerprints[5:]  # same batches, in order
    torch.testing.assert_close(resumed.weights[-1], full.weights[-1], rtol=0, atol=0)
    assert max(abs(n - 1.0) for n in resumed.norms) <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("module", ["task", "noforward"])
def test_ddp_two_cpu_ranks_identical_and_on_the_sphere(tmp_path: Path, module: str) -> None:
    script = Path(__file__).resolve().parents[1] / "helpers" / "ddp_sphere_script.py"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root),
                                                        os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(script), str(tmp_path), "50", module],
                         capture_output=True, text=True, timeout=600, cwd=root, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["world_size"] == 2 and {r0["rank"], r1["rank"]} == {0, 1}
    assert all(torch.equal(a, b) for a, b in zip(r0["params"], r1["params"], strict=True))
    assert len(r0["norms"]) == 50 and max(abs(n - 1.0) for n in r0["norms"]) <= 1e-5
    assert r0["projections"] == r1["projections"] == 51
    assert r0["batch_sums"] != r1["batch_sums"]  # each rank draws its own batches
    assert r0["verified"] and r1["verified"]
