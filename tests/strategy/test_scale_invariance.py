"""Detection and verification of the scale-invariant group; the paper's networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thermo_lightning.models import ScaleInvariantConvNet, ScaleInvariantResNet18
from thermo_lightning.scale_invariance import (
    ScaleInvarianceError,
    find_scale_invariant_parameters,
    parameter_summary,
    resolve_parameters,
    verify_scale_invariance,
)


def _trainable_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("c", [1, 2, 8])
def test_convnet_si_count(c: int) -> None:
    assert _trainable_count(ScaleInvariantConvNet(c)) == 27 * c + 378 * c**2
    assert _trainable_count(ScaleInvariantConvNet(c, in_channels=1)) == 9 * c + 378 * c**2


@pytest.mark.parametrize("k", [1, 4])
def test_resnet_si_count(k: int) -> None:
    assert _trainable_count(ScaleInvariantResNet18(k)) == 27 * k + 2724 * k**2


def test_paper_widths_match_the_table() -> None:
    # docs/reproduction.md: D = 24,408 (ConvNet 8) and 43,692 (ResNet-18 width 4)
    assert _trainable_count(ScaleInvariantConvNet(8)) == 24_408
    assert _trainable_count(ScaleInvariantResNet18(4)) == 43_692


@pytest.mark.parametrize(
    "net", [ScaleInvariantConvNet(3), ScaleInvariantResNet18(2)], ids=["convnet", "resnet"]
)
def test_networks_are_fully_scale_invariant(net: nn.Module) -> None:
    found = find_scale_invariant_parameters(net)
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert [n for n, _ in found] == trainable
    if isinstance(net, ScaleInvariantConvNet):  # the order heuristic cannot see residual sums
        assert [n for n, _ in find_scale_invariant_parameters(net, method="order")] == trainable
    x = torch.randn(12, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    report = verify_scale_invariance(net, found, x)
    assert report.passed, str(report)
    assert max(report.max_rel_change.values()) < 1e-5


def test_frozen_head() -> None:
    a, b = ScaleInvariantConvNet(4), ScaleInvariantConvNet(4)
    assert not a.head.weight.requires_grad
    assert float(a.head.weight.norm()) == pytest.approx(10.0, rel=1e-6)
    assert torch.equal(a.head.weight, b.head.weight)  # fixed seed
    assert not torch.equal(a.head.weight, ScaleInvariantConvNet(4, head_seed=1).head.weight)


def test_verification_names_a_trainable_head() -> None:
    net = ScaleInvariantConvNet(2)
    net.head.weight.requires_grad_(True)
    group = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    report = verify_scale_invariance(net, group, torch.randn(8, 3, 32, 32))
    assert not report.passed
    assert report.culprits == ["head.weight"]
    assert "head.weight" in str(report)
    # detection leaves the trainable head out
    assert "head.weight" not in dict(find_scale_invariant_parameters(net))


def test_verification_names_an_affine_batchnorm_weight() -> None:
    # the last BatchNorm (before pooling and the frozen head) made affine: scaling its weight
    # scales the logits. (An affine BN whose output is normalised again would still be
    # jointly scale-invariant.)
    net = ScaleInvariantConvNet(2)
    net.features[12] = nn.BatchNorm2d(16, affine=True)
    with torch.no_grad():
        net.features[12].weight.uniform_(0.5, 1.5)
        net.features[12].bias.uniform_(-0.5, 0.5)
    group = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    report = verify_scale_invariance(net, group, torch.randn(8, 3, 32, 32))
    assert not report.passed
    assert "features.12.weight" in report.culprits
    assert not any(c.startswith("features.0") for c in report.culprits)
    detected = dict(find_scale_invariant_parameters(net))
    assert "features.12.weight" not in detected and "features.11.weight" in detected


class _NoNormAfterSecondConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(4, affine=False)
        self.conv2 = nn.Conv2d(4, 4, 3, bias=False)  # nothing normalises its output
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, 3, bias=False).requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.conv2(torch.relu(self.bn1(self.conv1(x))))).flatten(1))


def test_verification_names_a_layer_without_normalisation() -> None:
    net = _NoNormAfterSecondConv()
    report = verify_scale_invariance(net, list(net.parameters())[:2], torch.randn(8, 1, 9, 9))
    assert not report.passed
    assert report.culprits == ["conv2.weight"]
    assert [n for n, _ in find_scale_invariant_parameters(net)] == ["conv1.weight"]


def test_verification_restores_everything() -> None:
    net = ScaleInvariantConvNet(2)
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    eps = [m.eps for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    batch = torch.randn(4, 3, 32, 32)
    rng = torch.get_rng_state()
    verify_scale_invariance(net, None, batch)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not net.training
    assert eps == [m.eps for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert torch.equal(rng, torch.get_rng_state())


def test_verification_with_dropout_uses_the_same_masks() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4, affine=False),
                        nn.Dropout(0.5), nn.Flatten())
    assert verify_scale_invariance(net, None, torch.randn(6, 1, 5, 5)).passed


class _Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, bias=False)
        self.bn = nn.BatchNorm2d(2, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            x = -x
        return self.bn(self.conv(x))


def test_untraceable_model_falls_back_to_module_order() -> None:
    with pytest.warns(UserWarning, match="could not be traced"):
        found = find_scale_invariant_parameters(_Branchy())
    assert [n for n, _ in found] == ["conv.weight"]
    with pytest.raises(torch.fx.proxy.TraceError):
        find_scale_invariant_parameters(_Branchy(), method="fx")


def test_resolve_parameters_forms() -> None:
    net = ScaleInvariantConvNet(2)
    names = ["features.0.weight", "features.3.weight"]
    assert [n for n, _ in resolve_parameters(net, names)] == names
    params = [net.features[0].weight]
    assert resolve_parameters(net, params)[0][0] == "features.0.weight"
    assert len(resolve_parameters(net, lambda n, p: n.endswith("3.weight"))) == 1
    with pytest.raises(ValueError, match="not parameters of the model"):
        resolve_parameters(net, ["nope.weight"])
    with pytest.raises(ValueError, match="not parameters of the model"):
        resolve_parameters(net, [nn.Parameter(torch.ones(2))])
    with pytest.raises(ValueError, match="frozen"):
        resolve_parameters(net, ["head.weight"])
    mlp = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ScaleInvarianceError, match="affine=False"):
        resolve_parameters(mlp, None)


def test_parameter_summary_groups() -> None:
    net = ScaleInvariantConvNet(2)
    net.features[12] = nn.BatchNorm2d(16, affine=True)
    table = parameter_summary(net, find_scale_invariant_parameters(net))
    groups = dict(zip(table["name"], table["group"], strict=True))
    assert groups["features.0.weight"] == "scale_invariant"
    assert groups["features.12.weight"] == "trainable"
    assert groups["head.weight"] == "frozen"
    assert table["count"].sum() == sum(p.numel() for p in net.parameters())


def test_bad_factors() -> None:
    with pytest.raises(ValueError, match="`factors`"):
        verify_scale_invariance(ScaleInvariantConvNet(1), None, torch.randn(2, 3, 8, 8),
                                factors=(0.0,))
