"""What every launcher shares: the plan it is handed, the :class:`Launcher` protocol, a handle
per started run (:class:`RunHandle`) and the one loop that watches them (:func:`watch`).

A launcher never builds, trains or reads a run itself: it is handed a :class:`SweepPlan`
whose entries carry the command that runs each (a ``thermo-lightning sweep-run`` process)
and, for runs in this process, the runner as a callable (:attr:`SweepPlan.run_here`). So this
package imports neither the runner nor Lightning.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from thermo_lightning.launch.progress import progress_summary, warnings_in
from thermo_lightning.runs.layout import run_log
from thermo_lightning.runs.record import run_done

__all__ = ["Launcher", "LauncherError", "PlannedRun", "RunHandle", "RunInterrupted",
           "RunSkipped", "SweepPlan", "interrupted_by_user", "signal_label", "watch"]

#: ``(run name, progress) -> None``: train one run of the plan in this process
RunHere = Callable[[str, "Callable[[str], Any] | None"], None]


class LauncherError(RuntimeError):
    """A launcher cannot start the sweep where it was asked to (a cluster that does not
    answer, resources it does not have): one line that says what to do; no run started."""


class RunSkipped(RuntimeError):
    """The runner left a run to another process (its lock is held): said, not a failure."""


class RunInterrupted(Exception):
    """A signal stopped the run trained in this process (``signum``: SIGTERM, or SIGINT for a
    Ctrl-C); the sweep stops (and resumes when run again)."""

    def __init__(self, name: str, signum: int = signal.SIGTERM) -> None:
        super().__init__(name)
        self.name, self.signum = name, int(signum)


def count_runs(n: int) -> str:
    """``1 run``, ``2 runs``: a count of runs in a message."""
    return f"{n} run" if n == 1 else f"{n} runs"


def signal_label(signum: int) -> str:
    """How a stop is said: ``Ctrl-C`` for SIGINT, else the signal's name (``SIGTERM``)."""
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def interrupted_by_user(err: BaseException) -> bool:
    """Whether ``err`` is a Ctrl-C: a ``KeyboardInterrupt``, or the ``SystemExit`` Lightning
    raises while it handles one (its graceful shutdown ends in ``sys.exit(1)``)."""
    return isinstance(err, KeyboardInterrupt) or (
        isinstance(err, SystemExit) and isinstance(err.__context__, KeyboardInterrupt))


@dataclass(frozen=True)
class PlannedRun:
    """One run of a plan.

    Attributes:
        name: its folder in the sweep's folder (:func:`~thermo_lightning.runs.layout.
            run_dir_name`).
        axes: its values on the sweep's axes.
        command: the command that trains (or resumes, or skips when done) it.
    """

    name: str
    axes: Mapping[str, Any]
    command: tuple[str, ...]


@dataclass(frozen=True)
class SweepPlan:
    """The runs of a sweep and how to run each.

    Attributes:
        out: the sweep's folder (shared by every worker).
        runs: the runs, in order.
        run_here: the runner, for a launcher that trains runs in this process (``None``:
            only through their commands).
    """

    out: Path
    runs: tuple[PlannedRun, ...]
    run_here: RunHere | None = None

    def log(self, name: str) -> Path:
        """Where a worker writes the output of the run ``name``."""
        return run_log(self.out, name)

    def pending(self) -> list[PlannedRun]:
        """The runs not done yet (their record's status is not ``done``, or unreadable)."""
        return [run for run in self.runs if not run_done(self.out / run.name)]


@runtime_checkable
class Launcher(Protocol):
    """Runs the runs of a :class:`SweepPlan` somewhere; returns one message per run that
    failed (an empty list: every run is done)."""

    def launch(self, plan: SweepPlan, *, progress: bool = True) -> list[str]: ...


@runtime_checkable
class RunHandle(Protocol):
    """A started run, as its launcher sees it."""

    def done(self) -> bool:
        """Whether it has ended (well or not)."""
        ...

    def running(self) -> bool:
        """Whether it has started and not ended (its log says where it is)."""
        ...

    def failure(self) -> str | None:
        """Once done: why it failed (its exit code, the error), ``None`` when it did not."""
        ...


def watch(plan: SweepPlan, handles: Mapping[str, RunHandle], *, desc: str = "sweep",
          progress: bool = True, poll: float = 0.2) -> list[str]:
    """Follow ``handles`` (by run name) until every one is done: a progress bar over runs
    whose line says where the running ones are (their logs' last progress lines), each
    finished run's warnings on the console, and the failures (returned, in the order they
    happened)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(handles), desc=desc, unit="run", disable=not progress)
    failures: list[str] = []
    pending = dict(handles)
    try:
        while pending:
            for name, handle in list(pending.items()):
                if not handle.done():
                    continue
                del pending[name]
                bar.update()
                for message in warnings_in(plan.log(name)):
                    bar.write(f"{name}: {message}")  # the worker's warnings, on the console
                failure = handle.failure()
                if failure is not None:
                    failures.append(f"{name}: {failure}")
            if progress:
                running = [plan.log(n) for n, h in pending.items() if h.running()]
                bar.set_postfix_str(progress_summary(running), refresh=True)
            if pending:
                time.sleep(poll)
    finally:
        bar.close()
    return failures
