"""How well the pipeline recovers the known temperature T = eta sigma^2 / 2, over seeds.

Runs the Langevin-sphere sweep of tests/models/test_langevin.py (7 LRs a factor sqrt(2)
apart, 250 chains x 8 samples thinned to one per correlation time) for several seeds and
prints, per estimator, the range of T / T_true over the interior LRs; then the same with
windows of consecutive iterates (stride 1) and their effective sample size.

Usage::

    python benchmarks/known_temperature_accuracy.py              # 6 seeds, ~40 s
    python benchmarks/known_temperature_accuracy.py --seeds 1 --chains 40 --samples 4
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd

from thermo_lightning.functional import (
    infer_temperature,
    knn_entropy,
    window_effective_sample_size,
)
from thermo_lightning.models import LangevinSphere


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--chains", type=int, default=250)
    p.add_argument("--samples", type=int, default=8)
    args = p.parse_args(argv)

    problem = LangevinSphere(dim=6, noise_std=0.5)
    lrs = [0.03 / math.sqrt(2) ** i for i in range(6, -1, -1)]
    t_true = np.array([problem.temperature(lr) for lr in lrs])
    strides = [math.ceil(problem.correlation_time(lr)) for lr in lrs]
    rows = []
    for seed in range(args.seeds):
        for thin in (True, False):
            if thin:
                out = problem.simulate(lrs, n_samples=args.samples, stride=strides,
                                       n_chains=args.chains, seed=seed)
            else:
                out = problem.simulate(lrs, n_samples=args.samples * args.chains, stride=1,
                                       seed=seed)
            u = out.energies.mean(dim=(1, 2)).numpy()
            for estimator, k in (("knn_graph", 10), ("kozachenko_leonenko", 5)):
                s = [knn_entropy(w, k=k, estimator=estimator, dim=5) for w in out.windows()]
                t = infer_temperature(lrs, u, s, smoothing=None)["T"].to_numpy()
                r = t[1:-1] / t_true[1:-1]
                rows.append({"seed": seed, "windows": "thinned" if thin else "stride 1",
                             "estimator": estimator, "min T/T_true": np.nanmin(r),
                             "max T/T_true": np.nanmax(r),
                             "ESS/N": np.nan if thin else np.median(
                                 [window_effective_sample_size(w) / w.shape[0]
                                  for w in out.windows()])})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    summary = table.groupby(["windows", "estimator"]).agg(
        {"min T/T_true": "min", "max T/T_true": "max", "ESS/N": "median"})
    print("\nover all seeds:")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    return table


if __name__ == "__main__":
    main()
