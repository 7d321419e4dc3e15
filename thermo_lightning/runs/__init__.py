"""The run folder's contract, in one place: where every file lies (:mod:`.layout`), what a
run's ``run.json`` holds and how older files are upgraded (:mod:`.record`), and how a run is
read back (:mod:`.read`). Imports neither torch nor Lightning: the sweep's runner writes
through it, launchers and the report read through it. (:mod:`.read` loads pandas: its names
load on first use, so that the command line's ``--help`` stays light.)"""

from __future__ import annotations

from thermo_lightning._lazy import lazy_exports
from thermo_lightning.runs.layout import (
    RunSpec,
    find_runs,
    parse_run_dir_name,
    run_dir_name,
    run_event_folder,
)
from thermo_lightning.runs.record import RunRecord, RunStatus

__all__ = [
    "RunData",
    "RunRecord",
    "RunSpec",
    "RunStatus",
    "find_runs",
    "parse_run_dir_name",
    "read_run",
    "run_dir_name",
    "run_event_folder",
]


__getattr__, __dir__ = lazy_exports(
    __name__, dict.fromkeys(("RunData", "read_run"), "thermo_lightning.runs.read"), globals())
