"""A sweep planned before it runs: ``OUT/sweep.json`` (its settings) and ``OUT/plan.json``
(one entry per run: its folder name, its axis values and the command that trains it), checked
against a sweep already in ``OUT``. Every launcher executes the plan's commands."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from thermo_lightning.launch.base import PlannedRun, RunHere, SweepPlan
from thermo_lightning.runs.layout import PLAN_FILE, SWEEP_FILE, RunSpec
from thermo_lightning.sweep.config import NOT_MEASUREMENT, SweepConfig
from thermo_lightning.sweep.errors import SweepSettingsError

__all__ = ["read_plan", "run_command", "settings_diff", "write_plan"]


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


def write_plan(cfg: SweepConfig, out: str | Path, run_here: RunHere | None = None
               ) -> SweepPlan:
    """Check ``cfg`` against a sweep already in ``out``, then write ``sweep.json`` and
    ``plan.json``; the plan (``run_here``: the runner, for runs in this process).

    Raises:
        SweepSettingsError: ``out`` holds a sweep made with other measurement settings, or
            an unreadable ``sweep.json``.
    """
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    sweep_file = out / SWEEP_FILE
    if sweep_file.exists():  # refuse before anything is rewritten
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
                "another --out, or delete the folder to redo it."
            )
    _write_atomic(sweep_file, json.dumps(dataclasses.asdict(cfg), indent=2, default=str))
    specs = cfg.runs()
    plan = _plan(out, specs, run_here)
    entries = [{**spec.as_dict(), "axes": spec.axes(), "command": list(run.command)}
               for spec, run in zip(specs, plan.runs, strict=True)]
    _write_atomic(out / PLAN_FILE, json.dumps({"config": str(sweep_file), "runs": entries},
                                              indent=2, default=str))
    return plan


def read_plan(out: str | Path) -> SweepPlan:
    """The plan :func:`write_plan` left in ``out`` (its commands as they were written)."""
    out = Path(out).resolve()
    data = json.loads((out / PLAN_FILE).read_text())
    runs = tuple(PlannedRun(r["name"], r.get("axes") or RunSpec.from_dict(r).axes(),
                            tuple(r.get("command") or run_command(out, RunSpec.from_dict(r))))
                 for r in data["runs"])
    return SweepPlan(out, runs)
