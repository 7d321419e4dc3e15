"""Accuracy of the Kozachenko-Leonenko estimator against the analytic Gaussian entropy.

For each dimension d and neighbour count k, draws `--seeds` Gaussian samples of size N with a
random covariance and prints the bias, standard deviation and largest error of
``knn_entropy(..., estimator="kozachenko_leonenko")`` against ``0.5 ln det(2 pi e Sigma)``.
This measurement sets the tolerance of tests/functional/test_entropy.py.

Usage::

    python benchmarks/kl_gaussian_accuracy.py                  # N=2000, 30 seeds, ~10 s
    python benchmarks/kl_gaussian_accuracy.py --seeds 3 --n 300   # smoke run
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from thermo_lightning.functional import gaussian_entropy, knn_entropy


def measure(dims: list[int], ks: list[int], n: int, seeds: int) -> pd.DataFrame:
    rows = []
    for d in dims:
        errors = {k: [] for k in ks}
        for seed in range(seeds):
            g = torch.Generator().manual_seed(seed)
            a = torch.randn(d, d, generator=g, dtype=torch.float64)
            cov = a @ a.T / d + 0.5 * torch.eye(d, dtype=torch.float64)
            x = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
            est = knn_entropy(x, k=ks, estimator="kozachenko_leonenko")
            truth = gaussian_entropy(cov)
            for k in ks:
                errors[k].append(est[k] - truth)
        for k in ks:
            e = np.asarray(errors[k])
            rows.append({"d": d, "k": k, "bias": e.mean(), "std": e.std(ddof=1),
                         "max_abs": np.abs(e).max(), "bias+4std": abs(e.mean()) + 4 * e.std(ddof=1),
                         "test_tol (k=1)": 0.17 + 0.03 * d})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--dims", type=int, nargs="+", default=[1, 2, 3, 5, 8, 10])
    p.add_argument("--ks", type=int, nargs="+", default=[1, 5])
    args = p.parse_args(argv)
    table = measure(args.dims, args.ks, args.n, args.seeds)
    print(f"KL estimator vs analytic Gaussian entropy, N={args.n}, {args.seeds} seeds")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return table


if __name__ == "__main__":
    main()
