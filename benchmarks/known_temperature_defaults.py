"""T / T_true at the default sampling protocol and at the paper's, over seeds.

The known-temperature problem (SGD with Gaussian gradient noise on a quadratic over a sphere,
``T = lr sigma^2 / 2``) is trained in a plain loop measured by a ``ThermoMeter`` (the
measurement ``ThermoCallback`` runs; the loop is the Lightning module's update, without the
trainer's overhead), each learning rate's history is written as a run folder, and the report
infers ``T(eta)``. Prints, per protocol and seed, ``T / T_true`` at every learning rate (the
end rows are one-sided chords) and the range over the interior rows.

Usage::

    python benchmarks/known_temperature_defaults.py                  # 4 seeds, ~2 min
    python benchmarks/known_temperature_defaults.py --seeds 2 --dim 11 --sigma 0.5 \\
        --curvature 1 --lrs 0.04 0.0566 0.08 0.113 0.16 --protocols auto
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from thermo_lightning.meter import PAPER_PROTOCOL, ThermoMeter
from thermo_lightning.models import LangevinSphere
from thermo_lightning.report import make_report


def run(problem: LangevinSphere, lr: float, steps: int, seed: int, protocol: str,
        folder: Path) -> None:
    """One run of ``steps`` SGD steps at ``lr``, measured, written to ``folder``."""
    gen = torch.Generator().manual_seed(seed)
    w = problem.initial_points(torch.tensor([lr]), 1, gen)[0, 0].clone()
    settings = dict(PAPER_PROTOCOL) if protocol == "paper" else {}
    meter = ThermoMeter(**settings)
    meter.setup([w], max_steps=steps)
    lam = problem.curvatures
    for step in range(1, steps + 1):
        lam_w = lam * w
        grad = lam_w - (w * lam_w).sum() * w
        xi = torch.randn(w.shape, generator=gen, dtype=torch.float64)
        grad.add_(xi - (xi * w).sum() * w, alpha=problem.noise_std)
        w.sub_(lr * grad)
        w.div_(w.norm())
        meter.snapshot()
        meter.update(problem.loss(w))
        if meter.should_measure(step):
            meter.measure(step)
    h = meter.history
    folder.mkdir(parents=True)
    h.to_csv(folder / "history.csv", index=False)
    assert meter.spec is not None
    (folder / "run.json").write_text(json.dumps({
        "status": "done", "global_step": steps, "last_logged_step": int(h["step"].iloc[-1]),
        "hparams": {"lr": lr, "model": "langevin", "noise_std": problem.noise_std},
        "window_spec": meter.spec.as_hparams()}))


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=33)
    p.add_argument("--sigma", type=float, default=0.3)
    p.add_argument("--curvature", type=float, default=2.0,
                   help="curvatures evenly spaced from this to twice this")
    p.add_argument("--lrs", type=float, nargs="+",
                   default=[0.006 * math.sqrt(2) ** i for i in range(5)])
    p.add_argument("--protocols", nargs="+", default=["auto", "paper"],
                   choices=["auto", "paper"])
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    problem = LangevinSphere(dim=args.dim, noise_std=args.sigma, curvatures=torch.linspace(
        args.curvature, 2 * args.curvature, args.dim - 1))
    rows = []
    for protocol in args.protocols:
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp)
                for i, lr in enumerate(args.lrs):
                    run(problem, lr, args.steps, 1000 * seed + i, protocol, root / f"lr={lr:.4g}")
                rep = make_report(root, root / "report", tensorboard=False, include_low_ess=True)
            t = rep.temperature
            ratio = (t["T"] / t["T_true"]).to_numpy()
            row = {"protocol": protocol, "seed": seed}
            row.update({f"lr={lr:.3g}": r for lr, r in zip(t["lr"], ratio, strict=True)})
            row["interior min"] = np.nanmin(ratio[1:-1])
            row["interior max"] = np.nanmax(ratio[1:-1])
            rows.append(row)
            print(pd.DataFrame([row]).to_string(index=False, float_format=lambda v: f"{v:.3f}"),
                  flush=True)
    table = pd.DataFrame(rows)
    print("\nT / T_true (columns: learning rates; the first and last rows are one-sided):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\ninterior rows over all seeds:")
    print(table.groupby("protocol").agg({"interior min": "min", "interior max": "max"})
          .to_string(float_format=lambda v: f"{v:.3f}"))
    return table


if __name__ == "__main__":
    main()
