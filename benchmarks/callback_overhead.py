"""What measuring costs: strategy + snapshots per step, entropy and SNR per logging point.

Side by side in one run, on ScaleInvariantConvNet(width) trained on digits (batch 128):

1. per-step cost of the strategy's projection and the callback's snapshot and bookkeeping,
   timed inside the same training run (timers around the hooks) and divided by the rest of
   the step; and a paired comparison in one run (blocks of 20 steps alternately with and
   without projection + snapshots, median step times); plus, for reference,
   whole runs of plain / sphere / sphere+snapshots interleaved (medians over repeats; on a
   noisy machine these scatter by +-20%);
2. the cost of one logging point with a full window: entropy (k-NN graph, k = 50, plus the
   ESS) and the SNR (K = 16 extra mini-batches);
3. optionally (``--full-run-steps``) a whole run at the callback's defaults against a plain
   run of the same length, timed directly;
4. the extrapolation to the paper's 1.6M-step run with 201 logging points.

Usage::

    python benchmarks/callback_overhead.py                        # ~2 min on 2 CPU cores
    python benchmarks/callback_overhead.py --full-run-steps 20000 # + a direct 20k-step run
    python benchmarks/callback_overhead.py --steps 30 --repeats 1 --window 20   # smoke run
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import lightning.pytorch as pl
import pandas as pd
import torch

from thermo_lightning import SphereProjectionStrategy, ThermoCallback
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.functional.entropy import knn_entropy_estimate
from thermo_lightning.functional.stationarity import effective_sample_size, half_window_chi2
from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet
from thermo_lightning.probes import default_loss_fn


class _Clock(pl.Callback):
    """Wall time between the first and the last training batch (no set-up, no teardown)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.start


def _fit(config: str, steps: int, width: int, window: int, thermo: ThermoCallback | None = None):
    torch.manual_seed(0)
    model = ClassificationTask(ScaleInvariantConvNet(width, in_channels=1), lr=0.05)
    clock = _Clock()
    callbacks: list[pl.Callback] = [clock]
    strategy: object = "auto"
    if config != "plain":
        strategy = SphereProjectionStrategy(verify=False)
    if config == "sphere+snapshots":
        thermo = thermo or ThermoCallback(window=window, k=min(50, window - 1),
                                          schedule=lambda s: False, snr=None)
    if thermo is not None:
        callbacks.append(thermo)
    trainer = pl.Trainer(
        accelerator="cpu", strategy=strategy, max_steps=steps, callbacks=callbacks, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model, DigitsDataModule(batch_size=128))
    return clock.seconds, trainer, model, thermo


class _Timed:
    """Wrap ``obj.name`` with a perf_counter accumulator."""

    def __init__(self, obj: object, name: str) -> None:
        self.seconds = 0.0
        self.calls = 0
        inner = getattr(obj, name)

        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1

        setattr(obj, name, wrapper)


def _hook_costs(steps: int, width: int, window: int) -> dict[str, float]:
    """Seconds per step spent in the projection, the snapshot and the callback's per-batch
    bookkeeping, and the rest of the step, all from one run."""
    torch.manual_seed(0)
    model = ClassificationTask(ScaleInvariantConvNet(width, in_channels=1), lr=0.05)
    strategy = SphereProjectionStrategy(verify=False)
    thermo = ThermoCallback(window=window, k=min(50, window - 1), schedule=lambda s: False,
                            snr=None)
    clock = _Clock()
    timers = [_Timed(strategy.projector, "project"), _Timed(thermo.meter, "snapshot"),
              _Timed(thermo, "on_train_batch_end")]
    trainer = pl.Trainer(
        accelerator="cpu", strategy=strategy, max_steps=steps, callbacks=[clock, thermo],
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DigitsDataModule(batch_size=128))
    projection, snapshot, bookkeeping = (t.seconds / steps for t in timers)
    total = clock.seconds / steps
    return {"projection": projection, "snapshot": snapshot, "bookkeeping": bookkeeping,
            "rest_of_step": total - projection - snapshot - bookkeeping}


class _Toggle(pl.Callback):
    """Alternates blocks of steps with the projection and snapshots switched on and off within
    one run, and records each step's wall time: a paired, side-by-side comparison that also
    catches indirect costs (caches) and is immune to the machine's drift."""

    def __init__(self, projector, thermo: ThermoCallback, block: int) -> None:
        self.block = block
        self.on: list[float] = []
        self.off: list[float] = []
        self.enabled = True
        self._last: float | None = None
        project, on_step, batch_end = (projector.project, thermo.meter.snapshot,
                                       thermo.on_train_batch_end)
        projector.project = lambda *a, **k: project(*a, **k) if self.enabled else None
        thermo.meter.snapshot = lambda *a, **k: on_step(*a, **k) if self.enabled else None
        thermo.on_train_batch_end = (
            lambda *a, **k: batch_end(*a, **k) if self.enabled else None)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = time.perf_counter()
        if self._last is not None and batch_idx % self.block != 0:  # skip block boundaries
            (self.on if self.enabled else self.off).append(now - self._last)
        self.enabled = (batch_idx // self.block) % 2 == 0
        self._last = now


def _paired(steps: int, width: int, window: int, block: int = 20) -> tuple[float, float]:
    """Median step time with and without projection + snapshots, alternating in one run."""
    torch.manual_seed(0)
    model = ClassificationTask(ScaleInvariantConvNet(width, in_channels=1), lr=0.05)
    strategy = SphereProjectionStrategy(verify=False)
    thermo = ThermoCallback(window=window, k=min(50, window - 1), schedule=lambda s: False,
                            snr=None)
    toggle = _Toggle(strategy.projector, thermo, block)
    trainer = pl.Trainer(
        accelerator="cpu", strategy=strategy, max_steps=steps, callbacks=[toggle, thermo],
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DigitsDataModule(batch_size=128))
    return statistics.median(toggle.on), statistics.median(toggle.off)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500, help="steps per timed run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--snr-batches", type=int, default=16)
    p.add_argument("--full-run-steps", type=int, default=0,
                   help="also time a whole run at the defaults (e.g. 20000)")
    p.add_argument("--paper-steps", type=int, default=1_600_000)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(torch.get_num_threads())

    costs = [_hook_costs(args.steps, args.width, args.window) for _ in range(args.repeats)]
    cost = {k: statistics.median(c[k] for c in costs) for k in costs[0]}
    rows = []
    for name in ("projection", "snapshot", "bookkeeping"):
        rows.append({"measure": f"in-run: {name} per step", "median_ms": cost[name] * 1e3,
                     "ratio_to_plain": cost[name] / cost["rest_of_step"]})
    hooks = cost["projection"] + cost["snapshot"] + cost["bookkeeping"]
    rows.append({"measure": "in-run: strategy + snapshot per step (overhead)",
                 "median_ms": hooks * 1e3, "ratio_to_plain": 1 + hooks / cost["rest_of_step"]})
    on, off = _paired(max(args.steps, 200), args.width, args.window)
    rows.append({"measure": "paired in one run: step without projection/snapshots",
                 "median_ms": off * 1e3, "ratio_to_plain": 1.0})
    rows.append({"measure": "paired in one run: step with projection + snapshots",
                 "median_ms": on * 1e3, "ratio_to_plain": on / off})

    configs = ["plain", "sphere", "sphere+snapshots"]
    times: dict[str, list[float]] = {c: [] for c in configs}
    for _ in range(args.repeats):
        for c in configs:
            seconds, *_ = _fit(c, args.steps, args.width, args.window)
            times[c].append(seconds / args.steps)
    per_step = {c: statistics.median(v) for c, v in times.items()}
    rows += [{"measure": f"whole runs: {c}", "median_ms": per_step[c] * 1e3,
              "ratio_to_plain": per_step[c] / per_step["plain"]} for c in configs]

    # one logging point with a full window
    fill = max(args.window, args.k + 1)
    _, trainer, model, thermo = _fit("sphere+snapshots", fill, args.width, args.window)
    assert thermo is not None and thermo.buffer is not None
    rows_w, slots, _ = thermo.buffer.snapshots()
    assert thermo.spec is not None
    d = thermo.spec.dim
    ent, ess, snr = [], [], []
    for _ in range(max(args.repeats, 3)):
        t0 = time.perf_counter()
        knn_entropy_estimate(rows_w, args.k, dim=d, warn=False)
        ent.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        proj = thermo.buffer.projections(rows_w, slots, thermo.meter.n_directions,
                                         thermo.meter.seed)
        effective_sample_size(proj, pooled=True)
        half_window_chi2(proj)
        ess.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        thermo.meter.snr(model, default_loss_fn(model),
                         thermo._snr_batches(trainer, args.snr_batches))
        snr.append(time.perf_counter() - t0)
    point = {"entropy": statistics.median(ent), "ess and halves": statistics.median(ess),
             "snr": statistics.median(snr)}
    for name, sec in point.items():
        rows.append({"measure": f"logging point: {name} (N={rows_w.shape[0]}, D={d + 1})",
                     "median_ms": sec * 1e3,
                     "ratio_to_plain": sec / cost["rest_of_step"]})
    per_point = sum(point.values())

    # extrapolation: the in-run per-step overhead plus 201 logging points
    step_over = hooks / cost["rest_of_step"]
    for steps, name in ((20_000, "20k-step digits run"), (args.paper_steps, "paper's run")):
        total = step_over + 201 * per_point / (steps * cost["rest_of_step"])
        rows.append({"measure": f"extrapolated overhead, {name} (201 points)",
                     "median_ms": float("nan"), "ratio_to_plain": 1 + total})

    if args.full_run_steps:
        plain, *_ = _fit("plain", args.full_run_steps, args.width, args.window)
        cb = ThermoCallback(window=args.window, k=args.k, snr_batches=args.snr_batches)
        measured, *_ = _fit("defaults", args.full_run_steps, args.width, args.window, thermo=cb)
        rows.append({"measure": f"measured whole run, {args.full_run_steps} steps, defaults",
                     "median_ms": measured * 1e3 / args.full_run_steps,
                     "ratio_to_plain": measured / plain})
    table = pd.DataFrame(rows)
    print(f"ScaleInvariantConvNet({args.width}) on digits, batch 128, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; medians of {args.repeats}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return table


if __name__ == "__main__":
    main()
