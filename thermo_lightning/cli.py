"""``thermo-lightning demo | sweep | sweep-run | report``: sweeps and their report.

    thermo-lightning demo [--out DIR] [--quick]
    thermo-lightning sweep [--config sweep.yaml] --out runs/ [--workers N] [--lrs ...] [...]
    thermo-lightning sweep ... --out runs/ --launcher ray|slurm [--plan | --dry-run] [...]
    thermo-lightning sweep [--config sweep.yaml] [--lrs ...] --print-config > sweep.yaml
    thermo-lightning sweep-run --config runs/sweep.json --run NAME --out runs/
    thermo-lightning report runs/ --out report/ [--force] [--tail 0.15] [--lr-range A B]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thermo_lightning.launch.base import count_runs
from thermo_lightning.runs.layout import PLAN_FILE, REPORT_DIR

if TYPE_CHECKING:
    import pandas as pd

    from thermo_lightning.sweep.config import SweepConfig

__all__ = ["main"]

def _quiet() -> None:
    warnings.filterwarnings("ignore", category=UserWarning, module="lightning")
    warnings.filterwarnings("ignore", message=".*treespec.*")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _sweep_fields() -> list[dataclasses.Field]:
    from thermo_lightning.sweep.config import SweepConfig

    return list(dataclasses.fields(SweepConfig))


def _config(args: argparse.Namespace):
    """The sweep's settings: the ``--config`` file (YAML, or a sweep's own ``sweep.json``),
    then every flag given on the command line; SweepConfig converts and checks them."""
    import yaml

    from thermo_lightning.sweep.config import SweepConfig

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
        section = values.pop("launcher", None)  # where to run: not a sweep setting
        if section is not None:
            if not isinstance(section, dict):
                raise SystemExit(f"error: `launcher` in {path} must be a mapping (name: "
                                 "local|ray|slurm and its options)")
            args.launcher_section = section
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
    from thermo_lightning.sweep.config import FIELD_HELP

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
        print(f"  (no temperature table: fewer than 3 values of {along} have runs in T(eta); the "
              "notes above say why. temperature.csv holds its header only)")
        return
    cols = ["group", along, "U", "S", "T", "T_lo", "T_hi", "T_ci_lo", "T_ci_hi", "valid", "end",
            "unchecked", "near_uniform", "regime", "T_true", "T_conf", "T_conf_lo", "T_conf_hi"]
    table = temperature[[c for c in cols if c in temperature and not (  # no interval: 1 seed
        c.startswith("T_ci") and temperature[c].isna().all()) and not (  # marks shown if set
        c in ("unchecked", "near_uniform") and not temperature[c].fillna(False).any())]].copy()
    with pd.option_context("display.float_format", lambda v: f"{v:.4g}", "display.width", 120):
        print(table.to_string(index=False))


def print_config(cfg: SweepConfig) -> None:
    """The complete settings as YAML (every field, defaults filled in): save it and pass it
    back with ``--config``."""
    import yaml

    print(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False, default_flow_style=None),
          end="")


def _launcher(args: argparse.Namespace) -> Any:
    """The launcher of ``--launcher`` (or the config file's ``launcher: {name: ...}``), its
    options from that section, overridden by the flags given (:func:`~thermo_lightning.
    launch.launcher_flags`: derived from the launchers' fields)."""
    from thermo_lightning.launch import LAUNCHERS, launcher_options

    section = dict(getattr(args, "launcher_section", None) or {})
    name = args.launcher or section.pop("name", "local")
    section.pop("name", None)
    if name not in LAUNCHERS:
        raise SystemExit(f"error: --launcher must be one of {sorted(LAUNCHERS)}, got {name!r}")
    cls = LAUNCHERS[name]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise SystemExit(f"error: unknown options {unknown} for the {name} launcher; known: "
                         f"{sorted(k for k in known if not k.startswith('_'))}")
    options = {**section, **launcher_options(cls, args)}
    try:
        return cls(**options)
    except (TypeError, ValueError) as err:
        raise SystemExit(f"error: the {name} launcher's options: {err}") from err


def cmd_sweep(args: argparse.Namespace) -> int:
    from thermo_lightning.launch import SlurmLauncher
    from thermo_lightning.sweep.plan import read_plan, runs_before, write_plan

    cfg = _config(args)
    if args.print_config:
        print_config(cfg)
        return 0
    if args.out is None:
        print("error: sweep needs --out (the folder of the runs)", file=sys.stderr)
        return 2
    if Path(args.out).exists() and not Path(args.out).is_dir():
        print(f"error: --out {args.out} is a file; the sweep needs a folder there.",
              file=sys.stderr)
        return 2
    launcher = _launcher(args)
    from thermo_lightning.sweep.runner import check_factories, run_sweep

    try:
        check_factories(cfg)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.plan or args.dry_run:
        plan = write_plan(cfg, args.out)
        listed = len(read_plan(plan.out).runs)  # with an earlier sweep's, when extended
        kept = f" (it lists {listed} with the earlier runs)" if listed > len(plan.runs) else ""
        print(f"plan: {count_runs(len(plan.runs))} in {plan.out / PLAN_FILE}{kept}")
        for run in plan.runs:
            print("  " + " ".join(run.command))
        if args.dry_run:
            if isinstance(launcher, SlurmLauncher):
                print(launcher.script(plan))
            else:
                print(f"(--dry-run: the {args.launcher or 'local'} launcher would run the "
                      "commands above)")
        return 0
    _quiet()
    done_before, begun_before = runs_before(cfg, Path(args.out))
    try:
        runs = run_sweep(cfg, args.out, progress=not args.no_progress, launcher=launcher)
    except RuntimeError as err:  # some runs failed; the others are done
        if not str(err).startswith(("some runs failed", "all runs failed")):
            raise
        print(f"error: {err}\n" + ("None finished: fix the cause (above, and in the runs' "
              "logs), run it again." if str(err).startswith("all") else "The other runs are "
              "done; run the same command again to retry the failed ones (finished runs are "
              "skipped)."), file=sys.stderr)
        return 1
    skipped = sum(run.name in done_before for run in runs)
    resumed = sum(run.name in begun_before for run in runs)
    parts = [f"{skipped} finished before, skipped" if skipped else "",
             f"{resumed} begun before, finished now" if resumed else "",
             f"{len(runs) - skipped - resumed} trained now"
             if len(runs) - skipped - resumed else ""]
    what = (f"all {skipped} finished before, skipped" if skipped == len(runs) else
            "trained now" if not skipped + resumed else "; ".join(p for p in parts if p))
    report = Path(args.out) / REPORT_DIR
    listed = len(read_plan(args.out).runs)  # an extended sweep's folder holds more
    what += f"; the folder's plan.json lists {listed} in all" if listed > len(runs) else ""
    print(f"{count_runs(len(runs))} in {args.out} ({what}); next: thermo-lightning report "
          f"{args.out} --out {report}{' --force' if report.exists() else ''}")
    return 0


def cmd_sweep_run(args: argparse.Namespace) -> int:
    from thermo_lightning.launch import stop_with_parent, throttled
    from thermo_lightning.runs.layout import RunSpec
    from thermo_lightning.sweep.plan import check_sweep_folder, planned_spec
    from thermo_lightning.sweep.runner import check_run, run_spec

    cfg = _config(args)
    _quiet()
    if args.parent_pid is not None:
        stop_with_parent(args.parent_pid)
    if (args.run is None) == (args.lr is None):
        print("error: sweep-run needs --run NAME (a run of the sweep) or --lr", file=sys.stderr)
        return 2
    check_sweep_folder(cfg, Path(args.out))  # a sweep's folder: its own settings only
    try:
        if args.run is not None:  # the sweep's, or an earlier one's its plan.json keeps
            spec = planned_spec(args.out, args.run) or cfg.run_named(args.run)
        else:
            try:
                lr = float(args.lr)
            except ValueError:
                raise ValueError(f"--lr must be a number, got {args.lr!r}") from None
            spec = check_run(cfg, RunSpec(lr, args.run_seed))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    say = throttled(print, 0 if args.parent_pid else 10)  # a user: a line per 10 s, not 1%
    folder = run_spec(cfg, spec, args.out, progress=lambda line: say(line, flush=True))
    print(f"{folder.name}: done ({folder})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from thermo_lightning.report import make_report
    from thermo_lightning.report.configurational import one_run_line

    out = args.out or str(Path(args.logdir) / REPORT_DIR)
    given = [f for f, v in (("--eps", args.eps), ("--smoothing", args.smoothing)) if v is not None]
    if given and args.construction == "convex":
        print(f"note: {' and '.join(given)}: for --construction bracket only; the convex "
              f"construction (the default) does not use {'them' if given[1:] else 'it'}")
    smoothing = 0.3 if args.smoothing is None else args.smoothing or None  # 0: off
    try:
        result = make_report(args.logdir, out, tail=args.tail, eps=args.eps or 0.0,
                             smoothing=smoothing,
                             lr_range=tuple(args.lr_range) if args.lr_range else None,
                             force=args.force, tensorboard=not args.no_tensorboard,
                             include_low_ess=args.include_low_ess, ci=args.ci,
                             along=args.along, construction=args.construction)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for message in result.messages:
        print(f"note: {message}")
    print(f"report written to {out} ({len(result.runs)} runs)")
    _print_table(result.temperature, args.along)
    if result.temperature.empty and "T_conf" in result.runs:  # one run's own thermometer
        for _, r in result.runs.dropna(subset=["T_conf"]).iterrows():
            print(one_run_line(r))
    if result.power_law is not None:
        print(fit_line(result))
    for label, fit in ((result.fit or {}).get("groups") or {}).items():
        lo, hi = fit.get("a_ci_lo"), fit.get("a_ci_hi")
        interval = f" (a in [{lo:.3f}, {hi:.3f}])" if lo is not None and math.isfinite(
            lo) else ""
        print(f"{label}: T = {fit['b']:.3g} * {args.along}^{fit['a']:.3f}{interval}")
    return 0


def fit_line(result: Any) -> str:
    """``T = b * lr^a`` with the exponent's interval where the report has one (its level,
    how it was made and from how many seeds)."""
    b, a = result.power_law
    fit = result.fit or {}
    lo, hi = fit.get("a_ci_lo", math.nan), fit.get("a_ci_hi", math.nan)
    how = "over seeds" if fit.get("ci_method") == "seeds" else "within-run bootstrap"
    interval = (f" (a in [{lo:.3f}, {hi:.3f}] at {fit.get('level', 0.95):.0%}, "
                f"{how}, {fit.get('n_seeds', 1)} seed(s))" if math.isfinite(lo) else "")
    return f"T = {b:.3g} * lr^{a:.3f}{interval}"


#: steps of each run of the demo's network half (measured: docs/quickstart.md)
NETWORK_STEPS = 6000


def demo_sweeps(quick: bool = False, seed_offset: int = 0) -> list[tuple[str, SweepConfig]]:
    """The demo's two sweeps (measured choices, see docs/quickstart.md), each over the seeds
    ``seed_offset``, ``seed_offset + 1``, ``seed_offset + 2`` (for the intervals):

    - the known-temperature problem in R^21 (``sigma = 0.5``, curvatures 1..2), five LRs a
      factor sqrt(2) apart from 0.02, 12,000 steps each, at the callback's defaults: the
      interior ``T`` within 15% of ``T_true`` (0.95-1.16 over 8 seeds of the same set-up);
    - ScaleInvariantConvNet of width 1 (387 SI weights, under-parameterised: it never fits
      digits) at seven LRs from 0.015 to 0.045, NETWORK_STEPS steps each: stationary runs
      with ``T`` rising with the LR. Its weights have slow directions (correlation times of
      hundreds of steps), so the window is 30 snapshots, farther apart, instead of the
      default.
    """
    from thermo_lightning.sweep.config import SweepConfig

    if not (isinstance(seed_offset, int) and seed_offset >= 0):
        raise ValueError(f"`seed_offset` (--seed-offset) must be an integer >= 0, got "
                         f"{seed_offset!r}.")
    seeds = [seed_offset + i for i in range(3)]
    lrs = [float(f"{0.02 * math.sqrt(2) ** i:.4g}") for i in range(5)]
    suffix = f"-seeds{seed_offset}" if seed_offset else ""  # other seeds: another folder
    return [
        (f"known-temperature{suffix}", SweepConfig(
            model="langevin", data=None, dim=21, noise_std=0.5, lrs=lrs,
            steps=4000 if quick else 12_000, snr=None, seeds=seeds)),
        (f"digits-convnet{suffix}", SweepConfig(
            model="convnet", data="digits", width=1, lr_min=0.015, lr_max=0.045,
            num_lrs=3 if quick else 7, steps=300 if quick else NETWORK_STEPS,
            window=20 if quick else 30, snr_batches=4, seeds=seeds[:1] if quick else seeds)),
    ]


def cmd_demo(args: argparse.Namespace) -> int:
    """Two small sweeps that need no download: the known-temperature problem (T is known)
    and ScaleInvariantConvNet on digits; each with its report."""
    from thermo_lightning.report import make_report
    from thermo_lightning.sweep.runner import run_sweep

    _quiet()
    out = Path(args.out)
    workers = max(1, min(2, os.cpu_count() or 1))
    try:
        sweeps = demo_sweeps(args.quick, args.seed_offset)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, cfg in sweeps:
        seeds = f" x seeds {', '.join(map(str, cfg.seeds))}" if cfg.seeds else ""
        print(f"== {name}: {len(cfg.learning_rates())} learning rates{seeds}, {cfg.steps} "
              "steps each")
        started = time.monotonic()
        run_sweep(cfg, out / name, workers=workers, progress=not args.no_progress)
        print(f"({count_runs(len(cfg.runs()))} in {time.monotonic() - started:.0f} s)")
        report = make_report(out / name, out / name / REPORT_DIR, force=True)
        print("".join(f"note: {message}\n" for message in report.messages), end="")
        _print_table(report.temperature)  # with T_true where the truth is known
        if report.power_law is not None:
            print(f"fit: {fit_line(report)}")
        print(f"report: {out / name / REPORT_DIR}\n")
    print(f"To browse both: tensorboard --logdir {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from thermo_lightning._version import __version__

    parser = argparse.ArgumentParser(
        prog="thermo-lightning",
        description="Learning-rate sweeps that measure the thermodynamics of training (loss U, "
                    "weight entropy S, temperature T, free energy, gradient SNR), and their "
                    "report.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{demo,sweep,sweep-run,report}")

    demo = sub.add_parser("demo", help="small sweeps on embedded data, then their reports")
    demo.add_argument("--out", default="thermo_demo", help="output folder (default thermo_demo)")
    demo.add_argument("--quick", action="store_true",
                      help="a small version (about 2 minutes on 2 cores), to check the set-up")
    demo.add_argument("--seed-offset", type=int, default=0, metavar="K",
                      help="run the seeds K, K+1, K+2 (into folders named -seedsK when K > 0): "
                           "the same demo on other random draws (default 0)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(func=cmd_demo)

    sweep = sub.add_parser(
        "sweep", help="train every run of a sweep (learning rates x grid x seeds)")
    sweep.add_argument("--config", help="YAML file of sweep settings (the flags below override "
                       "it)")
    sweep.add_argument("--out", help="folder of the runs (required unless --print-config)")
    sweep.add_argument("--print-config", action="store_true",
                       help="print the complete settings (config file and flags merged, "
                            "checked, defaults filled in) as YAML for --config, and exit")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    where = sweep.add_argument_group(
        "where the runs execute", "--launcher local (processes here), ray (a Ray cluster) or "
        "slurm (a job array through submitit); also a `launcher:` section in --config")
    where.add_argument("--launcher", choices=["local", "ray", "slurm"],
                       help="default: local")
    where.add_argument("--plan", action="store_true",
                       help="write sweep.json and plan.json (the runs and their commands) "
                            "into --out, print them, and exit")
    where.add_argument("--dry-run", action="store_true",
                       help="--plan, and with --launcher slurm print the job script; submit "
                            "nothing")
    from thermo_lightning.launch import launcher_flags

    for flag, kwargs in launcher_flags():
        (sweep if flag == "--workers" else where).add_argument(flag, **kwargs)
    _add_overrides(sweep)
    sweep.set_defaults(func=cmd_sweep)

    one = sub.add_parser(
        "sweep-run", help="train one run of a planned sweep (what every launcher runs)",
        description="Train one run of a sweep into OUT/<run>: skip it when done, resume it "
                    "from its last checkpoint when interrupted; an exclusive lock on its "
                    "run.lock keeps two processes from training it at once. The sweep's "
                    "settings come from --config (OUT/sweep.json, written by sweep --plan).")
    one.add_argument("--config", help="the sweep's settings (OUT/sweep.json)")
    one.add_argument("--run", help="the run's folder name (lr=...,seed=...), as in plan.json")
    one.add_argument("--lr", help="instead of --run: the run at this learning rate")
    one.add_argument("--run-seed", type=int, help="with --lr: one of the sweep's seeds")
    one.add_argument("--out", required=True, help="the sweep's folder")
    one.add_argument("--parent-pid", type=int, help="stop when this process ends")
    _add_overrides(one)
    one.set_defaults(func=cmd_sweep_run)

    report = sub.add_parser("report", help="T(eta), free-energy curves and regimes of a sweep")
    report.add_argument("logdir", help="folder of runs")
    report.add_argument("--out", help="report folder (default LOGDIR/report)")
    report.add_argument("--force", action="store_true",
                        help="replace the report already in --out (only the files it wrote; "
                             "files of yours are never touched)")
    report.add_argument("--tail", type=float, default=0.15,
                        help="fraction of logging points averaged per run (default 0.15)")
    report.add_argument("--construction", choices=["convex", "bracket"], default="convex",
                        help="convex: T from the most likely convex U(S) given the points' "
                             "standard errors (a row is invalid only where they reject "
                             "convexity); bracket: the paper's construction, for comparisons "
                             "with its numbers (default convex)")
    report.add_argument("--eps", type=float,
                        help="bracket slack, for the bracket construction only (default 0)")
    report.add_argument("--smoothing", type=float, help="smoothing (default 0.3; 0: off): "
                        "triangular half-width in ln(lr), for the bracket construction only")
    report.add_argument("--lr-range", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="use the runs with lr in [MIN, MAX] for T(eta), of any regime "
                             "(default: the stationary runs, chosen automatically)")
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


#: OSError numbers that are the machine's state (space, permissions), said in one line
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


_PACKAGE = Path(__file__).resolve().parent


class _Refused(SystemExit):
    """Exit status 2 for a mistake in what was asked (its message printed; ``str``)."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _package_line(message: Warning | str, filename: str) -> str | None:
    """The package's own warnings as one line, ``warning: <message>`` (a user needs the
    message, not the line of the package's source that gave it); ``None`` for any other."""
    from thermo_lightning._warnings import ThermoWarning

    if isinstance(message, ThermoWarning) or Path(filename).resolve().is_relative_to(_PACKAGE):
        return f"warning: {message}\n"
    return None


def _show_warning(message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: Any = None, line: str | None = None) -> None:
    """:func:`_package_line` for the package's warnings (written here: Lightning replaces
    ``warnings.formatwarning`` when it is imported), any other as Python shows it."""
    text = _package_line(message, filename)
    if text is None:
        return _python_show(message, category, filename, lineno, file, line)
    with contextlib.suppress(OSError):
        (file or sys.stderr).write(text)


_python_show = warnings.showwarning


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from thermo_lightning.launch.base import LauncherError
    from thermo_lightning.sweep.errors import RunLockedError, SweepSettingsError

    shown = warnings.showwarning
    if shown is _python_show:  # not while something records them (pytest, catch_warnings)
        warnings.showwarning = _show_warning
    try:
        return int(args.func(args) or 0)
    except SystemExit as err:  # a mistake in what was asked: one line, exit status 2
        if not isinstance(err.code, str):
            raise
        print(err.code if err.code.startswith("error:") else f"error: {err.code}",
              file=sys.stderr)
        raise _Refused(err.code) from None
    except (SweepSettingsError, RunLockedError, LauncherError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a Ctrl-C before a command's own handling (while importing)
        print("stopped by Ctrl-C", file=sys.stderr)
        return 128 + 2
    except ImportError as err:  # an optional dependency: the message names the extra
        if "thermo-lightning[" not in str(err):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only folder: the machine's, not a bug
        if err.errno not in _DISK_ERRORS:
            raise
        where = f" ({err.filename})" if err.filename else ""
        print(f"error: {err.strerror or err}{where}. Free some space or choose a folder you "
              "can write (--out), then run the same command again: what was finished is kept.",
              file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":
    sys.exit(main())
