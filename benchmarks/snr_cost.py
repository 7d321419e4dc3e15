"""The gradient SNR at one logging point: our default against the paper's exact recipe.

A ScaleInvariantConvNet on digits is trained for ``--train-steps`` steps on the sphere; at its
final weights (BatchNorm in train mode):

- ``exact``: the paper's recipe: the full-data gradient (one pass) plus ``--paper-batches``
  (1000) mini-batch gradients, ``SNR = ||g|| / sqrt(mean_b ||g_b - g||^2)``;
- ``unbiased K``: what the callback's default ``snr="auto"`` does on digits (its 1797 images
  take more than K / 2 batches): ``K`` (16) mini-batch gradients, the pairwise unbiased
  estimate of ``||g||^2`` and the spread of the batch gradients.

The unbiased estimate is random: it is repeated ``--repeats`` times with fresh batches and the
median and the 10-90% range of its ratio to the exact value are reported, with the time of
one estimate against the time of the exact recipe, measured in the same run.

Then the low-SNR regime: the under-parameterised toy problem (float64, batch size 1) at lr
0.01 and 0.1, at ``--toy-points`` points of the second half of a 50,000-step run. At each
point the analytic SNR (the three objects are the whole data set) against the callback's
default ``snr="auto"`` (here: the exact full gradient, one batch, plus K / 2 = 8 mini-batches)
and the previous default ``"unbiased"`` (K = 16 mini-batches): mean over the points as the
paper averages, the share of zeros and NaNs, and the median time of one estimate.

Usage::

    python benchmarks/snr_cost.py                                  # ~2 min on 2 CPU cores
    python benchmarks/snr_cost.py --train-steps 20 --paper-batches 40 --repeats 3 \\
        --toy-points 10                                                      # smoke
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch

from thermo_lightning import SphereProjectionStrategy
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet
from thermo_lightning.probes import full_gradient_and_loss, snr_from_batches

# isort: off
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts' shared helpers
from _common import digits_batches
# isort: on


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--train-steps", type=int, default=500)
    p.add_argument("--paper-batches", type=int, default=1000)
    p.add_argument("--k", type=int, nargs="+", default=[16, 64])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--toy-points", type=int, default=200)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    torch.manual_seed(0)
    model = ClassificationTask(ScaleInvariantConvNet(args.width, in_channels=1), lr=0.05)
    dm = DigitsDataModule(batch_size=128)
    pl.Trainer(accelerator="cpu", strategy=SphereProjectionStrategy(verify=False),
               max_steps=args.train_steps, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False).fit(model, dm)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]

    def loss_fn(module, batch):
        return module.loss(batch)[0]

    t0 = time.perf_counter()
    full_grad, _ = full_gradient_and_loss(model, loss_fn, dm.full_batches(), params)
    exact = snr_from_batches(model, loss_fn, digits_batches(dm, args.paper_batches, seed=10**6),
                             params, full_grad)
    t_exact = time.perf_counter() - t0

    rows = [{"method": f"exact (full pass + {args.paper_batches} batches)",
             "seconds": t_exact, "cost_ratio": 1.0, "snr": exact["snr"],
             "snr_ratio_median": 1.0, "snr_ratio_p10": 1.0, "snr_ratio_p90": 1.0}]
    for k in args.k:
        values, times = [], []
        for r in range(args.repeats):
            batches = digits_batches(dm, k, seed=r)
            t0 = time.perf_counter()
            est = snr_from_batches(model, loss_fn, batches, params)
            times.append(time.perf_counter() - t0)
            values.append(est["snr"] / exact["snr"])
        rows.append({"method": f"unbiased K={k}", "seconds": statistics.median(times),
                     "cost_ratio": t_exact / statistics.median(times),
                     "snr": exact["snr"] * statistics.median(values),
                     "snr_ratio_median": statistics.median(values),
                     "snr_ratio_p10": float(np.percentile(values, 10)),
                     "snr_ratio_p90": float(np.percentile(values, 90))})
    table = pd.DataFrame(rows)
    print(f"ScaleInvariantConvNet({args.width}) on digits after {args.train_steps} steps; "
          f"exact SNR {exact['snr']:.4g}; {args.repeats} repeats of each estimate")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    toy = _toy_table(args.toy_points)
    print("\nunder-parameterised toy, second half of 50,000 steps (low SNR)")
    print(toy.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return table


def _toy_table(points: int, k: int = 16) -> pd.DataFrame:
    from thermo_lightning.models import ToySphereModule
    from thermo_lightning.models.toy import simulate_toy, toy_gradient_stats
    from thermo_lightning.probes import full_gradient_and_loss

    lrs = [0.01, 0.1]
    traj = simulate_toy("up", lrs, steps=50_000, record_every=50, seed=0)
    late = np.flatnonzero(traj.steps.numpy() >= 25_000)
    late = late[np.linspace(0, len(late) - 1, min(points, len(late))).round().astype(int)]
    model = ToySphereModule("up")
    params = [model.x]
    gen = torch.Generator().manual_seed(1)

    def loss_fn(module, batch):
        return module(batch[0]).mean()

    def one(kind: str) -> tuple[float, float]:
        draws = [(torch.randint(0, 3, (1,), generator=gen),)
                 for _ in range(k // 2 if kind == "auto" else k)]
        t0 = time.perf_counter()
        full = None
        if kind == "auto":
            full, _ = full_gradient_and_loss(model, loss_fn, model.full_batches(), params)
        value = snr_from_batches(model, loss_fn, draws, params, full)["snr"]
        return value, time.perf_counter() - t0

    rows = []
    for i, lr in enumerate(lrs):
        exact, got, secs = [], {"auto": [], "unbiased": []}, {"auto": [], "unbiased": []}
        for j in late:
            with torch.no_grad():
                model.x.copy_(traj.x[i, j])
            exact.append(float(toy_gradient_stats("up", traj.x[i, j])["snr"]))
            for kind in got:
                value, sec = one(kind)
                got[kind].append(value)
                secs[kind].append(sec)
        for kind, values in got.items():
            v = np.asarray(values)
            rows.append({"lr": lr, "method": "auto (default)" if kind == "auto"
                         else f"unbiased K={k}", "exact_mean": float(np.mean(exact)),
                         "logged_mean": float(np.nanmean(v)),
                         "ratio": float(np.nanmean(v) / np.mean(exact)),
                         "zeros": float(np.mean(v == 0)), "nans": float(np.mean(np.isnan(v))),
                         "ms": 1e3 * statistics.median(secs[kind])})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
