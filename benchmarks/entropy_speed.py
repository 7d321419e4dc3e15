"""Entropy of a window: our backends against the reference code's way and scipy's cKDTree.

For each window size ``(N, D)`` a trajectory-like window is built in float32 (unit-norm
iterates about 1e-4 apart, as SGD on the sphere produces) and its k-NN graph entropy
(``k = 50``, ``dim = D - 1``) is computed by

- ``torch``: this package's exact chunked GEMM on the centred window, float32 (CPU here);
- ``faiss``: this package's FAISS backend (float32, centred);
- ``reference``: what the authors' code does: the float32 window copied to float64,
  ``torch.cdist`` on the CPU, then a sort of every row;
- ``ckdtree``: scipy's cKDTree (exact; hopeless in high dimension, so only for small D).

Each measurement runs in a fresh subprocess (so its peak memory can be read), the
``--repeats`` rounds interleaved across the methods; the table gives the median time, the
ratio to the reference, the peak RSS growth and the relative difference of S from the
reference.

``--baseline PATH`` adds ``torch@PATH``: the same torch backend imported from another
checkout (e.g. a ``git worktree`` of an older commit), measured in the same interleaved
rounds. ``--split`` prints, for the ``torch`` method, where its time goes (the scale pass,
the squared distances: centring, norms and the Gram matrix, the top-k) next to the machine's
float32 GEMM rate and the time the Gram matrix's lower triangle needs at that rate: the limit.

Usage::

    python benchmarks/entropy_speed.py                        # N=1000, D=1e4 and 1e5
    python benchmarks/entropy_speed.py --sizes 1000x100000 200x20 --split \
        --baseline /tmp/baa3724                               # against an older checkout
    python benchmarks/entropy_speed.py --sizes 1000x10000 1000x100000 4000x100000 1000x1000000
    python benchmarks/entropy_speed.py --sizes 200x2000 --repeats 1        # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

import pandas as pd

_WORKER = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np, torch
    method, n, d, k, repeats, seed = sys.argv[1], *map(int, sys.argv[2:7])
    method = method.split("@")[0]  # torch@PATH: the torch backend of PATH (on sys.path)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(d, generator=g)
    x = x / x.norm()
    w = torch.empty(n, d)  # built row by row: the peak before timing is the window itself
    for i in range(n):
        x.add_(torch.randn(d, generator=g), alpha=1e-4 / d**0.5)
        w[i] = x / x.norm()
    from scipy.spatial import cKDTree
    from thermo_lightning.functional import knn_entropy

    def entropy(w, k):
        n, d = w.shape
        if method in ("torch", "faiss"):
            return knn_entropy(w, k=k, dim=d - 1, backend=method)
        if method == "reference":
            x64 = w.double()
            dist = torch.cdist(x64, x64)
            dist.fill_diagonal_(float("inf"))
            r = dist.sort(dim=1).values[:, :k]
            return (d - 1) * float(np.log(r.sum().item() / n)) + float(np.log(n))
        if method == "ckdtree":
            pts = w.double().numpy()
            r, _ = cKDTree(pts).query(pts, k=k + 1)
            return (d - 1) * float(np.log(r[:, 1:].sum() / n)) + float(np.log(n))
        raise SystemExit(f"unknown method {method}")

    entropy(w[:64, :256].contiguous(), 5)  # warm-up: imports, thread pools, first calls
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        s = entropy(w, k)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"times": times, "S": s, "extra_bytes": peak - base,
                      "threads": torch.get_num_threads()}))
    """
)


_SPLIT = textwrap.dedent(
    """
    import json, statistics, sys, time
    import torch
    from thermo_lightning.knn.torch_backend import (
        knn_from_sq_distances, pairwise_sq_distances, power_of_two_scale)
    n, d, k = map(int, sys.argv[1:4])
    g = torch.Generator().manual_seed(0)
    w = torch.randn(n, d, generator=g) / d**0.5
    a = torch.randn(n, 4096, generator=g)

    def median_time(f, repeats=3):
        f()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    rate = 2 * n * n * 4096 / median_time(lambda: a @ a.T)  # float32 multiply-adds x 2 / s
    sq = pairwise_sq_distances(w)
    print(json.dumps({
        "gemm_GFLOPs": rate / 1e9,
        "gram_limit_s": n * (n + 1) * d / rate,  # the lower triangle, N(N+1)/2 D FMAs
        "scale_s": median_time(lambda: power_of_two_scale(w)),
        "distances_s": median_time(lambda: pairwise_sq_distances(w)),
        "topk_s": median_time(lambda: knn_from_sq_distances(sq.clone(), k)),
    }))
    """
)


def _split(n: int, d: int, k: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _SPLIT, str(n), str(d), str(k)],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:80]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run(method: str, n: int, d: int, k: int, repeats: int, timeout: float) -> dict:
    cmd = [sys.executable, "-c", _WORKER, method, str(n), str(d), str(k), str(repeats), "0"]
    env = None
    if "@" in method:  # the backend of another checkout first on the path
        env = {**os.environ, "PYTHONPATH": method.split("@", 1)[1]}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:80]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["1000x10000", "1000x100000"],
                   help="NxD window sizes")
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=["torch", "faiss", "reference", "ckdtree"])
    p.add_argument("--ckdtree-max-d", type=int, default=10_000)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--baseline", default=None,
                   help="another checkout whose torch backend is measured alongside")
    p.add_argument("--split", action="store_true",
                   help="print where the torch backend's time goes, and the GEMM limit")
    args = p.parse_args(argv)
    if args.baseline:
        args.methods = [*args.methods, f"torch@{args.baseline}"]
    rows = []
    for size in args.sizes:
        n, d = (int(float(v)) for v in size.lower().split("x"))
        results: dict[str, dict] = {}
        for method in args.methods:
            if method == "ckdtree" and d > args.ckdtree_max_d:
                results[method] = {"error": f"skipped (D > {args.ckdtree_max_d})"}
        # repeats interleaved across the methods (one fresh process each): a slow spell of a
        # shared machine then hits every method alike instead of one
        for _ in range(args.repeats):
            for method in args.methods:
                if "error" in results.get(method, {}):
                    continue
                res = _run(method, n, d, min(args.k, n - 1), 1, args.timeout)
                if "error" in res:
                    results[method] = res
                    continue
                acc = results.setdefault(method, {"times": [], "extra_bytes": 0})
                acc["times"] += res["times"]
                acc["extra_bytes"] = max(acc["extra_bytes"], res["extra_bytes"])
                acc["S"] = res["S"]
        ref = results.get("reference", {})
        ref_t = statistics.median(ref["times"]) if "times" in ref else None
        for method, res in results.items():
            row = {"N": n, "D": d, "method": method}
            if "error" in res:
                row["note"] = res["error"]
            else:
                t = statistics.median(res["times"])
                row.update(median_s=t, extra_MB=res["extra_bytes"] / 2**20, S=res["S"])
                if ref_t is not None:
                    row["speedup_vs_reference"] = ref_t / t
                    row["rel_diff_S"] = abs(res["S"] - ref["S"]) / abs(ref["S"])
            rows.append(row)
    table = pd.DataFrame(rows)
    print(f"k-NN graph entropy, k={args.k}, float32 trajectory-like windows, median of "
          f"{args.repeats}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.split:
        splits = []
        for size in args.sizes:
            n, d = (int(float(v)) for v in size.lower().split("x"))
            splits.append({"N": n, "D": d, **_split(n, d, min(args.k, n - 1))})
        print("\nwhere the torch backend's time goes (median of 3; gram_limit_s: the lower "
              "triangle of the Gram matrix at the measured float32 GEMM rate)")
        print(pd.DataFrame(splits).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return table


if __name__ == "__main__":
    main()
