"""How the cost of each measured quantity grows with the window size N and the dimension D.

Times (median of ``--repeats``) of the k-NN entropy (torch backend, float32, centred), the
effective sample size (window projections + autocorrelation) and one snapshot, over a grid of
``N`` and ``D``, with the fitted log-log slopes; a log-log figure is saved. Expected: entropy
``~ N^2 D`` (GEMM), ESS ``~ N D``, snapshot ``~ D``.

Usage::

    python benchmarks/scaling.py                           # ~3 min on 2 CPU cores
    python benchmarks/scaling.py --n 100 200 --d 1000 4000 --repeats 1    # smoke run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from thermo_lightning.buffer import TrajectoryBuffer
from thermo_lightning.functional import knn_entropy
from thermo_lightning.functional.stationarity import (
    integrated_autocorrelation_time,
    raw_window_projections,
)

# isort: off
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts' shared helpers
from _common import median_seconds
# isort: on


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[250, 500, 1000, 2000])
    p.add_argument("--d", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="scaling.png")
    args = p.parse_args(argv)
    rows = []
    for d in args.d:
        params = [torch.randn(d)]
        buf = TrajectoryBuffer(d, window=8, memory_budget=2**62)
        snap = median_seconds(lambda b=buf, ps=params: b.add(ps, 0), args.repeats * 50,
                              warmup=True)
        for n in args.n:
            w = torch.randn(n, d)
            ent = median_seconds(lambda w=w, n=n, d=d: knn_entropy(w, k=min(50, n - 1),
                                                                     dim=d - 1),
                                 args.repeats, warmup=True)

            def ess(w: torch.Tensor = w) -> None:
                proj = raw_window_projections(w, 8)
                integrated_autocorrelation_time(proj.T.numpy())

            rows.append({"N": n, "D": d, "entropy_s": ent,
                         "ess_s": median_seconds(ess, args.repeats, warmup=True),
                         "snapshot_s": snap})
    table = pd.DataFrame(rows)
    logn, logd = np.log(table["N"]), np.log(table["D"])
    design = np.column_stack([np.ones(len(table)), logn, logd])
    print(f"cost against N and D, medians of {args.repeats}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    for col in ("entropy_s", "ess_s"):
        coef, *_ = np.linalg.lstsq(design, np.log(table[col]), rcond=None)
        print(f"{col}: ~ N^{coef[1]:.2f} D^{coef[2]:.2f}")
    snap = table.drop_duplicates("D")
    slope = np.polyfit(np.log(snap["D"]), np.log(snap["snapshot_s"]), 1)[0]
    print(f"snapshot_s: ~ D^{slope:.2f}")
    fig = Figure(figsize=(9, 3.5))
    axes = fig.subplots(1, 2)
    for d, grp in table.groupby("D"):
        axes[0].plot(grp["N"], grp["entropy_s"], marker="o", label=f"entropy, D={d:g}")
        axes[0].plot(grp["N"], grp["ess_s"], marker="x", ls="--", label=f"ESS, D={d:g}")
    axes[0].set_xlabel("N (window)")
    axes[1].plot(snap["D"], snap["snapshot_s"], marker="o")
    axes[1].set_xlabel("D (parameters)")
    axes[1].set_title("one snapshot")
    for ax, ticks in ((axes[0], sorted(set(args.n))), (axes[1], sorted(set(args.d)))):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("seconds")
        ax.set_xticks(ticks, labels=[f"{t:g}" for t in ticks])  # the measured sizes only
        ax.xaxis.set_minor_formatter(NullFormatter())
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"figure: {args.out}")
    return table


if __name__ == "__main__":
    main()
