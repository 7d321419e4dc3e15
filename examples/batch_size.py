"""Does SGD's temperature depend on the learning rate and batch size through eta / B?

A digits grid: ScaleInvariantConvNet of width 1 (under-parameterised: it reaches a stationary
state), 5 learning rates x 3 batch sizes, then the report: T(eta) per batch size and the
collapse test (one power law T = b (eta / B)^a for every group, and how far apart the groups
lie around it against a power law in eta alone). The paper leaves this open; its conjecture is
that T grows with eta / B.

Usage::

    python examples/batch_size.py                 # ~10 min on a 2-core CPU
    python examples/batch_size.py --quick         # seconds: a check that it runs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from thermo_lightning.report import ReportResult, make_report
from thermo_lightning.sweep import SweepConfig, run_sweep


def main(argv: list[str] | None = None) -> ReportResult:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs_batch_size")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    cfg = SweepConfig(
        model="convnet", data="digits", width=1, lr_min=0.015, lr_max=0.045,
        num_lrs=3 if args.quick else 5, steps=60 if args.quick else args.steps,
        window=10 if args.quick else 30, k=[3] if args.quick else "auto",
        schedule=5 if args.quick else "log", snr=None,
        grid={"batch_size": args.batch_sizes[:2] if args.quick else args.batch_sizes})
    out = Path(args.out)
    print(f"{len(cfg.runs())} runs: {len(cfg.learning_rates())} LRs x batch sizes "
          f"{cfg.grid['batch_size']}, {cfg.steps} steps each")
    run_sweep(cfg, out, workers=args.workers, progress=not args.quick)
    # quick: runs too short to be stationary; every run enters T(eta)
    report = make_report(out, out / "report", force=True, tensorboard=not args.quick,
                         include_low_ess=True,
                         lr_range=(1e-3, 1.0) if args.quick else None)
    cols = [c for c in ("batch_size", "lr", "U", "S", "T", "T_lo", "T_hi", "valid")
            if c in report.temperature]
    with pd.option_context("display.float_format", lambda v: f"{v:.4g}", "display.width", 120):
        print(report.temperature[cols].to_string(index=False))
    if report.collapse is not None:
        print(report.collapse["verdict"])
    else:
        print("no collapse test: it needs valid interior rows of T(eta) for 2 batch sizes "
              "or more (see the notes in " + str(out / "report" / "messages.txt") + ")")
    return report


if __name__ == "__main__":
    main()
