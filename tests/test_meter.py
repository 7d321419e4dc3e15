"""ThermoMeter without Lightning: a plain loop, its references, state, pickling, reductions,
the window spec and the estimator registry."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from thermo_lightning import keys
from thermo_lightning.functional import gradient_snr, knn_entropy
from thermo_lightning.functional.entropy import KnnGraphEstimator, register_estimator
from thermo_lightning.meter import ThermoMeter, WindowSpec
from thermo_lightning.probes import flat_gradient
from thermo_lightning.projector import SphereProjector


class _Net(nn.Module):
    """Scale-invariant in its two linear layers (each feeds a BatchNorm without affine)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(5, 8, bias=False)
        self.bn_a = nn.BatchNorm1d(8, affine=False)
        self.b = nn.Linear(8, 4, bias=False)
        self.bn_b = nn.BatchNorm1d(4, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn_b(self.b(torch.relu(self.bn_a(self.a(x)))))


def _loss(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def _loop(meter: ThermoMeter, steps: int = 60, lr: float = 0.2, seed: int = 0):
    """A plain training loop on random data; returns (losses, net, projector, optimizer)."""
    torch.manual_seed(seed)
    net = _Net()
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    projector = SphereProjector()
    projector.attach(net, [opt])
    meter.setup(projector.named_parameters, optimizers=[opt], max_steps=steps)
    meter.attach(opt)
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(256, 5, generator=gen), torch.randint(4, (256,), generator=gen)
    losses = []
    for step in range(1, steps + 1):
        idx = torch.randint(256, (32,), generator=gen)
        loss = _loss(net, (x[idx], y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        meter.update(loss)
        losses.append(float(loss))
        if meter.should_measure(step):
            meter.measure(step)
    meter.detach()
    projector.detach()
    return losses, net, projector, opt


def test_plain_loop_measures_against_references() -> None:
    meter = ThermoMeter(window=20, k=[3, 5], stride=2, schedule=20)
    losses, _, projector, _ = _loop(meter)
    hist = meter.history
    assert hist["step"].tolist() == [20.0, 40.0, 60.0]
    # U: the mean loss of the 40 batches behind the window's 20 snapshots (stride 2)
    assert hist[keys.ENERGY].iloc[-1] == pytest.approx(np.mean(losses[-40:]), rel=1e-9)
    # S: knn_entropy of the window itself, on the sphere (dim = D - 1)
    rows, _, _ = meter.buffer.snapshots()
    d = sum(p.numel() for p in projector.parameters)
    assert meter.spec == WindowSpec(20, d, d - 1, (3, 5), 2, 1.0, "knn_graph")
    assert hist[keys.ENTROPY].iloc[-1] == pytest.approx(knn_entropy(rows, k=3, dim=d - 1),
                                                        rel=1e-12)
    assert hist[keys.entropy_key(5)].iloc[-1] == pytest.approx(
        knn_entropy(rows, k=5, dim=d - 1), rel=1e-12)
    assert (hist[keys.WEIGHT_NORM] - 1).abs().max() < 1e-6
    assert hist[keys.ELR].iloc[-1] == pytest.approx(0.2, rel=1e-6)


def test_snr_with_a_reduction_pools_every_process() -> None:
    # two identical "processes": the reduction doubles every sum, so the pooled SNR is that of
    # the K gradients twice over (an independent reference: gradient_snr on the stack)
    meter = ThermoMeter(window=10, k=3, schedule=10)
    _, net, projector, _ = _loop(meter, steps=10)
    gen = torch.Generator().manual_seed(7)
    batches = [(torch.randn(32, 5, generator=gen), torch.randint(4, (32,), generator=gen))
               for _ in range(4)]
    net.train()
    grads = torch.stack([flat_gradient(_loss(net, b), projector.parameters) for b in batches])
    meter._reduce = lambda t: 2 * t
    pooled = meter.snr(net, _loss, batches)
    reference = gradient_snr(torch.cat([grads, grads]))
    assert pooled[keys.SNR] == pytest.approx(reference["snr"], rel=1e-6)
    assert pooled[keys.STOCH_GRAD_NORM] == pytest.approx(reference["mean_stoch_grad_norm"],
                                                         rel=1e-6)


def test_state_round_trip_and_pickle() -> None:
    meter = ThermoMeter(window=10, k=3, stride=3, schedule=15)
    _loop(meter, steps=45)
    fresh = ThermoMeter(window=10, k=3, stride=3, schedule=15)
    fresh.load_state_dict(meter.state_dict())
    assert fresh.history.equals(meter.history) and fresh._steps_taken == 45
    clone = pickle.loads(pickle.dumps(meter))
    assert clone.history.equals(meter.history) and clone.spec == meter.spec
    torch.testing.assert_close(clone.buffer.data, meter.buffer.data)
    _loop(clone, steps=15)  # a pickled meter sets up and measures again (a new run)
    assert clone.history["step"].tolist() == [15.0]


def test_a_reused_meter_starts_afresh_and_a_loaded_one_continues() -> None:
    meter = ThermoMeter(window=10, k=3, schedule=10)
    _loop(meter, steps=20)
    state = meter.state_dict()
    _loop(meter, steps=20)
    assert meter.history["step"].tolist() == [10.0, 20.0]
    meter.load_state_dict(state)
    meter.setup([torch.zeros(4, requires_grad=True)], max_steps=10)
    assert meter.history["step"].tolist() == [10.0, 20.0]


def test_window_spec_round_trips_through_hparams() -> None:
    spec = WindowSpec(1000, 24408, 24407, (50, 20), "auto", 1.0, "knn_graph", None, 2)
    hp = spec.as_hparams()
    assert all(k.startswith(keys.SPEC_PREFIX) for k in hp) and hp["thermo_spec/k"] == [50, 20]
    assert WindowSpec.from_hparams({**hp, "lr": 0.1}) == spec
    assert WindowSpec.from_hparams({"lr": 0.1}) is None
    assert WindowSpec.from_hparams({**hp, "thermo_spec/window": "many"}) is None


def test_a_new_estimator_is_one_class() -> None:
    class Doubled(KnnGraphEstimator):
        name = "doubled_graph"

        def entropies(self, r, ks, dim):
            return {k: 2 * v for k, v in super().entropies(r, ks, dim).items()}

    register_estimator(Doubled())
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert knn_entropy(x, k=3, estimator="doubled_graph") == pytest.approx(
        2 * knn_entropy(x, k=3), rel=1e-12)
    meter = ThermoMeter(window=10, k=3, estimator="doubled_graph", schedule=10)
    _loop(meter, steps=10)
    assert meter.spec.estimator == "doubled_graph"
    assert math.isfinite(meter.history[keys.ENTROPY].iloc[-1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"k": [3, 3]}, "`k`"), ({"window": 3, "k": 5}, "`window`"), ({"stride": 0}, "`stride`"),
     ({"estimator": "kl"}, "`estimator`"), ({"schedule": 0}, "`schedule`"),
     ({"backend": "annoy"}, "`backend`"), ({"temperature": "1"}, "`temperature`"),
     ({"memory_budget": 0}, "`memory_budget`"), ({"buffer_device": "bogus"}, "`buffer_device`")],
)
def test_bad_arguments_name_the_argument(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ThermoMeter(**kwargs)


def test_measure_before_setup_says_so() -> None:
    with pytest.raises(RuntimeError, match="before setup"):
        ThermoMeter(window=10, k=3).measure(1)


def test_auto_window_and_k_follow_the_run_length() -> None:
    from thermo_lightning.meter import _resolve_window

    assert _resolve_window("auto", "auto", 20_000) == (200, (10,))
    assert _resolve_window("auto", "auto", 1_600_000) == (1000, (50,))  # the paper's N and k
    assert _resolve_window("auto", "auto", 3_000) == (100, (5,))
    assert _resolve_window("auto", "auto", None) == (1000, (50,))
    assert _resolve_window("auto", (60,), 3_000) == (121, (60,))  # N > k always
    assert _resolve_window(40, "auto", None) == (40, (3,))
    meter = ThermoMeter(window="auto", k="auto", schedule=10)
    meter.setup([torch.zeros(3, requires_grad=True)], max_steps=30_000)
    assert (meter.spec.window, meter.spec.k) == (300, (15,))


def test_auto_stride_thins_an_ar1_walk_to_about_one_snapshot_per_correlation_time() -> None:
    # w_t = phi w_{t-1} + noise in 20 coordinates: integrated time (1 + phi) / (1 - phi) = 39,
    # correlation time about 20 steps. The meter's auto stride must end near it, with an
    # ESS above a quarter of the window.
    phi, steps = 0.95, 12_000
    w = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    meter = ThermoMeter(window=100, k=5, stride="auto", schedule=500)
    meter.setup([w], radius=None, max_steps=steps)
    gen = torch.Generator().manual_seed(0)
    for step in range(1, steps + 1):
        with torch.no_grad():
            w.mul_(phi).add_(torch.randn(20, generator=gen, dtype=torch.float64))
        meter.snapshot()
        meter.update(float(w.square().sum()))
        if meter.should_measure(step):
            meter.measure(step)
    assert 10 <= meter.stride <= 60
    last = meter.history.dropna(subset=[keys.ESS]).iloc[-1]
    assert last[keys.ESS] >= 25 and last[keys.STRIDE] == meter.stride


def test_auto_stride_is_capped_so_that_a_window_fills_in_half_the_run() -> None:
    meter = ThermoMeter(window=100, k=5, stride="auto", schedule=10)
    meter.setup([torch.zeros(3, requires_grad=True)], max_steps=4_000)
    assert meter._stride_cap == 20
