"""The configurational temperature's cost at one logging point, against the SNR's and a step.

A ScaleInvariantConvNet on digits is trained for ``--train-steps`` steps on the sphere; at its
final weights, measured in this one run (median of ``--repeats``):

- ``step``: one training step (forward, backward, SGD step) on a batch of ``--batch-size``;
- ``snr K``: the callback's unbiased SNR from ``K`` mini-batch gradients;
- ``conf K``: the configurational temperature's terms from the same ``K`` mini-batches
  (gradients with their graph kept, one Hutchinson Hessian-vector probe each);
- ``conf+snr K, one pass``: both, the SNR taken from the terms' own gradients (what the
  callback does when both are on with the unbiased SNR), against ``snr K + conf K``.

It prints each time and its ratio to a step, and the overhead of ``conf`` at the callback's
defaults over a run of ``--run-steps`` steps: the paper's 201 log-spaced logging points and
the 100 the meter adds over the later half with ``conf_temperature``,
``points * t_conf / (run_steps * t_step)``.

Usage::

    python benchmarks/conf_cost.py                                   # ~1 min on 2 CPU cores
    python benchmarks/conf_cost.py --train-steps 5 --repeats 2 --k 2 --width 2     # smoke
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import lightning.pytorch as pl
import pandas as pd
import torch

from thermo_lightning import SphereProjectionStrategy
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.functional.snr import GradientSNRAccumulator
from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet
from thermo_lightning.probes import configurational_terms_from_batches, snr_from_batches
from thermo_lightning.scale_invariance import find_scale_invariant_parameters
from thermo_lightning.schedules import DenseTail, LogSpacedSchedule

# isort: off
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts' shared helpers
from _common import digits_batches, median_seconds
# isort: on



def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--train-steps", type=int, default=200)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--run-steps", type=int, default=13_000)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    torch.manual_seed(0)
    model = ClassificationTask(ScaleInvariantConvNet(args.width, in_channels=1), lr=0.05)
    dm = DigitsDataModule(batch_size=args.batch_size)
    pl.Trainer(accelerator="cpu", strategy=SphereProjectionStrategy(verify=False),
               max_steps=args.train_steps, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False).fit(model, dm)
    model.train()
    si = [p for _, p in find_scale_invariant_parameters(model)]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.0)  # lr 0: the weights stay where they are

    def loss_fn(module, batch):
        return module.loss(batch)[0]

    batches = digits_batches(dm, args.k, seed=1)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        optimizer.zero_grad()
        loss_fn(model, batches[0]).backward()
        optimizer.step()

    timed = {
        "step": median_seconds(step, args.repeats),
        f"snr K={args.k}": median_seconds(lambda: snr_from_batches(model, loss_fn, batches, si),
                                        args.repeats),
        f"conf K={args.k}": median_seconds(lambda: configurational_terms_from_batches(
            model, loss_fn, batches, [si], generator=gen), args.repeats),
        # what the callback runs when both are on: the SNR from conf's own gradients
        f"conf+snr K={args.k}, one pass": median_seconds(
            lambda: configurational_terms_from_batches(
                model, loss_fn, batches, [si], generator=gen,
                snr=GradientSNRAccumulator(None, sync_on_compute=False)), args.repeats),
    }
    table = pd.DataFrame([{"measurement": name, "seconds": t, "steps_worth": t / timed["step"]}
                          for name, t in timed.items()])
    conf = timed[f"conf K={args.k}"]
    schedule = DenseTail(LogSpacedSchedule(args.run_steps), args.run_steps)
    points = sum(schedule(s) for s in range(args.run_steps + 1))
    overhead = points * conf / (args.run_steps * timed["step"])
    print(f"ScaleInvariantConvNet({args.width}) on digits, batch {args.batch_size}, "
          f"{sum(p.numel() for p in si)} SI weights; median of {args.repeats}; "
          f"torch threads {torch.get_num_threads()}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    both = timed[f"snr K={args.k}"] + conf
    print(f"SNR and conf in one pass: {timed[f'conf+snr K={args.k}, one pass'] / both:.2f} of "
          "the two passes' time")
    print(f"conf at the callback's defaults ({points} points over {args.run_steps} steps): "
          f"{100 * overhead:.1f}% of the training time")
    return table


if __name__ == "__main__":
    main()
