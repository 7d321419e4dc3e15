"""Where a sweep's runs execute: one :class:`Launcher` protocol, three launchers.

A sweep is planned first (``OUT/sweep.json``, ``OUT/plan.json``: one entry per run with its
folder name, its axis values and the command that runs it, ``thermo-lightning sweep-run
--config OUT/sweep.json --run NAME --out OUT``). Every launcher executes that same unit, on
its own engine, and follows the runs with one loop (:func:`~.base.watch`):

- :class:`LocalLauncher`: processes on this machine (``--workers``), with progress;
- :class:`RayLauncher`: one Ray task per run on a Ray cluster (an existing one, or a local
  one), with the CPUs and GPUs a run asks for; a task whose worker or node is lost is retried,
  and the run resumes from its last checkpoint;
- :class:`SlurmLauncher`: one SLURM job array through submitit, one array task per run
  (partition, time, GPUs and other options); a preempted task is requeued and resumes.

The unit is resumable (a finished run is skipped, an interrupted one resumes from
``checkpoints/last.ckpt``) and takes an exclusive lock on its ``run.lock`` while it trains,
so two launchers never train one run at the same time. The results land in the sweep's
folder, which must be on a filesystem the workers share.

This package imports neither the runner nor Lightning (a launcher is handed the commands and,
for runs in this process, the runner as a callable); Ray and submitit are optional (extras
``ray`` and ``slurm``) and imported only by the launcher that needs them. Each launcher's
command-line flags are derived from its dataclass fields (:func:`launcher_flags`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from thermo_lightning.launch.base import (
    Launcher,
    LauncherError,
    PlannedRun,
    RunHandle,
    RunInterrupted,
    RunSkipped,
    SweepPlan,
    watch,
)
from thermo_lightning.launch.local import LocalLauncher, stop_with_parent
from thermo_lightning.launch.progress import throttled
from thermo_lightning.launch.ray_launcher import RayLauncher
from thermo_lightning.launch.slurm_launcher import SlurmLauncher

__all__ = [
    "LAUNCHERS",
    "Launcher",
    "LauncherError",
    "LocalLauncher",
    "PlannedRun",
    "RayLauncher",
    "RunHandle",
    "RunInterrupted",
    "RunSkipped",
    "SlurmLauncher",
    "SweepPlan",
    "launcher_flags",
    "launcher_options",
    "stop_with_parent",
    "throttled",
    "watch",
]

#: the launchers by ``--launcher`` name
LAUNCHERS: dict[str, type] = {"local": LocalLauncher, "ray": RayLauncher,
                              "slurm": SlurmLauncher}


def _dest(flag: str) -> str:
    return "launcher_" + flag.lstrip("-").replace("-", "_")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) \
        else str(value)


def launcher_flags() -> list[tuple[str, dict[str, Any]]]:
    """The command line's launcher flags, from the launchers' fields (those with a
    ``"flag"`` in their metadata): ``[(flag, argparse keyword arguments), ...]``. A flag two
    launchers share (``--cpus-per-run``) is one flag; its help names the launchers. Every
    flag defaults to ``None`` (not given), so that a config file's ``launcher:`` section can
    set what the command line leaves out; the help shows the launcher's own default (an
    empty or ``None`` default is said in the help text itself)."""
    found: dict[str, list[tuple[str, dataclasses.Field]]] = {}
    for name, cls in LAUNCHERS.items():
        for f in dataclasses.fields(cls):
            if "flag" in f.metadata:
                found.setdefault(f.metadata["flag"], []).append((name, f))
    out = []
    for flag, users in found.items():
        meta = users[0][1].metadata
        names = "/".join(n for n, _ in users)
        kwargs: dict[str, Any] = {"dest": _dest(flag), "default": None}
        action = meta.get("action", "store")
        if action in ("store_true", "store_false"):
            kwargs.update(action="store_const", const=action == "store_true")
        else:
            kwargs["action"] = action
            kwargs.update({k: meta[k] for k in ("type", "choices") if k in meta})
            if "choices" not in meta:
                kwargs["metavar"] = meta.get("metavar", users[0][1].name.upper())
        defaults = {_shown(_default(f)) for _, f in users if _default(f) not in (None, {}, ())}
        shown = f" (default: {defaults.pop()})" if len(defaults) == 1 and action != "store_false" \
            else ""
        kwargs["help"] = f"{names}: {meta['help']}{shown}"
        out.append((flag, kwargs))
    return out


def launcher_options(cls: type, values: Any) -> dict[str, Any]:
    """The options of launcher ``cls`` given on the command line (``values``: argparse's
    namespace; flags not given are left out)."""
    options = {}
    for f in dataclasses.fields(cls):
        if "flag" in f.metadata:
            value = getattr(values, _dest(f.metadata["flag"]), None)
            if value is not None:
                options[f.name] = value
    return options
