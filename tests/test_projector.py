"""SphereProjector without Lightning: the group on the sphere after every step taken."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thermo_lightning.functional import joint_norm
from thermo_lightning.projector import SphereProjector
from thermo_lightning.scale_invariance import ScaleInvarianceError


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6, bias=False), nn.BatchNorm1d(6, affine=False),
                         nn.ReLU(), nn.Linear(6, 3, bias=False), nn.BatchNorm1d(3, affine=False))


def test_plain_loop_stays_on_the_sphere_and_skipped_steps_project_nothing() -> None:
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    messages: list[str] = []
    projector = SphereProjector(radius=2.0, info=messages.append)
    projector.attach(net, [opt])
    assert "2 tensors" in messages[0]
    assert float(joint_norm(projector.parameters)) == pytest.approx(2.0, rel=1e-6)
    x = torch.randn(16, 4)
    for _ in range(5):
        opt.zero_grad()
        net(x).pow(2).sum().backward()
        opt.step()
        assert float(joint_norm(projector.parameters)) == pytest.approx(2.0, rel=1e-6)
    assert projector.projection_count == 1 + 5
    projector.detach()
    opt.step()  # detached: no projection
    assert projector.projection_count == 6


def test_verification_names_the_culprit_without_lightning() -> None:
    net = _net()
    net[3] = nn.Linear(6, 3, bias=False)
    net.append(nn.Linear(3, 2, bias=False))  # not followed by a norm: breaks invariance
    projector = SphereProjector(parameters=lambda n, p: True, warn=lambda m: None)
    projector.attach(net, [torch.optim.SGD(net.parameters(), lr=0.1)])
    with pytest.raises(ScaleInvarianceError, match=r"5\.weight"):
        projector.maybe_verify(net, torch.randn(8, 4))
