"""Where everything of a run and a sweep lies: every file name, a run's folder name and its
inverse, finding the runs under a folder, and a run's own TensorBoard folder.

A sweep's folder (``OUT``)::

    OUT/sweep.json              the sweep's settings (SweepConfig)
    OUT/plan.json               one entry per run: name, axes, the command that runs it
    OUT/<run>.log               a worker's output (progress lines, warnings)
    OUT/<run>/run.json          the run's record (:class:`~thermo_lightning.runs.record.RunRecord`)
    OUT/<run>/history.csv       the meter's table: a ``step`` column, one column per key
    OUT/<run>/run.lock          held while a process trains the run
    OUT/<run>/checkpoints/last.ckpt
    OUT/<run>/tensorboard/      its TensorBoard events (and the report's ``*.thermo_report``)
    OUT/<run>/csv/version_N/    its CSV logs (a new version per resume)
    OUT/report/                 the report (``temperature.csv``, ``runs.csv``, ...)

``<run>`` is :func:`run_dir_name`: ``lr=1.00e-02`` and its other axes,
``lr=1.00e-02,batch_size=64,seed=1``. Lightning's own ``lightning_logs/version_N`` folders
are runs too (one each). Pure: no torch, no Lightning.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKPOINT_DIR",
    "CSV_DIR",
    "EVENTS_PREFIX",
    "HISTORY_FILE",
    "LAST_CHECKPOINT",
    "LOCK_FILE",
    "PLAN_FILE",
    "REPORT_DIR",
    "RUNS_TABLE",
    "RUN_FILE",
    "SLURM_DIR",
    "SWEEP_FILE",
    "TEMPERATURE_TABLE",
    "TENSORBOARD_DIR",
    "WRITEBACK_FILE",
    "WRITEBACK_SUFFIX",
    "RunSpec",
    "find_runs",
    "is_report",
    "last_checkpoint",
    "lr_from_name",
    "parse_run_dir_name",
    "run_dir_name",
    "run_event_folder",
    "run_log",
    "value_text",
]

RUN_FILE = "run.json"  #: a run's record
HISTORY_FILE = "history.csv"  #: the meter's table of a run
LOCK_FILE = "run.lock"  #: held while a process trains the run
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
TENSORBOARD_DIR = "tensorboard"  #: a sweep run's TensorBoard folder
CSV_DIR = "csv"  #: a sweep run's CSV logs (``csv/version_N``)
METRICS_FILE = "metrics.csv"  #: Lightning's CSV log
HPARAMS_FILE = "hparams.yaml"  #: Lightning's hyperparameters
EVENTS_PREFIX = "events.out.tfevents"  #: TensorBoard event files
#: file-name suffix of the event files the report writes into a run's folder
WRITEBACK_SUFFIX = ".thermo_report"
#: the one event file a report writes into a run's TensorBoard folder (a later report
#: replaces it); its "timestamp" sorts it after the run's own files, which TensorBoard reads
#: first
WRITEBACK_FILE = EVENTS_PREFIX + ".9999999999.report" + WRITEBACK_SUFFIX
SWEEP_FILE = "sweep.json"  #: a sweep's settings
PLAN_FILE = "plan.json"  #: a sweep's runs and their commands
SLURM_DIR = "slurm"  #: submitit's job folders
REPORT_DIR = "report"  #: the report's default folder inside the sweep's
RUNS_TABLE = "runs.csv"  #: the report's table of runs
TEMPERATURE_TABLE = "temperature.csv"  #: the report's T(eta)


def run_log(out: Path, name: str) -> Path:
    """Where a worker writes the output of the run ``name`` of the sweep in ``out``."""
    return out / f"{name}.log"


def last_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a run resumes from."""
    return run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT


# ------------------------------------------------------------------------------ names
def value_text(value: Any) -> str:
    """An axis value as written in a run's folder name: integers and strings as they are,
    floats in their shortest exact form (``0.0001`` -> ``1e-04``), booleans and ``None`` in
    lower case.

    Raises:
        ValueError: a string that cannot name a folder (empty, or holding ``/ , = \\`` or
            spaces).
    """
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value)) + ".0"
        for digits in range(1, 17):
            text = f"{value:.{digits}g}"
            if float(text) == value:
                return text
        return repr(value)
    text = str(value)
    if any(c in text for c in "/,=\\ ") or not text:
        raise ValueError(f"a grid value must not be empty or hold '/', ',', '=', '\\' or "
                         f"spaces (it names a folder), got {value!r}.")
    return text


def run_dir_name(lr: float, seed: int | None = None,
                 values: dict[str, Any] | None = None) -> str:
    """Folder name of the run at ``lr``: ``lr=1.00e-02`` (three significant digits, as the
    sweep's log-spaced grid makes them), with as many more digits as ``lr`` needs to be told
    apart from any other learning rate (``lr=1.0001e-02``); then its other axis ``values``
    (``,batch_size=64``) and ``,seed=3`` for one seed of a sweep over ``seeds``.

    Example:
        >>> run_dir_name(0.01, 3, {"batch_size": 64})
        'lr=1.00e-02,batch_size=64,seed=3'
    """
    suffix = "".join(f",{k}={value_text(v)}" for k, v in (values or {}).items())
    suffix += "" if seed is None else f",seed={seed}"
    for digits in range(2, 17):
        name = f"{lr:.{digits}e}"
        if float(name) == lr:
            return f"lr={name}{suffix}"
    return f"lr={lr!r}{suffix}"


def _parse_value(text: str) -> Any:
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    if text == "none":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def parse_run_dir_name(name: str) -> dict[str, Any] | None:
    """The inverse of :func:`run_dir_name`: ``{"lr": ..., <axes>..., "seed": ...}`` from a
    folder name it wrote (numbers as numbers), ``None`` for any other name.

    Example:
        >>> parse_run_dir_name("lr=1.00e-02,batch_size=64,seed=3")
        {'lr': 0.01, 'batch_size': 64, 'seed': 3}
    """
    parts = name.split(",")
    axes: dict[str, Any] = {}
    for part in parts:
        key, sep, text = part.partition("=")
        if not sep or not key or not text or key in axes:
            return None
        axes[key] = _parse_value(text)
    lr = axes.get("lr")
    if not parts[0].startswith("lr=") or isinstance(lr, bool) or not isinstance(
            lr, int | float) or not math.isfinite(lr):
        return None
    axes["lr"] = float(lr)
    if "seed" in axes and (parts[-1].split("=")[0] != "seed"
                           or not isinstance(axes["seed"], int)):
        return None
    return axes


def lr_from_name(name: str) -> float | None:
    """A learning rate in a folder's name: :func:`parse_run_dir_name`'s, else any
    ``lr=0.01``, ``lr_0.01`` or ``lr0.01`` in it (older and hand-made folders)."""
    parsed = parse_run_dir_name(name)
    if parsed is not None:
        return parsed["lr"]
    m = re.search(r"lr[=_]?([0-9.]+(?:e[-+]?[0-9]+)?)", name)
    if not m:
        return None
    try:
        return float(m.group(1))
    except ValueError:  # "lr=1.2.3"
        return None


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: where it lies (:attr:`name`) and its values on the sweep's axes.

    Attributes:
        lr: its learning rate.
        seed: its seed when the sweep runs ``seeds`` (``None``: the sweep's ``seed``).
        values: its values on the other ``grid`` axes, ``((axis, value), ...)`` in the grid's
            order.
    """

    lr: float
    seed: int | None = None
    values: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        """Its folder: ``lr=1.00e-02``, ``lr=1.00e-02,batch_size=64,seed=1``."""
        return run_dir_name(self.lr, self.seed, dict(self.values))

    def axes(self) -> dict[str, Any]:
        """``{"lr": ..., <grid axes>..., "seed": ...}`` (``seed`` only with ``seeds``)."""
        out: dict[str, Any] = {"lr": self.lr, **dict(self.values)}
        if self.seed is not None:
            out["seed"] = self.seed
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "lr": self.lr, "seed": self.seed,
                "values": dict(self.values)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSpec:
        return cls(float(values["lr"]), values.get("seed"),
                   tuple((values.get("values") or {}).items()))


# ------------------------------------------------------------------------------ finding
def is_report(folder: Path) -> bool:
    """Whether ``folder`` holds a report (its tables; a report is never a run)."""
    return (folder / RUNS_TABLE).is_file() and (folder / TEMPERATURE_TABLE).is_file()


def is_writeback(path: Path) -> bool:
    """Whether ``path`` is an event file a report wrote into a run's folder."""
    return path.name.endswith(WRITEBACK_SUFFIX)


def find_runs(logdir: str | Path) -> list[Path]:
    """Run folders under ``logdir``: folders holding ``run.json``, ``history.csv``, a
    TensorBoard event file or a ``metrics.csv`` (the outermost such folder per run; a
    sweep run's logger folders belong to it; a report is not a run).

    Raises:
        FileNotFoundError: ``logdir`` is not a folder.
    """
    root = Path(logdir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of runs.")
    marks = {RUN_FILE, HISTORY_FILE, METRICS_FILE}
    found: set[Path] = set()
    for path in root.rglob("*"):
        if path.is_file() and (path.name in marks or path.name.startswith(EVENTS_PREFIX)):
            run = path.parent
            # a sweep run's logger folders (lr=.../tensorboard, lr=.../csv/version_N) belong
            # to it; a Lightning version_N folder anywhere else is a run of its own
            if re.fullmatch(r"version_\d+", run.name) and run.parent.name == CSV_DIR \
                    and run != root:
                run = run.parent
            while run.name in (TENSORBOARD_DIR, CSV_DIR) and run != root:
                run = run.parent
            found.add(run)
    # a report written inside the log folder (its own TensorBoard events) is not a run; runs
    # in other folders below a folder that holds a report's tables still are
    found = {p for p in found if not is_report(p)}
    # keep the outermost folder of nested candidates
    return sorted(p for p in found if not any(q != p and q in p.parents for q in found))


def _own_events(folder: Path) -> bool:
    return any(not is_writeback(p) for p in folder.glob(EVENTS_PREFIX + "*"))


def run_event_folder(path: Path) -> Path | None:
    """The folder holding a run's own TensorBoard event files: ``path/tensorboard`` for a
    sweep's run, ``path`` for Lightning's ``version_N`` folders, else the first folder under
    ``path`` with events (``None``: the run has no TensorBoard log)."""
    for folder in (path / TENSORBOARD_DIR, path):
        if folder.is_dir() and _own_events(folder):
            return folder
    for events in sorted(path.rglob(EVENTS_PREFIX + "*")):
        if not is_writeback(events) and CSV_DIR not in events.relative_to(path).parts:
            return events.parent
    return None
