"""``thermo-lightning demo | sweep | report``: learning-rate sweeps and their report.

    thermo-lightning demo [--out DIR] [--quick]
    thermo-lightning sweep [--config sweep.yaml] --out runs/ [--workers N] [--lrs ...] [...]
    thermo-lightning sweep [--config sweep.yaml] [--lrs ...] --print-config > sweep.yaml
    thermo-lightning report runs/ --out report/ [--force] [--tail 0.15] [--lr-range A B]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from thermo_lightning.sweep_config import SweepConfig

__all__ = ["main"]

def _quiet() -> None:
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
    warnings.filterwarnings("ignore", message=".*treespec.*")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _sweep_fields() -> list[dataclasses.Field]:
    from thermo_lightning.sweep_config import SweepConfig

    return list(dataclasses.fields(SweepConfig))


def _config(args: argparse.Namespace):
    """The sweep's settings: the ``--config`` file (YAML, or a sweep's own ``sweep.json``),
    then every flag given on the command line; SweepConfig converts and checks them."""
    import yaml

    from thermo_lightning.sweep import SweepConfig

    values: dict[str, Any] = {}
    if args.config:
        path = Path(args.config)
        if not path.exists():
            raise SystemExit(f"error: --config {path} does not exist")
        try:
            loaded = (json.loads(path.read_text()) if path.suffix == ".json"
                      else yaml.safe_load(path.read_text()))
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise SystemExit(f"error: --config {path} is not valid: {err}") from err
        if not isinstance(loaded, dict | None):
            raise SystemExit(f"error: --config {path} must hold a mapping of sweep settings")
        values = dict(loaded or {})
    for f in _sweep_fields():
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    try:
        return SweepConfig.from_dict(values)
    except (ValueError, TypeError) as err:
        raise SystemExit(f"error: {err}") from err


def _add_overrides(p: argparse.ArgumentParser) -> None:
    """One flag per SweepConfig field (derived, so that none drifts out): values are read as
    text and converted by SweepConfig; list fields take several values."""
    from thermo_lightning.sweep_config import FIELD_HELP

    for f in _sweep_fields():
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind = str(f.type)
        text = FIELD_HELP[f.name]
        if kind == "bool":
            p.add_argument(flag, dest=f.name, action="store_true", default=None,
                           help=f"{text} (default: {default})")
        elif kind.startswith("dict"):
            p.add_argument(flag, dest=f.name, action="append", metavar="KEY=VALUE",
                           help=f"{text} (default: {default})")
        else:
            p.add_argument(flag, dest=f.name, nargs="+" if kind.startswith("list") else None,
                           metavar=f.name.upper(), help=f"{text} (default: {default})")


def _print_table(temperature: pd.DataFrame, along: str = "lr") -> None:
    import pandas as pd

    if temperature.empty:
        print("  (no temperature table: too few stationary learning rates)")
        return
    cols = ["group", along, "U", "S", "T", "T_lo", "T_hi", "T_ci_lo", "T_ci_hi", "valid",
            "regime", "T_true"]
    table = temperature[[c for c in cols if c in temperature and not (
        c.startswith("T_ci") and temperature[c].isna().all())]].copy()  # no interval: 1 seed
    with pd.option_context("display.float_format", lambda v: f"{v:.4g}", "display.width", 120):
        print(table.to_string(index=False))


def print_config(cfg: SweepConfig) -> None:
    """The complete settings as YAML (every field, defaults filled in): save it and pass it
    back with ``--config``."""
    import yaml

    print(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False, default_flow_style=None),
          end="")


def cmd_sweep(args: argparse.Namespace) -> int:
    from thermo_lightning.sweep import run_sweep

    cfg = _config(args)
    if args.print_config:
        print_config(cfg)
        return 0
    if args.out is None:
        print("error: sweep needs --out (the folder of the runs)", file=sys.stderr)
        return 2
    _quiet()
    runs = run_sweep(cfg, args.out, workers=args.workers, progress=not args.no_progress)
    print(f"{len(runs)} runs in {args.out}; next: thermo-lightning report {args.out} --out "
          f"{Path(args.out) / 'report'}")
    return 0


def cmd_sweep_run(args: argparse.Namespace) -> int:
    from thermo_lightning.sweep import run_one, run_spec, stop_with_parent

    cfg = _config(args)
    _quiet()
    if args.parent_pid is not None:
        stop_with_parent(args.parent_pid)
    if (args.run is None) == (args.lr is None):
        print("error: sweep-run needs --run NAME (a run folder of the sweep) or --lr",
              file=sys.stderr)
        return 2
    if args.run is not None:
        try:
            spec = cfg.run_named(args.run)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        run_spec(cfg, spec, args.out, progress=lambda line: print(line, flush=True))
    else:
        run_one(cfg, float(args.lr), args.out, seed=args.run_seed,
                progress=lambda line: print(line, flush=True))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from thermo_lightning.report import make_report

    out = args.out or str(Path(args.logdir) / "report")
    try:
        result = make_report(args.logdir, out, tail=args.tail, eps=args.eps,
                             smoothing=None if args.smoothing <= 0 else args.smoothing,
                             lr_range=tuple(args.lr_range) if args.lr_range else None,
                             force=args.force, tensorboard=not args.no_tensorboard,
                             include_low_ess=args.include_low_ess, ci=args.ci,
                             along=args.along)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for message in result.messages:
        print(f"note: {message}")
    print(f"report written to {out} ({len(result.runs)} runs)")
    _print_table(result.temperature, args.along)
    if result.power_law is not None:
        print(fit_line(result))
    for label, fit in ((result.fit or {}).get("groups") or {}).items():
        lo, hi = fit.get("a_ci_lo"), fit.get("a_ci_hi")
        interval = f" (a in [{lo:.3f}, {hi:.3f}])" if lo is not None and math.isfinite(
            lo) else ""
        print(f"{label}: T = {fit['b']:.3g} * {args.along}^{fit['a']:.3f}{interval}")
    if result.collapse is not None:
        print(result.collapse["verdict"])
    return 0


def fit_line(result: Any) -> str:
    """``T = b * lr^a`` with the exponent's interval where the report has one (its level,
    how it was made and from how many seeds)."""
    b, a = result.power_law
    fit = result.fit or {}
    lo, hi = fit.get("a_ci_lo", math.nan), fit.get("a_ci_hi", math.nan)
    how = ("over seeds" if fit.get("ci_method") == "seeds"
           else "within-run bootstrap")
    interval = (f" (a in [{lo:.3f}, {hi:.3f}] at {fit.get('level', 0.95):.0%}, "
                f"{how}, {fit.get('n_seeds', 1)} seed(s))" if math.isfinite(lo) else "")
    return f"T = {b:.3g} * lr^{a:.3f}{interval}"


def demo_sweeps(quick: bool = False) -> list[tuple[str, SweepConfig]]:
    """The demo's two sweeps (measured choices, see docs/quickstart.md):

    - the known-temperature problem in R^21 (``sigma = 0.5``, curvatures 1..2), five LRs a
      factor sqrt(2) apart from 0.02, 12,000 steps each, at the callback's defaults, 3 seeds
      (for the intervals ``T_ci_lo``, ``T_ci_hi``): the interior ``T`` within 15% of
      ``T_true`` (0.95-1.16 over 8 seeds of the same set-up);
    - ScaleInvariantConvNet of width 1 (387 SI weights, under-parameterised: it never fits
      digits) at six LRs from 0.015 to 0.045, 13,000 steps each: stationary runs with ``T``
      rising with the LR. Its weights have slow directions (correlation times of hundreds of
      steps), so the window is 30 snapshots, farther apart, instead of the default 65.
    """
    from thermo_lightning.sweep import SweepConfig

    lrs = [float(f"{0.02 * math.sqrt(2) ** i:.4g}") for i in range(5)]
    return [
        ("known-temperature", SweepConfig(
            model="langevin", data=None, dim=21, noise_std=0.5, lrs=lrs,
            steps=4000 if quick else 12_000, snr=None, seeds=[0, 1, 2])),
        ("digits-convnet", SweepConfig(
            model="convnet", data="digits", width=1, lr_min=0.015, lr_max=0.045,
            num_lrs=3 if quick else 6, steps=300 if quick else 13_000,
            window=20 if quick else 30, snr_batches=4)),
    ]


def cmd_demo(args: argparse.Namespace) -> int:
    """Two small sweeps that need no download: the known-temperature problem (T is known)
    and ScaleInvariantConvNet on digits; each with its report."""
    from thermo_lightning.report import make_report
    from thermo_lightning.sweep import run_sweep

    _quiet()
    out = Path(args.out)
    workers = max(1, min(2, os.cpu_count() or 1))
    for name, cfg in demo_sweeps(args.quick):
        print(f"== {name}: {len(cfg.learning_rates())} learning rates, {cfg.steps} steps each")
        run_sweep(cfg, out / name, workers=workers, progress=not args.no_progress)
        report = make_report(out / name, out / name / "report", force=True)
        for message in report.messages:
            print(f"note: {message}")
        _print_table(report.temperature)  # with T_true where the truth is known
        if report.power_law is not None:
            print(f"fit: {fit_line(report)}")
        print(f"report: {out / name / 'report'}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from thermo_lightning._version import __version__

    parser = argparse.ArgumentParser(
        prog="thermo-lightning",
        description="Learning-rate sweeps that measure the thermodynamics of training (loss U, "
                    "weight entropy S, temperature T, free energy, gradient SNR), and their "
                    "report.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,sweep,report}")

    demo = sub.add_parser("demo", help="small sweeps on embedded data, then their reports")
    demo.add_argument("--out", default="thermo_demo", help="output folder (default thermo_demo)")
    demo.add_argument("--quick", action="store_true",
                      help="a small version (about a minute), to check the set-up")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)

    sweep = sub.add_parser("sweep", help="train one run per learning rate")
    sweep.add_argument("--config", help="YAML file of sweep settings (the flags below override "
                       "it)")
    sweep.add_argument("--out", help="folder of the runs (required unless --print-config)")
    sweep.add_argument("--print-config", action="store_true",
                       help="print the complete settings (config file and flags merged, "
                            "checked, defaults filled in) as YAML for --config, and exit")
    sweep.add_argument("--workers", type=int, default=1,
                       help="runs in parallel processes (default: 1)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_overrides(sweep)
    sweep.set_defaults(func=cmd_sweep)

    one = sub.add_parser("sweep-run", help=argparse.SUPPRESS)
    one.add_argument("--config")
    one.add_argument("--run", help="the run's folder name (lr=...,seed=...)")
    one.add_argument("--lr")
    one.add_argument("--run-seed", type=int, help="one of the sweep's seeds")
    one.add_argument("--out", required=True)
    one.add_argument("--parent-pid", type=int, help="stop when this process ends")
    _add_overrides(one)
    one.set_defaults(func=cmd_sweep_run)
    # the worker command stays out of the help listing
    sub._choices_actions = [a for a in sub._choices_actions if a.dest != "sweep-run"]

    report = sub.add_parser("report", help="T(eta), free-energy curves and regimes of a sweep")
    report.add_argument("logdir", help="folder of runs")
    report.add_argument("--out", help="report folder (default LOGDIR/report)")
    report.add_argument("--force", action="store_true", help="overwrite an existing report")
    report.add_argument("--tail", type=float, default=0.15,
                        help="fraction of logging points averaged per run (default 0.15)")
    report.add_argument("--eps", type=float, default=0.0, help="bracket slack (default 0)")
    report.add_argument("--smoothing", type=float, default=0.3,
                        help="triangular smoothing half-width in ln(lr); 0 = off (default 0.3)")
    report.add_argument("--lr-range", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="LRs used for T(eta) instead of the automatic stationary ones")
    report.add_argument("--no-tensorboard", action="store_true",
                        help="do not write REPORT/tensorboard")
    report.add_argument("--ci", type=float, default=0.95,
                        help="level of the intervals, over seeds or from the within-run "
                             "bootstrap (default 0.95)")
    report.add_argument("--along", default="lr",
                        help="the sweep axis T is inferred along (default lr); the other axes "
                             "of a grid become groups")
    report.add_argument("--include-low-ess", action="store_true",
                        help="keep stationary runs with a low effective sample size in T(eta)")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from thermo_lightning.sweep import RunLockedError, SweepSettingsError

    try:
        return int(args.func(args) or 0)
    except (SweepSettingsError, RunLockedError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
