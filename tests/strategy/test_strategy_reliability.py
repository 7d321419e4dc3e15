"""SphereProjectionStrategy with the modules users write: no ``forward``, manual optimisation,
half and double precision, parameters created late, bad arguments (issue 11)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers.modules import GrowsAParameter, ManualNoForward, NoForward
from tests.helpers.trainers import NormRecorder, quiet_trainer
from thermo_lightning import ScaleInvarianceError, SphereProjectionStrategy
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.scale_invariance import find_scale_invariant_parameters, has_own_forward


def _fit(model, strategy="sphere_projection", **kwargs):
    rec = NormRecorder()
    trainer = quiet_trainer(strategy=strategy, callbacks=[rec], **kwargs)
    trainer.fit(model, DigitsDataModule(batch_size=16))
    return trainer, rec


@pytest.mark.parametrize("strategy", ["sphere_projection", "object"])
def test_module_without_forward_is_verified_on_its_training_loss(strategy: str) -> None:
    model = NoForward()
    assert not has_own_forward(model) and has_own_forward(model.net)
    trainer, rec = _fit(model, SphereProjectionStrategy() if strategy == "object" else strategy,
                        max_steps=5)
    projector = trainer.strategy.projector
    assert projector.verification.passed and projector.verification.max_rel_change
    assert [n for n, _ in projector.named_parameters] == [
        f"net.features.{i}.weight" for i in (0, 3, 7, 11)]
    assert max(abs(n - 1.0) for n in rec.norms) <= 1e-5


def test_detection_searches_the_children_of_a_module_without_forward() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "could not be traced" fallback warning
        found = find_scale_invariant_parameters(NoForward())
    assert [n for n, _ in found] == [f"net.features.{i}.weight" for i in (0, 3, 7, 11)]


def test_a_broken_module_without_forward_still_names_the_culprit() -> None:
    model = NoForward()
    model.net.head.weight.requires_grad_(True)  # a trainable last layer: loss not invariant
    with pytest.raises(ScaleInvarianceError, match=r"breaks? it: net\.head\.weight"):
        _fit(model, SphereProjectionStrategy(parameters=lambda n, p: p.requires_grad),
             max_steps=2)


def test_manual_optimisation_without_forward_warns_and_goes_on() -> None:
    with pytest.warns(UserWarning, match="was not checked"):
        trainer, rec = _fit(ManualNoForward(), max_steps=4)
    assert trainer.global_step == 4
    assert max(abs(n - 1.0) for n in rec.norms) <= 1e-5


@pytest.mark.parametrize("precision", ["bf16-true", "16-true", "64-true"])
def test_verification_in_other_precisions_blames_no_layer(precision: str) -> None:
    trainer, rec = _fit(NoForward(), max_steps=3, precision=precision)
    projector = trainer.strategy.projector
    assert projector.verification.passed, projector.verification
    expected = {"bf16-true": torch.bfloat16, "16-true": torch.float16,
                "64-true": torch.float64}[precision]
    assert all(p.dtype == expected for p in projector.parameters)  # restored after the check
    assert max(abs(n - 1.0) for n in rec.norms) < 2e-2  # on the sphere, to the dtype's rounding


def test_parameters_added_after_set_up_are_not_silently_left_off() -> None:
    with pytest.raises(ScaleInvarianceError, match=r"net\.features\.0\.weight2"):
        _fit(GrowsAParameter(), max_steps=3)


def test_a_parameter_added_mid_run_is_caught_at_the_next_step() -> None:
    # added before batch 5, whose step is the run's 6th; the check used to run every 50
    with pytest.raises(ScaleInvarianceError, match=r"weight2.*after optimiser step 6\)"):
        _fit(GrowsAParameter(at_batch=5), max_steps=100)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"per_tensor": "yes"}, "`per_tensor`"),
        ({"verify": 1}, "`verify`"),
        ({"parameters": 42}, "`parameters`"),
        ({"parameters": "net.features.0.weight"}, "`parameters`"),
        ({"parameters": [1, 2]}, "`parameters`"),
        ({"verify_forward": "forward"}, "`verify_forward`"),
        ({"radius": "1"}, "`radius`"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SphereProjectionStrategy(**kwargs)
