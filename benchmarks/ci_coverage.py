"""Coverage of the intervals over seeds on the known-temperature problem.

``--groups`` sweeps of ``--seeds`` seeds each (the known-temperature problem in R^33, sigma
0.3, curvatures 2..4, 5 LRs from 0.006 a factor sqrt(2) apart, ``--steps`` per run, measured
by a ``ThermoMeter`` at its defaults; run folders ``lr=...,seed=...``); each sweep's report
gives ``T_ci_lo``, ``T_ci_hi`` (the pooled Student's t over the seeds' own ``T(eta)``, 95%).
Printed: the share of interior rows whose interval holds the true temperature, against two
references: ``T_true = eta sigma^2 / 2`` (the continuous-time value the report writes) and
``T_chain`` (:meth:`LangevinSphere.chain_temperature`, the exact ``dU/dS`` of the discrete
chain, 1.3-2.6% higher at these steps), and the median width / ``T``.
The issue's target: at least 80% coverage, median width below 50%.

Usage::

    python benchmarks/ci_coverage.py                    # 10 groups x 3 seeds, ~3 min
    python benchmarks/ci_coverage.py --groups 1 --steps 2000 --lrs 3    # smoke
    python benchmarks/ci_coverage.py --construction bracket   # the paper's construction
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import torch

from thermo_lightning.models import LangevinSphere
from thermo_lightning.report import make_report

_HERE = Path(__file__).resolve().parent


def _run_fn():
    spec = importlib.util.spec_from_file_location("ktd", _HERE / "known_temperature_defaults.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--groups", type=int, default=10)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--lrs", type=int, default=5, help="number of LRs from 0.006")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--construction", choices=["convex", "bracket"], default="convex",
                   help="the report's temperature construction (default convex)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    run = _run_fn()
    dim, sigma = 33, 0.3
    problem = LangevinSphere(dim=dim, noise_std=sigma,
                             curvatures=torch.linspace(2.0, 4.0, dim - 1))
    lrs = [0.006 * math.sqrt(2) ** i for i in range(args.lrs)]
    rows = []
    for group in range(args.groups):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for seed in range(args.seeds):
                for i, lr in enumerate(lrs):
                    folder = root / f"lr={lr:.4g},seed={seed}"
                    run(problem, lr, args.steps,
                        10_000 * (group + args.first_seed) + 100 * seed + i, "auto", folder)
                    info = json.loads((folder / "run.json").read_text())
                    info["hparams"]["seed"] = seed
                    (folder / "run.json").write_text(json.dumps(info))
            result = make_report(root, root / "report", tensorboard=False,
                                 include_low_ess=True, construction=args.construction)
        t = result.temperature.iloc[1:-1]
        for _, r in t.iterrows():
            chain = problem.chain_temperature(r["lr"])
            rows.append({"group": group, "lr": r["lr"], "T/T_true": r["T"] / r["T_true"],
                         "T/T_chain": r["T"] / chain,
                         "inside": bool(r["T_ci_lo"] <= r["T_true"] <= r["T_ci_hi"]),
                         "inside_chain": bool(r["T_ci_lo"] <= chain <= r["T_ci_hi"]),
                         "width/T": (r["T_ci_hi"] - r["T_ci_lo"]) / r["T"]})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\n{args.construction} construction: coverage by the 95% interval of "
          f"{len(table)} interior rows: T_true "
          f"{table['inside'].mean():.0%}, T_chain {table['inside_chain'].mean():.0%}; "
          f"median width {table['width/T'].median():.1%} of T")
    return table


if __name__ == "__main__":
    main()
