"""Extra passes: the loss a module's measurements use, and the forward check."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.modules import ManualNoForward, NoForward
from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet
from thermo_lightning.probes import default_loss_fn, training_step_loss
from thermo_lightning.scale_invariance import has_own_forward


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 1, 8, 8, generator=g), torch.randint(10, (8,), generator=g)


def test_default_loss_prefers_the_module_loss() -> None:
    task = ClassificationTask(ScaleInvariantConvNet(2, in_channels=1))
    fn = default_loss_fn(task)
    assert torch.equal(fn(task, _batch()), task.loss(_batch())[0])


def test_without_loss_the_training_step_is_used_with_logging_off() -> None:
    model = NoForward()
    messages = []
    fn = default_loss_fn(model, warn=messages.append)
    assert fn is training_step_loss and "training_step" in messages[0]
    calls = []
    model.log = lambda *a, **k: calls.append(a)  # an instance attribute, restored after
    value = fn(model, _batch())
    assert value.ndim == 0 and calls == [] and model.log is not None
    model.log("x", 1)
    assert calls == [("x", 1)]


def test_manual_optimisation_needs_an_explicit_loss() -> None:
    with pytest.raises(ValueError, match="loss_fn"):
        default_loss_fn(ManualNoForward())


def test_has_own_forward() -> None:
    assert not has_own_forward(NoForward())
    assert has_own_forward(ClassificationTask(ScaleInvariantConvNet(2, in_channels=1)))
    assert not has_own_forward(torch.nn.ModuleList())
    assert has_own_forward(torch.nn.Linear(2, 2))


def test_batch_energy_undoes_the_accumulation_division() -> None:
    from thermo_lightning.probes import batch_energy

    loss = torch.tensor(1.25)
    assert float(batch_energy(loss / 4, accumulate=4)) == 1.25
    assert float(batch_energy({"loss": loss / 4, "energy": torch.tensor(0.5)},
                              accumulate=4)) == 0.5  # the energy entry is not divided
    assert float(batch_energy({"loss": loss})) == 1.25
    assert batch_energy(None) is None and batch_energy(torch.ones(3)) is None


def test_snr_of_a_float64_model_keeps_gradients_below_float32_range() -> None:
    # the over-parameterised toy at small LRs has gradients ~1e-88 (the paper's example):
    # cast to float32 they flush to 0 and the SNR comes out NaN. Scaling the loss by 1e-90
    # scales every gradient alike and leaves the SNR unchanged.
    from thermo_lightning.models import ToySphereModule
    from thermo_lightning.probes import flat_gradient, full_gradient_and_loss, snr_from_batches

    model = ToySphereModule("up", x0=(0.3, -0.5, 0.8))
    params = [model.x]
    batches = [(torch.tensor([i % 3]),) for i in range(7)]
    full = [(torch.arange(3),)]

    def loss(scale: float):
        return lambda module, batch: module(batch[0]).mean() * scale

    assert flat_gradient(loss(1e-90)(model, full[0]), params).dtype == torch.float64
    for exact in (False, True):
        out = {}
        for scale in (1.0, 1e-90):
            g = full_gradient_and_loss(model, loss(scale), full, params)[0] if exact else None
            out[scale] = snr_from_batches(model, loss(scale), batches, params, g)["snr"]
        assert out[1.0] > 0 and out[1e-90] == pytest.approx(out[1.0], rel=1e-9)
