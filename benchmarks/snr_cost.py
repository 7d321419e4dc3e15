"""The gradient SNR at one logging point: our default against the paper's exact recipe.

A ScaleInvariantConvNet on digits is trained for ``--train-steps`` steps on the sphere; at its
final weights (BatchNorm in train mode):

- ``exact``: the paper's recipe: the full-data gradient (one pass) plus ``--paper-batches``
  (1000) mini-batch gradients, ``SNR = ||g|| / sqrt(mean_b ||g_b - g||^2)``;
- ``unbiased K``: the callback's default: ``K`` (16) mini-batch gradients, the pairwise
  unbiased estimate of ``||g||^2`` and the spread of the batch gradients.

The unbiased estimate is random: it is repeated ``--repeats`` times with fresh batches and the
median and the 10-90% range of its ratio to the exact value are reported, with the time of
one estimate against the time of the exact recipe, measured in the same run.

Usage::

    python benchmarks/snr_cost.py                                  # ~2 min on 2 CPU cores
    python benchmarks/snr_cost.py --train-steps 20 --paper-batches 40 --repeats 3   # smoke
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch

from thermo_lightning import SphereProjectionStrategy
from thermo_lightning.data import DigitsDataModule, batch_indices
from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet
from thermo_lightning.probes import full_gradient_and_loss, snr_from_batches


def _batches(dm: DigitsDataModule, count: int, seed: int) -> list:
    out = []
    for j in range(count):
        idx = batch_indices(dm.images.shape[0], dm.batch_size, seed=seed, index=j)
        out.append((dm.images[idx], dm.labels[idx]))
    return out


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--train-steps", type=int, default=500)
    p.add_argument("--paper-batches", type=int, default=1000)
    p.add_argument("--k", type=int, nargs="+", default=[16, 64])
    p.add_argument("--repeats", type=int, default=20)
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
    exact = snr_from_batches(model, loss_fn, _batches(dm, args.paper_batches, seed=10**6),
                             params, full_grad)
    t_exact = time.perf_counter() - t0

    rows = [{"method": f"exact (full pass + {args.paper_batches} batches)",
             "seconds": t_exact, "cost_ratio": 1.0, "snr": exact["snr"],
             "snr_ratio_median": 1.0, "snr_ratio_p10": 1.0, "snr_ratio_p90": 1.0}]
    for k in args.k:
        values, times = [], []
        for r in range(args.repeats):
            batches = _batches(dm, k, seed=r)
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
    return table


if __name__ == "__main__":
    main()
