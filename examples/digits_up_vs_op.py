"""Under- vs over-parameterised: ScaleInvariantConvNet on digits at two widths.

For each width, a learning-rate sweep (SphereProjectionStrategy + ThermoCallback, batches of
128 drawn with replacement), then the report: T(eta) on the stationary LRs of the
under-parameterised net, with 95% intervals over ``--seeds`` (3 by default) for T and the
power-law exponent, and T(t) = dU/dS along the low-LR runs of the over-parameterised net (one
seed), whose temperature keeps falling as SGD converges.

Usage::

    python examples/digits_up_vs_op.py                  # ~35 min on a 2-core CPU
    python examples/digits_up_vs_op.py --seeds 0        # one seed, no intervals: ~15 min
    python examples/digits_up_vs_op.py --quick          # seconds: a check that it runs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from thermo_lightning.cli import fit_line
from thermo_lightning.functional import local_temperature
from thermo_lightning.report import make_report, read_run
from thermo_lightning.sweep import SweepConfig, run_dir_name, run_sweep


def main(argv: list[str] | None = None) -> dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs_digits")
    p.add_argument("--up-width", type=int, default=1)
    p.add_argument("--op-width", type=int, default=16)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds of the under-parameterised sweep (default 0 1 2)")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    quick = args.quick
    results: dict[str, object] = {}
    for label, width in (("UP", args.up_width), ("OP", args.op_width)):
        cfg = SweepConfig(
            model="convnet", data="digits", width=width,
            lr_min=0.01 if label == "UP" else 0.003, lr_max=1.0, num_lrs=3 if quick else 10,
            steps=40 if quick else args.steps, window=15 if quick else 500,
            k=[5] if quick else [20, 50], stride=1, schedule=5 if quick else "log",
            snr_batches=4 if quick else 16,
            seeds=args.seeds if label == "UP" and len(args.seeds) > 1 else None,
            seed=args.seeds[0] if label == "UP" else 0,
        )
        out = Path(args.out) / f"{label.lower()}_w{width}"
        print(f"== {label}: width {width}, {len(cfg.learning_rates())} LRs x {cfg.steps} steps"
              f" x {len(cfg.seeds or [cfg.seed])} seed(s)")
        run_sweep(cfg, out, progress=not quick)
        # stride 1 (the paper's protocol, as docs/reproduction.md): keep its low-ESS rows
        report = make_report(out, out / "report", force=True, include_low_ess=True)
        with pd.option_context("display.float_format", lambda v: f"{v:.4g}",
                               "display.width", 120):
            cols = [c for c in ("lr", "U", "S", "regime", "train_acc", "snr")
                    if c in report.runs.columns]
            print(report.runs[cols].to_string(index=False))
            if not report.temperature.empty:
                cols = [c for c in ("lr", "T", "T_lo", "T_hi", "T_ci_lo", "T_ci_hi", "valid")
                        if c in report.temperature.columns]
                print(report.temperature[cols].to_string(index=False))
            if report.power_law is not None:
                print(fit_line(report))
        if label == "OP":
            low = read_run(out / run_dir_name(cfg.learning_rates()[0]))
            h = low.history.dropna(subset=["thermo/U", "thermo/S"])
            t = local_temperature(h["thermo/U"], h["thermo/S"])
            good = np.isfinite(t)
            print(f"T(t) along the lowest-LR OP run: {t[good][:1]} ... {t[good][-1:]}")
        results[label] = report
    return results


if __name__ == "__main__":
    main()
