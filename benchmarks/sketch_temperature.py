"""The sketch's error on the temperature: entropy differences between adjacent learning rates.

``T`` comes from chords ``dU / dS`` between neighbouring LRs, so what a sketch must keep is the
entropy difference of two windows whose spread differs by a few tens of percent, not the
entropy itself. Windows here are ``N`` independent points (a well-thinned window) of the
known-temperature problem's stationary law in ``D`` dimensions: Gaussian with variance
``T / lambda_i`` along curvature ``lambda_i`` (``T = lr sigma^2 / 2``), curvatures evenly
spaced from 1 to ``kappa`` (``kappa = 1``: isotropic; ``kappa = 100``: anisotropic), or
``harmonic``: curvatures 1, 2, ..., D (the variance ``1 / i`` of a few directions dominates,
as in trained networks). Adjacent
LRs are a factor sqrt(2) apart, so the exact entropy difference is ``(D / 2) ln sqrt(2)``.

For each sketch size ``m`` and seed, both windows are stored in a ``TrajectoryBuffer`` with
``sketch_dim=m`` (the same sketch for both, as in one sweep) and the ratio
``dS(exact windows) / dS(sketched windows)`` is ``T(sketched) / T(exact)`` of that chord.
Printed: its median and 10-90% range over seeds, and the worst seed; a Gaussian projection
(``m x D`` dense, which a buffer cannot afford per step at large ``D``) is shown as the
reference for what a better projection would give.

Usage::

    python benchmarks/sketch_temperature.py                 # ~3 min on 2 CPU cores
    python benchmarks/sketch_temperature.py --seeds 2 --d 2000 --n 200 --sketch-dims 256
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
import torch

from thermo_lightning.buffer import TrajectoryBuffer
from thermo_lightning.functional import knn_entropy


def _window(n: int, d: int, temperature: float, kappa: float, gen: torch.Generator,
            spectrum: str = "linear") -> torch.Tensor:
    if spectrum == "linear":  # curvatures evenly spaced from 1 to kappa
        lam = torch.linspace(1.0, kappa, d)
    else:  # "harmonic": curvatures 1, 2, ..., D: a few directions hold most of the spread
        lam = torch.arange(1, d + 1, dtype=torch.float32)
    return torch.randn(n, d, generator=gen) * (temperature / lam).sqrt()


def _sketched(window: torch.Tensor, m: int, seed: int) -> torch.Tensor:
    buf = TrajectoryBuffer(window.shape[1], window=window.shape[0], sketch_dim=m,
                           sketch_seed=seed)
    for i, row in enumerate(window):
        buf.add([row], i)
    return buf.data.clone()


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, default=20_000)
    p.add_argument("--n", type=int, nargs="+", default=[200, 1000])
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--kappa", type=float, nargs="+", default=[1.0, 100.0])
    p.add_argument("--spectra", nargs="+", default=["linear", "harmonic"],
                   choices=["linear", "harmonic"],
                   help="linear: curvatures 1..kappa; harmonic: 1, 2, ..., D (kappa unused)")
    p.add_argument("--sketch-dims", type=int, nargs="+", default=[256, 1024, 4096])
    p.add_argument("--seeds", type=int, default=6)
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    d, k = args.d, args.k
    rows = []
    cases = [(spectrum, kappa) for spectrum in args.spectra
             for kappa in (args.kappa if spectrum == "linear" else [float(d)])]
    for n in args.n:
        for spectrum, kappa in cases:
            ratios: dict[tuple[str, int], list[float]] = {}
            exact_vs_truth = []
            for seed in range(args.seeds):
                gen = torch.Generator().manual_seed(seed)
                lo = _window(n, d, 1.0, kappa, gen, spectrum)
                hi = _window(n, d, math.sqrt(2.0), kappa, gen, spectrum)
                ds_exact = knn_entropy(hi, k=k, dim=d) - knn_entropy(lo, k=k, dim=d)
                exact_vs_truth.append(ds_exact / (d / 2 * math.log(math.sqrt(2.0))))
                for m in args.sketch_dims:
                    ds = (knn_entropy(_sketched(hi, m, seed), k=k, dim=d)
                          - knn_entropy(_sketched(lo, m, seed), k=k, dim=d))
                    ratios.setdefault(("countsketch", m), []).append(ds_exact / ds)
                    proj = torch.randn(d, m, generator=torch.Generator().manual_seed(
                        10_000 + seed)) / math.sqrt(m)
                    ds_g = (knn_entropy(hi @ proj, k=k, dim=d)
                            - knn_entropy(lo @ proj, k=k, dim=d))
                    ratios.setdefault(("gaussian", m), []).append(ds_exact / ds_g)
            for (kind, m), values in ratios.items():
                v = np.asarray(values)
                rows.append({"N": n, "spectrum": spectrum, "kappa": kappa,
                             "projection": kind, "m": m,
                             "T_ratio_median": float(np.median(v)),
                             "T_ratio_p10": float(np.percentile(v, 10)),
                             "T_ratio_p90": float(np.percentile(v, 90)),
                             "worst_rel_err": float(np.max(np.abs(v - 1))),
                             "exact_dS_vs_truth": float(np.median(exact_vs_truth))})
            print(pd.DataFrame(rows[-len(ratios):]).to_string(
                index=False, float_format=lambda v: f"{v:.3f}"), flush=True)
    table = pd.DataFrame(rows)
    print(f"\nT(sketched) / T(exact windows) for adjacent LRs (factor sqrt 2), D = {d}, "
          f"k = {k}, {args.seeds} seeds")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return table


if __name__ == "__main__":
    main()
