"""How far the k-NN entropy's differences are off near the uniform sphere.

``T = dU/dS`` is made of entropy differences between adjacent learning rates, so what matters
is the estimator's difference between two laws against the true one. Von Mises-Fisher laws
on ``S^d`` (``p = d + 1`` coordinates) have exact entropies (scipy), and their concentration
``kappa`` runs from nearly uniform to tightly concentrated. For each pair of adjacent
concentrations (a factor ``--step`` apart) the script prints the ratio of the estimated
difference (the meter's defaults: the graph-length estimator, ``k = N / 20``) to the true
one, against the ``uniform_gap = (S_uniform - S) / d`` of the pair's law nearer uniform (the
report's distance from the uniform sphere; ``saturated`` below 0.15): 1 is unbiased, above 1
reads ``T`` low by as much.

Usage::

    python benchmarks/near_uniform_bias.py                      # ~2 min on 2 CPU cores
    python benchmarks/near_uniform_bias.py --p 31 --n 1000 --seeds 3
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
from scipy.stats import vonmises_fisher

from thermo_lightning.functional import knn_entropy, uniform_sphere_knn_entropy


def measure(p: int, n: int, seeds: int, kappas: np.ndarray) -> pd.DataFrame:
    """One row per adjacent pair of ``kappas``: the gaps and the ratio's mean and spread."""
    d = p - 1
    k = max(3, min(50, n // 20))
    mu = np.zeros(p)
    mu[0] = 1.0
    s_uniform = float(uniform_sphere_knn_entropy(n, p, k, dim=d))
    truth = np.array([vonmises_fisher(mu, kap).entropy() for kap in kappas])
    est = np.empty((seeds, len(kappas)))
    for s in range(seeds):
        for i, kap in enumerate(kappas):
            x = vonmises_fisher(mu, kap).rvs(n, random_state=1000 * s + i)
            est[s, i] = knn_entropy(torch.tensor(x), k, dim=d)
    ratio = np.diff(est, axis=1) / np.diff(truth)
    gap = (s_uniform - est.mean(axis=0)) / d
    return pd.DataFrame({"p": p, "N": n, "k": k, "kappa_lo": kappas[:-1], "kappa_hi": kappas[1:],
                         "gap_lo": gap[:-1], "gap_hi": gap[1:],
                         "ratio": ratio.mean(axis=0), "ratio_sd": ratio.std(axis=0)})


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=int, nargs="+", default=[31, 51, 201],
                        help="coordinates (the sphere S^(p-1))")
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000], help="window sizes N")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--step", type=float, default=1.5, help="ratio of adjacent kappas")
    args = parser.parse_args(argv)
    frames = []
    for p in args.p:
        for n in args.n:
            count = int(np.ceil(np.log(8 * p / 2.0) / np.log(args.step))) + 1
            kappas = 2.0 * args.step ** np.arange(count)  # 2 .. ~8p: uniform to concentrated
            frames.append(measure(p, n, args.seeds, kappas))
    table = pd.concat(frames, ignore_index=True)
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    for n in args.n:
        for lo, hi in ((0.0, 0.05), (0.05, 0.15), (0.15, 0.3), (0.3, np.inf)):
            band = table[(table["N"] == n) & (table["gap_lo"] >= lo) & (table["gap_lo"] < hi)]
            if len(band):
                print(f"N={n}, uniform_gap {lo:g}-{hi:g} (the pair's law nearer uniform): "
                      f"ratio {band['ratio'].min():.3f}-{band['ratio'].max():.3f}, median "
                      f"{band['ratio'].median():.3f} over {len(band)} pairs")
    return table


if __name__ == "__main__":
    main()
