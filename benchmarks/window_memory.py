"""Memory of the trajectory window in each mode, and the sketch's error on entropy differences.

Bytes per snapshot (float32): exact ``4 D``; sharded over ``W`` ranks ``4 D / W`` per rank;
CountSketch ``4 m``; in pinned host memory the same as exact, off the GPU. Allocated buffers
are measured (``TrajectoryBuffer.nbytes``) for the paper's networks. The sketch's error is
measured on pairs of independent random-walk windows (steps 1 and 1.5) in ``D`` dimensions:
the relative error of the entropy difference from sketched windows against the exact one.

Usage::

    python benchmarks/window_memory.py                      # ~1 min
    python benchmarks/window_memory.py --d 2000 --seeds 1   # smoke run
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from thermo_lightning.buffer import TrajectoryBuffer
from thermo_lightning.functional import knn_entropy
from thermo_lightning.paper import PAPER_SETUPS


def _walk(step: float, n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (step * torch.randn(n, d, generator=g)).cumsum(dim=0)


def main(argv: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--d", type=int, default=5000, help="dimension of the sketch test")
    p.add_argument("--n", type=int, default=200, help="points of the sketch test")
    p.add_argument("--sketch-dims", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args(argv)

    rows = []
    for s in PAPER_SETUPS:
        if s.regime != "op" and s.model == "resnet18":
            continue
        d = s.num_parameters
        small = TrajectoryBuffer(d, window=2, memory_budget=2**62)  # measure 2 rows, scale
        per_row = small.nbytes // 2
        rows.append({"network": f"{s.model}-{s.width}", "D": d,
                     "exact": per_row * args.window / 2**20,
                     "shard_2": TrajectoryBuffer(d, window=2, shard=(0, 2),
                                                 memory_budget=2**62).nbytes // 2
                     * args.window / 2**20,
                     **{f"sketch_{m}": TrajectoryBuffer(d, window=2, sketch_dim=m).nbytes // 2
                        * args.window / 2**20 for m in args.sketch_dims}})
    memory = pd.DataFrame(rows).drop_duplicates("D")
    print(f"window of {args.window} float32 snapshots, MiB (per rank for shard_2)")
    print(memory.to_string(index=False, float_format=lambda v: f"{v:.1f}"))

    errs = []
    for m in args.sketch_dims:
        rel = []
        for seed in range(args.seeds):
            a = _walk(1.0, args.n, args.d, seed)
            b = _walk(1.5, args.n, args.d, seed + 100)
            exact = (knn_entropy(b, k=5, dim=args.d - 1) - knn_entropy(a, k=5, dim=args.d - 1))
            sk = []
            for w in (a, b):
                buf = TrajectoryBuffer(args.d, window=args.n, sketch_dim=m, sketch_seed=seed)
                for row in w:
                    buf.add([row], 0)
                sk.append(knn_entropy(buf.data, k=5, dim=args.d - 1))
            rel.append(abs((sk[1] - sk[0]) / exact - 1))
        errs.append({"sketch_dim": m, "median_rel_err": float(np.median(rel)),
                     "max_rel_err": float(np.max(rel)), "seeds": args.seeds})
    errors = pd.DataFrame(errs)
    print(f"\nsketch error on entropy differences (D={args.d}, N={args.n}, k=5)")
    print(errors.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return memory, errors


if __name__ == "__main__":
    main()
