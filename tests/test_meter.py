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
        losses.append(float(loss.detach()))
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
    # the rule itself: tests/test_spec.py
    meter = ThermoMeter(schedule=10)  # window and k "auto" by default
    meter.setup([torch.zeros(3, requires_grad=True)], max_steps=30_000)
    assert (meter.spec.window, meter.spec.k) == (150, (7,))


def _ar1_run(meter: ThermoMeter, steps: int, phi: float = 0.95, seed: int = 0,
             start: int = 1, w: torch.Tensor | None = None,
             gen: torch.Generator | None = None) -> torch.Tensor:
    w = torch.zeros(20, dtype=torch.float64, requires_grad=True) if w is None else w
    gen = gen or torch.Generator().manual_seed(seed)
    for step in range(start, steps + 1):
        with torch.no_grad():
            w.mul_(phi).add_(torch.randn(20, generator=gen, dtype=torch.float64))
        meter.snapshot()
        meter.update(float(w.detach().square().sum()))
        if meter.should_measure(step):
            meter.measure(step)
    return w


def test_auto_stride_thins_an_ar1_walk_to_about_one_snapshot_per_correlation_time() -> None:
    # w_t = phi w_{t-1} + noise in 20 coordinates: integrated time (1 + phi) / (1 - phi) = 39
    # steps. The pilot must measure it and the windows at that stride hold about N / 2
    # effective samples.
    steps = 30_000
    w = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    meter = ThermoMeter(window=100, k=5, stride="auto", schedule=500)
    meter.setup([w], radius=None, max_steps=steps)
    _ar1_run(meter, steps, phi=0.95, w=w)
    # the pilot (the first 3000 steps) measures tau (sampling error ~20% from its 2250
    # values, up to 1.4x; tests/test_pilot.py checks the median over seeds); the stride is
    # ceil(tau), once
    assert 0.6 * 39 <= meter.correlation_time <= 1.75 * 39
    assert meter.stride == math.ceil(meter.correlation_time)
    rows = meter.history.dropna(subset=[keys.ESS])
    after = rows[rows["step"] > 3000]
    assert (after[keys.STRIDE] == meter.stride).all() and (after[keys.LOW_ESS] == 0).all()
    assert after[keys.ESS].median() >= 40 and (after[keys.CORRELATION_TIME]
                                                == meter.correlation_time).all()


def test_auto_stride_is_capped_so_that_a_window_fills_in_half_the_run() -> None:
    meter = ThermoMeter(window=100, k=5, stride="auto", schedule=10)
    meter.setup([torch.zeros(3, requires_grad=True)], max_steps=4_000)
    assert meter.pilot is not None and meter.pilot.length == 400  # a tenth of the run
    assert meter._stride_cap == 18  # 100 snapshots fill within half of the 3600 steps left


@pytest.mark.parametrize(("tau", "warned"), [(18.4, False), (30.0, True)])
def test_a_cap_just_below_the_correlation_time_is_not_warned_about(tau: float,
                                                                    warned: bool) -> None:
    # the cap is 18 here: a stride of 18 for tau = 18.4 (wanted 19) thins as well as 19
    said: list[str] = []
    meter = ThermoMeter(window=100, k=5, stride="auto", schedule=10, warn=said.append)
    meter.setup([torch.zeros(3, requires_grad=True)], max_steps=4_000)
    assert meter.pilot is not None and meter._stride_cap == 18
    meter.pilot.correlation_time = lambda: tau  # type: ignore[method-assign]
    meter._choose_stride()
    assert meter.stride == 18
    assert any("capped at 18" in m for m in said) is warned
    if warned:  # issue 30: the warning says the run length and the window that would do
        # 400 + 30 * 100 / 0.5 steps; 0.5 * 3600 // 30 = 60 snapshots fill in this run
        (message,) = [m for m in said if "capped at 18" in m]
        assert "Train for at least 6400 steps at this window, or pass `window=60`" in message


def test_auto_stride_cap_warns_when_the_correlation_time_is_too_long() -> None:
    # tau = 39 steps, but 100 snapshots must fill within half of the 1800 steps after the pilot
    said: list[str] = []
    meter = ThermoMeter(window=100, k=5, schedule=100, warn=said.append, inform=said.append)
    w = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    meter.setup([w], radius=None, max_steps=2000)
    _ar1_run(meter, 2000, w=w)
    assert meter.stride == 9 < meter.correlation_time
    assert any("capped at 9" in m for m in said)
    assert any(m.startswith("ThermoMeter: correlation time") and "stride 9" in m for m in said)


def test_a_pilot_interrupted_by_a_resume_continues_where_it_stopped() -> None:
    # the same AR(1) stream, once straight through and once with a state_dict round trip in
    # the middle of the pilot: the same correlation time and stride
    steps = 6000
    straight = ThermoMeter(window=50, k=3, schedule=200)
    w1 = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    straight.setup([w1], radius=None, max_steps=steps)
    _ar1_run(straight, steps, w=w1)

    first = ThermoMeter(window=50, k=3, schedule=200)
    w2 = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    first.setup([w2], radius=None, max_steps=steps)
    gen = torch.Generator().manual_seed(0)
    _ar1_run(first, 300, w=w2, gen=gen)  # the pilot lasts 600 steps
    state = pickle.loads(pickle.dumps(first.state_dict()))
    assert "pilot" in state and not state["stride_chosen"]
    resumed = ThermoMeter(window=50, k=3, schedule=200)
    resumed.load_state_dict(state)
    resumed.setup([w2], radius=None, max_steps=steps)
    _ar1_run(resumed, steps, w=w2, gen=gen, start=301)
    assert resumed.correlation_time == pytest.approx(straight.correlation_time)
    assert resumed.stride == straight.stride > 1


def test_low_ess_warns_on_two_low_windows_in_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(esses: list[float]) -> tuple[list[str], list[float]]:
        said: list[str] = []
        meter = ThermoMeter(window=20, k=3, stride=1, schedule=1, warn=said.append)
        w = torch.zeros(4, dtype=torch.float64, requires_grad=True)
        meter.setup([w], radius=None, max_steps=100)
        values = iter(esses)
        monkeypatch.setattr("thermo_lightning.meter.effective_sample_size",
                            lambda *args, **kwargs: next(values))
        gen = torch.Generator().manual_seed(0)
        for step in range(1, 20 + len(esses)):
            with torch.no_grad():
                w.copy_(torch.randn(4, generator=gen, dtype=torch.float64))
            meter.snapshot()
            meter.update(0.0)
            meter.measure(step)
        return said, meter.history[keys.LOW_ESS].dropna().tolist()

    said, flags = run([4.0, 12.0, 4.0, 12.0, 4.0])  # single dips: flagged, not warned
    assert flags == [1.0, 0.0, 1.0, 0.0, 1.0] and not said
    said, flags = run([12.0, 4.0, 4.0, 12.0])
    assert flags == [0.0, 1.0, 1.0, 0.0] and len(said) == 1
    assert "effective sample size of 4 of 20" in said[0]


def test_local_temperature_never_spans_a_stride_change() -> None:
    # the pilot's stride-1 windows are far more correlated than the later ones (S jumps by
    # orders of magnitude at the change); a T_local fitted across the jump is meaningless
    # (it came out negative). U falls steadily, so T_local is logged wherever it is allowed.
    steps, lag = 6000, 2
    w = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    meter = ThermoMeter(window=20, k=3, stride="auto", schedule=40, lag=lag)
    meter.setup([w], radius=None, max_steps=steps)
    gen = torch.Generator().manual_seed(0)
    for step in range(1, steps + 1):
        with torch.no_grad():
            w.mul_(0.95).add_(torch.randn(20, generator=gen, dtype=torch.float64))
        meter.snapshot()
        meter.update(10.0 / step)
        if meter.should_measure(step):
            meter.measure(step)
    hist = meter.history
    assert hist[keys.STRIDE].nunique() == 2  # the pilot's stride 1, then ceil(tau)
    rows = hist.dropna(subset=[keys.ENERGY, keys.ENTROPY]).reset_index(drop=True)
    with_t = rows.index[rows[keys.T_LOCAL].notna()] if keys.T_LOCAL in rows else []
    assert len(with_t) > 0
    for i in with_t:
        stencil = rows.iloc[i - lag: i + lag + 1]
        assert stencil[keys.STRIDE].nunique() == 1, stencil[["step", keys.STRIDE]]


@pytest.mark.parametrize("window", [6, 20])
def test_the_halves_statistic_is_logged_for_windows_of_eight_snapshots_or_more(window: int
                                                                                ) -> None:
    meter = ThermoMeter(window=window, k=2, stride=1, schedule=1)
    w = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    meter.setup([w], radius=None, max_steps=60)
    gen = torch.Generator().manual_seed(0)
    for step in range(1, 40):
        with torch.no_grad():
            w.copy_(torch.randn(4, generator=gen, dtype=torch.float64))
        meter.snapshot()
        meter.update(0.0)
        meter.measure(step)
    h = meter.history
    if window < 8:  # halves of 4 at least: nothing, rather than NaN in the loggers
        assert keys.HALVES not in h or h[keys.HALVES].isna().all()
    else:  # i.i.d. snapshots: about 1
        values = h[keys.HALVES].dropna()
        assert len(values) == 40 - window and 0.3 < values.mean() < 2.0
