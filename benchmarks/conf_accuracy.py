"""T_conf from one run of the known-temperature problem, against the chain's temperature.

For each set-up (dimension, gradient noise ``sigma``, curvature spread) and learning rate,
``--seeds`` single runs of SGD with Gaussian gradient noise on the sphere (the
known-temperature problem, :class:`~thermo_lightning.models.LangevinSphere`; the mini-batch
loss ``L(w) + sigma <xi, w/|w|>`` of :class:`~thermo_lightning.models.LangevinSphereModule`)
are measured as the callback does with ``conf_temperature=True``: at a logging point every
``--every`` steps, the terms from ``--k`` mini-batches
(:func:`~thermo_lightning.probes.configurational_terms_from_batches`), and ``T_conf`` with its
standard error over the later half of the run
(:func:`~thermo_lightning.functional.configurational_temperature`). Prints, per set-up and
learning rate, the median and range of ``T_conf / T_chain`` over the seeds and the share of
95% intervals that cover ``T_chain`` (the exact reference,
:meth:`~thermo_lightning.models.LangevinSphere.chain_temperature`).

Usage::

    python benchmarks/conf_accuracy.py                          # ~5 min on 2 CPU cores
    python benchmarks/conf_accuracy.py --seeds 2 --steps 400 --every 40 --k 4     # smoke
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from thermo_lightning.functional import configurational_temperature
from thermo_lightning.models import LangevinSphere, LangevinSphereModule
from thermo_lightning.probes import configurational_terms_from_batches
from thermo_lightning.schedules import DenseTail, LogSpacedSchedule

#: (dimension, sigma, curvatures from .. to)
SETUPS = [(21, 0.5, 1.0, 2.0), (8, 0.5, 1.0, 2.0), (21, 1.0, 1.0, 2.0), (21, 0.5, 1.0, 10.0)]


def one_run(problem: LangevinSphere, lr: float, steps: int, every: int, k: int,
            seed: int, schedule: str = "every") -> tuple[float, float]:
    """``(T_conf, its standard error)`` of one run, its terms every ``every`` steps
    (``schedule="every"``), at the 201 log-spaced points (``"log"``), or where the callback
    measures them at its defaults (``"callback"``: those and 100 more over the later half)."""
    points = (None if schedule == "every" else LogSpacedSchedule(steps) if schedule == "log"
              else DenseTail(LogSpacedSchedule(steps), steps))
    module = LangevinSphereModule(problem, lr=lr, init_seed=seed)
    gen = torch.Generator().manual_seed(10_000 + seed)
    lam = problem.curvatures
    w = module.w.data
    grad_sq, laplacian = [], []
    for step in range(1, steps + 1):
        grad = lam * w - (w * lam * w).sum() * w
        xi = torch.randn(w.shape, generator=gen, dtype=torch.float64)
        grad.add_(xi - (xi * w).sum() * w, alpha=problem.noise_std)
        w.sub_(lr * grad).div_(w.norm())
        due = points(step) if points is not None else step % every == 0
        if due and step >= steps // 2:
            batches = [(torch.randn(problem.dim, generator=gen, dtype=torch.float64),)
                       for _ in range(k)]
            terms = configurational_terms_from_batches(
                module, lambda m, b: m.loss(b), batches, [[module.w]], generator=gen)
            grad_sq.append(terms.grad_sq)
            laplacian.append(terms.laplacian)
    result = configurational_temperature(grad_sq, laplacian)
    return result.T, result.se


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--lrs", type=float, nargs="+", default=[0.02, 0.04, 0.08])
    p.add_argument("--schedule", choices=["every", "log", "callback"], default="every",
                   help="points every --every steps, the 201 log-spaced ones, or the "
                        "callback's at its defaults (those and 100 over the later half)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--setups", type=int, nargs="+", default=list(range(len(SETUPS))),
                   help="indices into SETUPS")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for dim, sigma, lo, hi in [SETUPS[i] for i in args.setups]:
        problem = LangevinSphere(dim=dim, noise_std=sigma,
                                 curvatures=torch.linspace(lo, hi, dim - 1))
        for lr in args.lrs:
            if lr * hi >= 0.5:  # keep the chain near its continuous limit
                continue
            truth = problem.chain_temperature(lr)
            ratios, covered = [], []
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                t, se = one_run(problem, lr, args.steps, args.every, args.k, seed,
                                schedule=args.schedule)
                ratios.append(t / truth)
                covered.append(abs(t - truth) <= 1.96 * se)
            rows.append({"dim": dim, "sigma": sigma, "curvatures": f"{lo:g}..{hi:g}", "lr": lr,
                         "median": float(np.median(ratios)), "min": float(np.min(ratios)),
                         "max": float(np.max(ratios)), "coverage": float(np.mean(covered))})
            print(pd.DataFrame([rows[-1]]).to_string(index=False, header=len(rows) == 1,
                                                     float_format=lambda v: f"{v:.3f}"),
                  flush=True)
    table = pd.DataFrame(rows)
    where = {"log": "the log schedule's points", "every": f"a point every {args.every}",
             "callback": "the callback's points (log, and 100 more)"}[args.schedule]
    print(f"\nT_conf / T_chain over {args.seeds} seeds from {args.first_seed} ({args.steps} "
          f"steps, {where} in the later half, K = {args.k}); coverage of the 95% interval:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return table


if __name__ == "__main__":
    main()
