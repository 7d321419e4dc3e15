"""A sweep planned before it runs: ``OUT/sweep.json`` (its settings) and ``OUT/plan.json``
(one entry per run: its folder name, its axis values and the command that trains it), checked
against a sweep already in ``OUT``. Every launcher executes the plan's commands."""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from thermo_lightning._warnings import ThermoWarning, user_stacklevel
from thermo_lightning.launch.base import PlannedRun, RunHere, SweepPlan
from thermo_lightning.runs.layout import PLAN_FILE, RUN_FILE, SWEEP_FILE, RunSpec
from thermo_lightning.runs.record import run_done
from thermo_lightning.sweep.config import NOT_MEASUREMENT, SweepConfig
from thermo_lightning.sweep.errors import SweepSettingsError

__all__ = ["PlanFiles", "check_sweep_folder", "planned_spec", "read_plan", "run_command",
           "runs_before", "settings_diff", "write_plan"]


def settings_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The measurement settings that differ, ``"key=old there, new now"`` each."""
    keys = sorted(k for k in set(old) | set(new)
                  if k not in NOT_MEASUREMENT and old.get(k) != new.get(k))
    return [f"{k}={old.get(k)!r} there, {new.get(k)!r} now" for k in keys]


def run_command(out: Path, spec: RunSpec) -> tuple[str, ...]:
    """The command that trains (or resumes, or skips when done) one run of the sweep in
    ``out``."""
    return (sys.executable, "-m", "thermo_lightning.cli", "sweep-run", "--config",
            str(out / SWEEP_FILE), "--run", spec.name, "--out", str(out))


def _plan(out: Path, specs: list[RunSpec], run_here: RunHere | None) -> SweepPlan:
    runs = tuple(PlannedRun(spec.name, spec.axes(), run_command(out, spec)) for spec in specs)
    return SweepPlan(out, runs, run_here)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


class PlanFiles:
    """What a sweep folder's ``sweep.json`` and ``plan.json`` held before a sweep was planned
    into it, to put back when its launcher cannot start (a ``LauncherError``, or the
    ``ImportError`` of a launcher whose package is missing: no run started).
    Otherwise the failed start's plan stays, and the same folder with other settings is then
    refused as if it held runs."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out).resolve()
        self.existed = self.out.exists()
        self.texts = {name: (self.out / name).read_text() if (self.out / name).exists()
                      else None for name in (SWEEP_FILE, PLAN_FILE)}

    def restore(self) -> None:
        """The two files as they were (removed where there were none), and the folder
        removed when this sweep created it and it holds nothing else."""
        for name, text in self.texts.items():
            path = self.out / name
            if text is None:
                path.unlink(missing_ok=True)
            else:
                _write_atomic(path, text)
        if not self.existed and self.out.is_dir() and not any(self.out.iterdir()):
            self.out.rmdir()


def check_sweep_folder(cfg: SweepConfig, out: Path) -> None:
    """Refuse ``cfg`` for the sweep folder ``out`` when the sweep there (its ``sweep.json``)
    was made with other measurement settings, or cannot be read.

    Also refuses an ``out`` inside another sweep's folder (one of its runs, or below): the
    runs would be read as that sweep's.

    Raises:
        SweepSettingsError: saying which settings differ and what to do.
    """
    for above in Path(out).resolve().parents:
        what = ("the sweep folder" if (above / SWEEP_FILE).exists() else
                "the run folder" if (above / RUN_FILE).exists() else None)
        if what:
            raise SweepSettingsError(
                f"{out} is inside {what} {above}: its runs would be read as that sweep's. "
                "Write this sweep to a folder of its own (not inside another sweep's)")
    if (out / RUN_FILE).exists():
        raise SweepSettingsError(f"{out} is a run's folder (it holds {RUN_FILE}): write this "
                                 "sweep to a folder of its own")
    sweep_file = out / SWEEP_FILE
    if not sweep_file.exists():
        return
    try:
        old = SweepConfig.from_dict(json.loads(sweep_file.read_text()))
    except (ValueError, TypeError) as err:
        raise SweepSettingsError(f"{sweep_file} is unreadable ({err}); write this sweep "
                                 "to another --out.") from err
    diff = settings_diff(old.measurement_settings(), cfg.measurement_settings())
    if diff:
        raise SweepSettingsError(
            f"{out} holds a sweep made with other settings ({'; '.join(diff)}). Its "
            "finished runs would be skipped as if they matched: write this sweep to "
            f"another --out (or pass --config {sweep_file} to run one of its runs), or "
            "delete the folder to redo it."
        )


def _plan_entries(out: Path) -> list[Any]:
    """The ``runs`` entries of ``out``'s ``plan.json`` (empty without a readable plan)."""
    try:
        entries = json.loads((out / PLAN_FILE).read_text())["runs"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return entries if isinstance(entries, list) else []


def _earlier_entries(out: Path, names: set[str], axes: set[str]) -> list[dict[str, Any]]:
    """The entries of ``out``'s earlier plan that this sweep keeps: runs on the same axes
    (a sweep extended with more learning rates or seeds), not planned again. Runs on other
    axes (a sweep without seeds, then with; without a grid, then with) are other
    experiments: dropped from the plan with a warning (the report leaves them out)."""
    kept, dropped = [], []
    for entry in _plan_entries(out):
        if not isinstance(entry, dict) or entry.get("name") in names:
            continue
        same_axes = set(entry.get("axes") or {}) == axes
        (kept if same_axes else dropped).append(entry)
    if dropped:
        warnings.warn(
            f"{out}: {len(dropped)} run(s) of an earlier sweep in this folder are on other axes "
            f"than this one ({', '.join(e.get('name', '?') for e in dropped[:3])}"
            f"{', ...' if len(dropped) > 3 else ''}; this sweep's axes: {sorted(axes)}): they "
            "are no longer in its plan.json, and the report leaves them out. Write sweeps on "
            "other axes to another --out.", ThermoWarning, stacklevel=user_stacklevel())
    return kept


def write_plan(cfg: SweepConfig, out: str | Path, run_here: RunHere | None = None
               ) -> SweepPlan:
    """Check ``cfg`` against a sweep already in ``out`` (:func:`check_sweep_folder`), then
    write ``sweep.json`` and ``plan.json``; the plan of ``cfg``'s runs (``run_here``: the
    runner, for runs in this process). ``plan.json`` lists the sweep's runs: ``cfg``'s, and
    those of earlier sweeps in ``out`` on the same axes (the report reads these runs only).

    Raises:
        SweepSettingsError: ``out`` holds a sweep made with other measurement settings, or
            an unreadable ``sweep.json``.
    """
    out = Path(out).resolve()
    check_sweep_folder(cfg, out)  # refuse before anything is made or rewritten
    out.mkdir(parents=True, exist_ok=True)
    sweep_file = out / SWEEP_FILE
    specs = cfg.runs()
    plan = _plan(out, specs, run_here)
    entries = [{**spec.as_dict(), "axes": spec.axes(), "command": list(run.command)}
               for spec, run in zip(specs, plan.runs, strict=True)]
    entries += _earlier_entries(out, {run.name for run in plan.runs}, set(specs[0].axes()))
    _write_atomic(sweep_file, json.dumps(dataclasses.asdict(cfg), indent=2, default=str))
    _write_atomic(out / PLAN_FILE, json.dumps({"config": str(sweep_file), "runs": entries},
                                              indent=2, default=str))
    return plan


def runs_before(cfg: SweepConfig, out: Path) -> tuple[set[str], set[str]]:
    """The names of ``cfg``'s runs already done in ``out`` (a sweep skips them), and of those
    begun and not done (it resumes or retries them)."""
    names = [spec.name for spec in cfg.runs()]
    done = {name for name in names if run_done(out / name)}
    return done, {name for name in names if name not in done and (out / name / RUN_FILE).exists()}


def planned_spec(out: str | Path, name: str) -> RunSpec | None:
    """The run ``name`` as ``out``'s ``plan.json`` lists it (``None``: not there, or no
    readable plan). A sweep extended with more learning rates keeps the earlier runs in its
    plan while its ``sweep.json`` holds the latest settings' learning rates: the plan is the
    list of the folder's runs."""
    entry = next((e for e in _plan_entries(Path(out))
                  if isinstance(e, dict) and e.get("name") == name), None)
    try:
        return None if entry is None else RunSpec.from_dict(entry)
    except (ValueError, KeyError, TypeError):  # a hand-edited entry: not a run
        return None


def read_plan(out: str | Path) -> SweepPlan:
    """The plan :func:`write_plan` left in ``out`` (its commands as they were written)."""
    out = Path(out).resolve()
    data = json.loads((out / PLAN_FILE).read_text())
    runs = tuple(PlannedRun(r["name"], r.get("axes") or RunSpec.from_dict(r).axes(),
                            tuple(r.get("command") or run_command(out, RunSpec.from_dict(r))))
                 for r in data["runs"])
    return SweepPlan(out, runs)

