"""Sphere geometry: joint norm, projection, tangent projection, effective LR."""

from __future__ import annotations

import pytest
import torch

from thermo_lightning.functional import (
    effective_lr,
    joint_norm,
    project_to_sphere_,
    sphere_distance_to_radius,
    tangent_projection,
)


def _group(gen: torch.Generator, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    return [torch.randn(*s, generator=gen, dtype=dtype) for s in ((8, 3, 3, 3), (16,), (4, 4))]


def test_joint_norm_is_norm_of_concatenation(gen: torch.Generator) -> None:
    ts = _group(gen, torch.float64)
    flat = torch.cat([t.reshape(-1) for t in ts])
    assert float(joint_norm(ts)) == pytest.approx(float(flat.norm()), rel=1e-14)


def test_joint_norm_accumulates_half_precision_in_float32(gen: torch.Generator) -> None:
    ts = [t.to(torch.bfloat16) for t in _group(gen)]
    n = joint_norm(ts)
    assert n.dtype == torch.float32
    ref = torch.cat([t.float().reshape(-1) for t in ts]).norm()
    assert float(n) == pytest.approx(float(ref), rel=1e-6)


@pytest.mark.parametrize("radius", [1.0, 0.1, 30.0])
def test_projection_puts_the_group_on_the_sphere(gen: torch.Generator, radius: float) -> None:
    ts = _group(gen)
    flat_before = torch.cat([t.reshape(-1) for t in ts])
    norm_before = project_to_sphere_(ts, radius)
    assert float(norm_before) == pytest.approx(float(flat_before.norm()), rel=1e-6)
    assert sphere_distance_to_radius(ts, radius) <= 1e-6
    flat_after = torch.cat([t.reshape(-1) for t in ts])
    # one joint scale: the direction is kept
    cos = torch.nn.functional.cosine_similarity(flat_before, flat_after, dim=0)
    assert float(cos) == pytest.approx(1.0, abs=1e-6)


def test_per_tensor_projection(gen: torch.Generator) -> None:
    ts = _group(gen)
    norms = project_to_sphere_(ts, 2.0, per_tensor=True)
    assert norms.shape == (3,)
    for t in ts:
        assert float(t.norm()) == pytest.approx(2.0, rel=1e-6)


def test_projection_errors() -> None:
    with pytest.raises(ValueError, match="`radius`"):
        project_to_sphere_([torch.ones(3)], 0.0)
    with pytest.raises(ValueError, match="zero or not finite"):
        project_to_sphere_([torch.zeros(3)])
    with pytest.raises(ValueError, match="zero or not finite"):
        project_to_sphere_([torch.tensor([1.0, float("nan")])])
    with pytest.raises(ValueError, match="empty"):
        joint_norm([])


def test_tangent_projection_is_orthogonal(gen: torch.Generator) -> None:
    w = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    g = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    gp = tangent_projection(w, g)
    torch.testing.assert_close((gp * w).sum(-1), torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(tangent_projection(w, gp), gp)  # idempotent
    with pytest.raises(ValueError, match="same shape"):
        tangent_projection(w, g[:, :3])


def test_effective_lr() -> None:
    assert effective_lr(0.1, 2.0) == pytest.approx(0.025)
    with pytest.raises(ValueError, match="`norm`"):
        effective_lr(0.1, 0.0)
