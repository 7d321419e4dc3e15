"""ThermoCallback in Lightning runs: keys, agreement with knn_entropy, state, robustness."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from tests.helpers.trainers import quiet_trainer
from thermo_lightning import SphereProjectionStrategy, keys
from thermo_lightning.buffer import WindowMemoryError
from thermo_lightning.callback import ThermoCallback
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.functional import gradient_snr, infer_temperature, knn_entropy
from thermo_lightning.models import (
    ClassificationTask,
    LangevinSphere,
    LangevinSphereModule,
    ScaleInvariantConvNet,
)
from thermo_lightning.probes import flat_gradient

# thermo/T_local is logged only where U and S drift together (tested on its own below and
# along a real collapse in tests/test_reproduction.py)
ALL_KEYS = [keys.ENERGY, keys.ENTROPY, keys.SNR, keys.GRAD_NORM,
            keys.STOCH_GRAD_NORM, keys.ELR, keys.WEIGHT_NORM, keys.ESS, keys.WINDOW_FILL]


def _task(width: int = 8, lr: float = 0.05) -> ClassificationTask:
    torch.manual_seed(0)
    return ClassificationTask(ScaleInvariantConvNet(width, in_channels=1), lr=lr)


@pytest.fixture(scope="module")
def convnet_run(tmp_path_factory):
    """A few hundred steps of ScaleInvariantConvNet(8) on digits with CSV and TensorBoard."""
    root = tmp_path_factory.mktemp("run")
    cb = ThermoCallback(window=100, k=[10, 5], schedule=30, snr_batches=8)
    loggers = [CSVLogger(root, name="csv"), TensorBoardLogger(root, name="tb")]
    trainer = quiet_trainer(strategy="sphere_projection", max_steps=300, callbacks=[cb],
                            logger=loggers)
    trainer.fit(_task(), DigitsDataModule(batch_size=64))
    return cb, trainer, root


def test_every_key_is_logged(convnet_run) -> None:
    cb, _, _ = convnet_run
    hist = cb.history
    assert hist["step"].tolist() == list(range(30, 301, 30))
    for key in [*ALL_KEYS, keys.entropy_key(10), keys.entropy_key(5), keys.NOISE_SCALE,
                keys.STRIDE]:
        assert key in hist.columns, key
        assert hist[key].notna().any(), key
    assert hist[keys.ELR].iloc[-1] == pytest.approx(0.05)
    assert (hist[keys.WEIGHT_NORM] - 1).abs().max() < 1e-5
    full = hist[hist[keys.WINDOW_FILL] == 1.0]
    assert len(full) >= 7 and full[keys.ENTROPY].notna().all()
    assert hist.loc[hist[keys.WINDOW_FILL] < 1, keys.ENTROPY].isna().all()
    assert (full[keys.ENTROPY] == full[keys.entropy_key(10)]).all()


def test_logged_entropy_equals_knn_entropy_on_the_window(convnet_run) -> None:
    cb, trainer, _ = convnet_run
    rows, _, _ = cb.buffer.snapshots()
    d = cb.spec.num_parameters
    assert d == sum(p.numel() for p in trainer.strategy.projector.parameters)
    assert cb.spec.dim == d - 1
    s = knn_entropy(rows, k=[10, 5], dim=d - 1)
    last = cb.history.iloc[-1]
    assert last[keys.ENTROPY] == pytest.approx(s[10], rel=1e-12)
    assert last[keys.entropy_key(5)] == pytest.approx(s[5], rel=1e-12)


def test_local_temperature_is_the_trend_temperature_of_the_history(convnet_run) -> None:
    from thermo_lightning.functional import trend_temperature

    cb, _, _ = convnet_run
    hist = cb.history.dropna(subset=[keys.ENTROPY]).reset_index(drop=True)
    expected = trend_temperature(hist["step"], hist[keys.ENERGY], hist[keys.ENTROPY],
                                 half_width=cb.meter.lag)
    got = hist[keys.T_LOCAL].to_numpy(float) if keys.T_LOCAL in hist else np.full(len(hist),
                                                                                    np.nan)
    np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)
    assert np.isnan(got[-cb.meter.lag:]).all()  # the last points have no fit yet


def test_every_logger_receives_the_metrics(convnet_run) -> None:
    _, _, root = convnet_run
    csv = pd.read_csv(next((root / "csv").rglob("metrics.csv")))
    for key in ALL_KEYS:
        assert key in csv.columns, key
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(next((root / "tb").rglob("events.out.tfevents*")).parent))
    acc.Reload()
    assert {keys.ENTROPY, keys.SNR, keys.ENERGY} <= set(acc.Tags()["scalars"])
    layout = acc.Tags()["tensors"]
    assert "custom_scalars__config__" in layout  # the custom-scalars layout


def test_snr_matches_a_direct_computation() -> None:
    # the callback's SNR at a step equals gradient_snr on the same K batches at the same weights
    cb = ThermoCallback(window=20, k=3, schedule=lambda s: s == 5, snr_batches=4)
    model = _task(width=2)
    dm = DigitsDataModule(batch_size=16)
    trainer = quiet_trainer(strategy="sphere_projection", max_steps=5, callbacks=[cb])
    trainer.fit(model, dm)
    loader = dm.train_dataloader()
    cb.meter.measurements -= 1  # the batches of the measurement just made
    batches = cb._snr_batches(trainer, 4)
    params = trainer.strategy.projector.parameters
    grads = torch.stack([flat_gradient(model.loss(b)[0], params) for b in batches])
    assert cb.history[keys.SNR].iloc[-1] == pytest.approx(gradient_snr(grads)["snr"], rel=1e-5)
    assert len(loader) == 5


def test_measuring_does_not_change_training() -> None:
    def final_weights(callbacks):
        pl.seed_everything(0)
        model = _task(width=2, lr=0.3)
        trainer = quiet_trainer(strategy="sphere_projection", max_steps=40, callbacks=callbacks)
        trainer.fit(model, DigitsDataModule(batch_size=16))
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    plain = final_weights([])
    measured = final_weights([ThermoCallback(window=10, k=3, schedule=7, energy="full",
                                             snr="exact", snr_batches=3)])
    assert torch.equal(plain, measured)


def test_full_data_energy_is_the_train_mode_loss_over_the_data_set() -> None:
    cb = ThermoCallback(window=10, k=3, schedule=lambda s: s == 6, energy="full", snr=None)
    model = _task(width=2)
    dm = DigitsDataModule(batch_size=32)
    trainer = quiet_trainer(strategy="sphere_projection", max_steps=6, callbacks=[cb])
    trainer.fit(model, dm)
    model.train()
    with torch.no_grad():
        losses = [float(model.loss(b)[0]) * b[0].shape[0] for b in dm.full_batches()]
    expected = sum(losses) / 1797
    assert cb.history[keys.ENERGY].iloc[-1] == pytest.approx(expected, rel=1e-5)


def test_resume_continues_history_and_schedule(tmp_path: Path) -> None:
    def run(save_window: bool, ckpt_path=None):
        pl.seed_everything(0)
        cb = ThermoCallback(window=10, k=3, schedule=5, snr_batches=3, save_window=save_window)
        # the checkpoint callback in every run (as Lightning asks of a resume); only the
        # first run writes
        ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=20,
                               save_top_k=-1 if ckpt_path is None else 0)
        trainer = quiet_trainer(strategy="sphere_projection", max_steps=40,
                                callbacks=[cb, ckpt], enable_checkpointing=True)
        trainer.fit(_task(width=2, lr=0.3), DigitsDataModule(batch_size=16), ckpt_path=ckpt_path)
        return cb.history

    full = run(save_window=True)
    ckpt = tmp_path / "epoch=0-step=20.ckpt"
    resumed = run(save_window=True, ckpt_path=ckpt)
    pd.testing.assert_frame_equal(resumed, full, check_exact=False, rtol=1e-9)
    refilled = run(save_window=False, ckpt_path=ckpt)
    assert refilled["step"].tolist() == full["step"].tolist()  # history and schedule go on
    after = refilled[refilled["step"] > 20]
    assert after[keys.WINDOW_FILL].iloc[0] == 0.5  # the window refills after the resume ...
    assert math.isnan(after[keys.ENTROPY].iloc[0])
    assert after[keys.ENTROPY].iloc[-1] == pytest.approx(full[keys.ENTROPY].iloc[-1], rel=1e-9)


def test_state_dict_round_trip_and_state_key() -> None:
    cb = ThermoCallback(window=10, k=[3, 2], stride=2)
    cb.meter._history = [{"step": 5.0, keys.ENERGY: 1.0}]
    cb.meter._last_step = 5
    fresh = ThermoCallback(window=10, k=[3, 2], stride=2)
    fresh.load_state_dict(cb.state_dict())
    assert fresh.history.equals(cb.history) and fresh.meter._last_step == 5
    assert cb.state_key == fresh.state_key
    assert cb.state_key != ThermoCallback(window=10, k=3).state_key


def test_without_the_sphere_strategy_it_uses_raw_weights() -> None:
    cb = ThermoCallback(window=10, k=3, schedule=12, snr=None)
    model = _task(width=2)
    with pytest.warns(UserWarning, match="without SphereProjectionStrategy"):
        quiet_trainer(max_steps=12, callbacks=[cb]).fit(model, DigitsDataModule(batch_size=16))
    d = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert cb.spec.dim == cb.spec.num_parameters == d and cb.spec.radius is None
    assert math.isfinite(cb.history[keys.ENTROPY].iloc[-1])


class _PoisonSnapshots(pl.Callback):
    """Right after the optimiser steps 5 and 6 (before the callback's snapshot) a weight is set
    to NaN; it is restored at the end of the batch, so training itself is not affected."""

    def on_fit_start(self, trainer, pl_module):
        self.step = 0
        trainer.optimizers[0].register_step_post_hook(self._poison)

    def _poison(self, optimizer, args, kwargs):
        self.step += 1
        if self.step in (5, 6):
            w = optimizer.param_groups[0]["params"][0]
            self.saved = w.detach().clone()
            with torch.no_grad():
                w.view(-1)[0] = float("nan")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.step in (5, 6):
            with torch.no_grad():
                pl_module.net.features[0].weight.copy_(self.saved)


def test_non_finite_snapshots_are_skipped_with_one_warning() -> None:
    cb = ThermoCallback(window=8, k=2, schedule=lambda s: s in (12, 13), snr=None)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        quiet_trainer(max_steps=13, callbacks=[_PoisonSnapshots(), cb]).fit(
            _task(width=2, lr=1e-2), DigitsDataModule(batch_size=16))
    msgs = [str(w.message) for w in record if "NaN/Inf weights" in str(w.message)]
    assert len(msgs) == 1
    assert "steps [5, 6]" in msgs[0]
    assert cb.history[keys.SKIPPED].tolist() == [2.0, 2.0]  # each snapshot counted once
    assert math.isfinite(cb.history[keys.ENTROPY].iloc[-1])


def test_duplicate_snapshots_are_counted() -> None:
    cb = ThermoCallback(window=8, k=2, schedule=10, snr=None)
    model = _task(width=2, lr=1e-30)  # steps below float32 resolution: the weights never move
    with pytest.warns(UserWarning, match="identical twin"):
        quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=10, callbacks=[cb]).fit(
            model, DigitsDataModule(batch_size=16))
    assert cb.history[keys.DUPLICATES].iloc[-1] == 8.0


@pytest.mark.slow  # 5-9 s: the quick suite stays near 4 minutes
def test_auto_stride_thins_a_correlated_trajectory() -> None:
    # lr * lambda = 0.05-0.1: the slowest mode's integrated time is 39 steps. The default
    # stride="auto" keeps stride 1 during the pilot (the first 1000 steps), whose windows of
    # consecutive snapshots are strongly correlated, then thins to one snapshot per measured
    # correlation time and refills, and logs both.
    cb = ThermoCallback(window=40, k=3, schedule=200, snr=None)
    problem = LangevinSphere(dim=6, noise_std=0.5)
    model = LangevinSphereModule(problem, lr=0.05)
    quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=10_000, callbacks=[cb],
                  precision="64-true").fit(model)
    h = cb.history
    pilot = h[h["step"] <= 1000].dropna(subset=[keys.ESS])
    assert (pilot[keys.STRIDE] == 1).all() and (pilot[keys.ESS] < 10).all()
    tau = cb.meter.correlation_time
    assert 5 <= tau <= 1.5 * problem.correlation_time(0.05)  # the modes' mixture, below 39
    after = h[h["step"] > 1000]
    assert (after[keys.STRIDE] == math.ceil(tau)).all()
    assert (after[keys.CORRELATION_TIME] == tau).all()
    measured = after.dropna(subset=[keys.ENTROPY])
    assert len(measured) >= 20 and measured[keys.ESS].median() > 40 / 4


def test_memory_budget_error() -> None:
    cb = ThermoCallback(window=1000, k=5, memory_budget=10_000)
    with pytest.raises(WindowMemoryError, match="sketch_dim"):
        quiet_trainer(strategy="sphere_projection", max_steps=2, callbacks=[cb]).fit(
            _task(width=2), DigitsDataModule(batch_size=8))


def test_sketched_window_runs() -> None:
    cb = ThermoCallback(window=12, k=3, schedule=12, snr=None, sketch_dim=64)
    with pytest.warns(UserWarning, match="keeps a CountSketch of the 1530 weights"):
        quiet_trainer(strategy="sphere_projection", max_steps=12, callbacks=[cb]).fit(
            _task(width=2), DigitsDataModule(batch_size=8))
    assert cb.buffer.data.shape == (12, 64)
    assert math.isfinite(cb.history[keys.ENTROPY].iloc[-1])


def test_free_energy_with_a_given_temperature() -> None:
    cb = ThermoCallback(window=8, k=2, schedule=8, snr=None, temperature=0.01)
    quiet_trainer(strategy="sphere_projection", max_steps=8, callbacks=[cb]).fit(
        _task(width=2), DigitsDataModule(batch_size=8))
    last = cb.history.iloc[-1]
    assert last[keys.FREE_ENERGY] == pytest.approx(last[keys.ENERGY] - 0.01 * last[keys.ENTROPY])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"window": 50, "k": 50}, "`window`"),
        ({"window": 10, "k": [3, 12]}, "`window`"),
        ({"stride": 0}, "`stride`"),
        ({"stride": "fast"}, "`stride`"),
        ({"estimator": "kl"}, "`estimator`"),
        ({"snr_batches": 1}, "`snr_batches`"),
        ({"energy": "batch"}, "`energy`"),
        ({"snr": "paper"}, "`snr`"),
        ({"backend": "annoy"}, "`backend`"),
        ({"schedule": "linear"}, "`schedule`"),
        ({"sketch_dim": 0}, "`sketch_dim`"),
        ({"sketch_dim": 8, "shard": True}, "not both"),
        ({"temperature": -1.0}, "`temperature`"),
        ({"k": 0}, "`k`"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ThermoCallback(**kwargs)


def test_full_energy_needs_a_data_source() -> None:
    class Bare(ClassificationTask):
        def train_dataloader(self):
            return DigitsDataModule(batch_size=8, num_steps=4).train_dataloader()

    cb = ThermoCallback(window=4, k=2, schedule=2, energy="full", snr=None)
    model = Bare(ScaleInvariantConvNet(2, in_channels=1))
    with pytest.raises(ValueError, match="full_data"):
        quiet_trainer(strategy="sphere_projection", max_steps=2, callbacks=[cb]).fit(model)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["shard", "full"])
def test_ddp_windows_give_the_single_process_entropy(tmp_path: Path, mode: str) -> None:
    script = Path(__file__).resolve().parents[1] / "helpers" / "ddp_thermo_script.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path), mode], capture_output=True,
                         text=True, timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    if mode == "shard":
        assert r0["col_stop"] == r1["col_start"] and r0["window"].shape[1] < r1["col_stop"]
        window = torch.cat([r0["window"], r1["window"]], dim=1)
    else:
        assert torch.equal(r0["window"], r1["window"])
        window = r0["window"]
    expected = knn_entropy(window, k=5, dim=r0["dim"])  # one process, the same trajectory
    for r in (r0, r1):
        assert r["history"][keys.ENTROPY][-1] == pytest.approx(expected, rel=1e-8)
    # the SNR pools both ranks' batch gradients before its one ratio
    pooled = gradient_snr(torch.cat([r0["snr_grads"], r1["snr_grads"]]))
    for r in (r0, r1):
        assert r["history"][keys.SNR][-1] == pytest.approx(pooled["snr"], rel=1e-5)
        assert r["history"][keys.STOCH_GRAD_NORM][-1] == pytest.approx(
            pooled["mean_stoch_grad_norm"], rel=1e-5)
    # the configurational terms pool them too: ||grad_S U||^2 from all 8 tangent gradients,
    # one Laplacian (the ranks' probe sums reduced) on both ranks
    w = r0["weights"].double()
    g = torch.cat([r0["snr_grads"], r1["snr_grads"]]).double()
    g = g - (g @ w)[:, None] * w / (w @ w)
    k = len(g)
    grad_sq = float((g.sum(0) @ g.sum(0) - (g * g).sum()) / (k * (k - 1)))
    for r in (r0, r1):
        assert r["history"][keys.CONF_GRAD_SQ][-1] == pytest.approx(grad_sq, rel=1e-4)
    lap = [r["history"][keys.CONF_LAPLACIAN][-1] for r in (r0, r1)]
    assert math.isfinite(lap[0]) and lap[0] == pytest.approx(lap[1], rel=1e-9)


@pytest.mark.slow
def test_known_temperature_through_lightning() -> None:
    # SGD with Gaussian noise on a sphere in R^21 (T = lr sigma^2 / 2), trained by Lightning
    # with the sphere strategy; the callback thins each run to one snapshot per correlation
    # time and measures U and S once a 200-snapshot window is full. Simulating the same set-up
    # over 12 seeds (LangevinSphere.simulate) gave interior T / T_true within 0.98-1.07.
    problem = LangevinSphere(dim=21, noise_std=0.5, curvatures=[1.0] * 20)
    lrs = [0.12 / math.sqrt(2) ** i for i in range(4, -1, -1)]
    energies, entropies = [], []
    for lr in lrs:
        stride = math.ceil(problem.correlation_time(lr))
        steps = (200 + 2) * stride  # two correlation times of burn-in, then the window
        cb = ThermoCallback(window=200, stride=stride, k=10, snr=None,
                            schedule=lambda s, last=steps: s == last)
        model = LangevinSphereModule(problem, lr=lr, seed=1)
        quiet_trainer(strategy=SphereProjectionStrategy(verify=False), max_steps=steps,
                      callbacks=[cb], precision="64-true").fit(model)
        last = cb.history.iloc[-1]
        assert last[keys.ESS] > 60  # thinned: ESS ~ N/2 (stride 1 would give about N/tau ~ 3)
        energies.append(last[keys.ENERGY])
        entropies.append(last[keys.ENTROPY])
    df = infer_temperature(lrs, energies, entropies, smoothing=None)
    ratio = df["T"].to_numpy() / np.array([problem.temperature(lr) for lr in lrs])
    np.testing.assert_allclose(ratio[1:-1], 1.0, atol=0.15)


def _fit_recording(cb: ThermoCallback, model: pl.LightningModule, steps: int,
                   **kwargs) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=steps, callbacks=[cb],
                      **kwargs).fit(model, *([DigitsDataModule(batch_size=64)]
                                             if isinstance(model, ClassificationTask) else []))
    return [str(w.message) for w in caught]


def test_a_net_that_does_not_learn_is_warned_about() -> None:
    # lr 5 on the unit sphere: the weights jump around the sphere and the loss stays at the
    # level of random weights (measured here: about 4.5)
    cb = ThermoCallback(window=10, k=3, schedule=20, snr=None)
    messages = _fit_recording(cb, _task(width=2, lr=5.0), 200)
    assert cb.random_loss is not None and cb.random_loss > math.log(10)
    assert cb.history[keys.ENERGY].iloc[-1] >= 0.8 * cb.random_loss
    assert any("has not learned" in m for m in messages)


def test_a_learning_net_and_the_langevin_problem_are_not_warned_about() -> None:
    cb = ThermoCallback(window=10, k=3, schedule=20, snr=None)
    messages = _fit_recording(cb, _task(width=4, lr=0.01), 200)
    assert cb.history[keys.ENERGY].iloc[-1] < 0.5 * cb.random_loss
    assert not any("has not learned" in m for m in messages)
    # near equilibrium from the start: U stays at about (n - 1) T / 2, far below random weights
    problem = LangevinSphere(dim=6, noise_std=0.5)
    cb = ThermoCallback(window=10, k=3, schedule=20, snr=None)
    messages = _fit_recording(cb, LangevinSphereModule(problem, lr=0.02), 200,
                              precision="64-true")
    # (random points of the sphere: 0.625 on average, plus the batch's noise term)
    assert cb.random_loss > 5 * cb.history[keys.ENERGY].iloc[-1]
    assert not any("has not learned" in m for m in messages)


def test_the_default_and_the_paper_protocol_measure_one_run_side_by_side() -> None:
    problem = LangevinSphere(dim=6, noise_std=0.5)
    auto = ThermoCallback(window=20, k=3, schedule=100, snr=None)
    paper = ThermoCallback.paper(window=50, k=5, schedule=100, snr=None)
    quiet_trainer(strategy=SphereProjectionStrategy(), max_steps=2000, callbacks=[auto, paper],
                  precision="64-true").fit(LangevinSphereModule(problem, lr=0.05))
    assert auto.state_key != paper.state_key
    assert auto.meter.stride > 1 and paper.meter.stride == 1
    a, p = (cb.history.set_index("step") for cb in (auto, paper))
    # the same trajectory: the same weight norm and energy window at a step both measured ...
    assert a.loc[2000.0, keys.WEIGHT_NORM] == p.loc[2000.0, keys.WEIGHT_NORM]
    # ... and the paper's consecutive iterates are far more correlated
    assert p.loc[2000.0, keys.ESS] < a.loc[2000.0, keys.ESS]


def test_the_callback_and_the_meter_share_their_defaults() -> None:
    # the callback hands these arguments to its ThermoMeter: one default each, never two
    import inspect

    from thermo_lightning.meter import ThermoMeter

    meter = inspect.signature(ThermoMeter).parameters
    callback = inspect.signature(ThermoCallback).parameters
    shared = sorted(set(meter) & set(callback))
    assert len(shared) >= 18, shared
    differ = {n: (callback[n].default, meter[n].default) for n in shared
              if callback[n].default != meter[n].default}
    assert differ == {}


@pytest.mark.parametrize("lr", [0.02, 0.05, 0.1])
def test_the_random_weights_level_is_the_energy_of_random_points(lr: float) -> None:
    # the Langevin module's loss carries the step's noise (sigma <xi, w>); U is its "energy"
    # entry, the noise-free L(w). The level random weights give must be that of U:
    # E_uniform[L] = sum(lambda) / (2 n) on the sphere in R^n (4 draws of the noisy loss gave
    # 0.10-0.12 for 0.67-0.69, and "has not learned" fired for runs that had)
    problem = LangevinSphere(dim=8, noise_std=1.5)
    exact = float(problem.curvatures.sum()) / (2 * problem.dim)
    cb = ThermoCallback(window=10, k=3, schedule=20, snr=None)
    messages = _fit_recording(cb, LangevinSphereModule(problem, lr=lr), 100,
                              precision="64-true")
    assert cb.random_loss == pytest.approx(exact, rel=0.2)  # 16 random points (0.3% here)
    assert cb.history[keys.ENERGY].iloc[-1] < 0.8 * cb.random_loss  # U: 0.04-0.41
    assert not any("has not learned" in m for m in messages)
