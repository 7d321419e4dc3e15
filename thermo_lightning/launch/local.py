"""Runs on this machine: one after the other in this process, or in parallel worker
processes (one ``sweep-run`` command each, one GPU each where there are GPUs)."""

from __future__ import annotations

import concurrent.futures
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from thermo_lightning._warnings import warn as user_warn
from thermo_lightning.launch.base import (
    PlannedRun,
    RunInterrupted,
    RunSkipped,
    SweepPlan,
    count_runs,
    signal_label,
    watch,
)
from thermo_lightning.runs.record import RunRecord, RunStatus

__all__ = ["LocalLauncher", "stop_with_parent"]

#: seconds the children get to end by themselves on a Ctrl-C (a terminal's reaches them too)
#: before it is passed on to them
_CTRL_C_GRACE = 5.0


@dataclass
class LocalLauncher:
    """Processes on this machine: one after the other in this process (``workers=1``), or
    ``workers`` ``sweep-run`` child processes at a time (one GPU each when there are GPUs).
    Children stop when this process ends; SIGTERM to this process is passed on to them and
    ends the sweep with status 143, a Ctrl-C (SIGINT) with 130, and their runs say which
    (running it again resumes).

    Attributes:
        workers: runs at a time.
    """

    workers: int = field(default=1, metadata={
        "flag": "--workers", "type": int, "help": "runs in parallel processes"})

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) \
                or self.workers < 1:
            raise ValueError(f"`workers` must be a positive integer, got {self.workers!r}.")

    def launch(self, plan: SweepPlan, *, progress: bool = True) -> list[str]:
        if self.workers <= 1 and plan.run_here is not None:
            return _run_here(plan, progress)
        return _run_parallel(plan, max(1, self.workers), progress)


def _run_here(plan: SweepPlan, progress: bool) -> list[str]:
    """The plan's runs in this process, one after the other; the failures (a run that fails
    does not stop the others)."""
    from tqdm.auto import tqdm

    assert plan.run_here is not None, "checked by LocalLauncher.launch"
    runs = list(plan.runs)
    bar = tqdm(total=len(runs), desc="sweep", unit="run", disable=not progress)
    failures: list[str] = []
    elsewhere: list[str] = []
    for i, run in enumerate(runs):
        try:
            plan.run_here(run.name, bar.set_postfix_str if progress else None)
        except RunInterrupted as err:
            bar.close()
            print(f"sweep stopped by {signal_label(err.signum)} during {run.name} (interrupted); "
                  f"{count_runs(len(runs) - i - 1)} not started. Run the same command again to "
                  "resume.", file=sys.stderr)
            raise SystemExit(128 + err.signum) from None
        except RunSkipped as err:
            elsewhere.append(str(err))
        except Exception as err:  # keep going; report at the end
            failures.append(f"{run.name}: {type(err).__name__}: {err}")
        bar.update()
    bar.close()
    for message in elsewhere:
        user_warn(message)
    return failures


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@dataclass
class _ChildHandle:
    """A run in a child process, started by a scheduling thread when a worker slot frees."""

    future: concurrent.futures.Future[int]
    log: str
    started: threading.Event

    def done(self) -> bool:
        return self.future.done()

    def running(self) -> bool:
        return self.started.is_set() and not self.future.done()

    def failure(self) -> str | None:
        code = self.future.result()
        return None if code == 0 else f"exit code {code} (see {self.log})"


def _run_parallel(plan: SweepPlan, workers: int, progress: bool) -> list[str]:
    """Each run in a ``sweep-run`` child process, at most ``workers`` at a time.

    A ``ThreadPoolExecutor`` schedules them: each of its threads starts one child and waits
    for it. Not a ``ProcessPoolExecutor``: a run must be its own process, started with its own
    environment (its GPU, its thread count) before torch is imported, with its own log, and
    stoppable alone; pool processes are reused and cannot be signalled one task at a time.
    """
    gpus = _gpu_count()
    free_gpus: queue.SimpleQueue[int] = queue.SimpleQueue()
    for device in range(gpus):
        for _ in range(-(-workers // gpus)):  # runs share the GPUs evenly
            free_gpus.put(device)
    running: dict[str, subprocess.Popen] = {}  # by run folder name
    pids: dict[str, int] = {}  # every child started, by run folder name (kept when it ends)
    lock = threading.Lock()
    stopping = threading.Event()

    def run_child(run: PlannedRun, started: threading.Event) -> int:
        if stopping.is_set():
            return -signal.SIGTERM
        env = dict(os.environ)
        device = free_gpus.get() if gpus else None
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(device)
        elif "OMP_NUM_THREADS" not in os.environ:
            # CPU runs share the cores: oversubscribed threads slow every run down
            # (two 2-thread runs on 2 cores: several times slower than one each)
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
        cmd = [*run.command, "--parent-pid", str(os.getpid())]
        try:
            with open(plan.log(run.name), "w") as log, lock:
                if stopping.is_set():
                    return -signal.SIGTERM
                proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
                running[run.name] = proc
                pids[run.name] = proc.pid
                started.set()
            return proc.wait()
        finally:
            with lock:
                running.pop(run.name, None)
            if device is not None:
                free_gpus.put(device)

    def terminate_children(signum: int = signal.SIGTERM, grace: float = 0.0
                           ) -> dict[str, subprocess.Popen]:
        """Stop the running children with ``signum``; those that end within ``grace`` seconds
        by themselves (a Ctrl-C in a terminal reaches them too) are not signalled again.
        Returns the children stopped, by run name."""
        stopping.set()
        with lock:
            stopped = dict(running)
        procs = list(stopped.values())
        deadline = time.monotonic() + grace
        while grace and time.monotonic() < deadline and any(p.poll() is None for p in procs):
            time.sleep(0.1)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        return stopped

    handles: dict[str, _ChildHandle] = {}

    def say_stopped(signum: int, stopped: dict[str, subprocess.Popen]) -> None:
        # every run not finished before the signal, from the records: a child stopped before
        # its run began (still importing, say; or killed by a terminal's Ctrl-C before this
        # handler ran) did not start it: its record is not its own (another process id, or
        # none); one stopped as it exited after its run's last step finished it
        began = finished = not_started = 0
        for name, handle in handles.items():
            if not handle.started.is_set():
                not_started += 1
                continue
            ended = handle.done() and name not in stopped
            if ended and handle.future.exception() is None and handle.future.result() == 0:
                continue  # finished before the signal
            record = _record(plan, name)
            if record is None or record.pid != pids.get(name):
                not_started += 1
            elif record.done:
                finished += 1
            elif not (ended and record.status == RunStatus.FAILED.value):
                began += 1  # (a failure before the signal is the summary's to say)
        done = f", {count_runs(finished)} finished as it stopped" if finished else ""
        print(f"sweep stopped by {signal_label(signum)}; {count_runs(began)} interrupted{done}, "
              f"{not_started} not started. Run the same command again to resume.",
              file=sys.stderr)

    def stop(signum: int, frame: Any) -> None:
        stopping.set()  # first: a worker slot freed now starts nothing
        say_stopped(signum, terminate_children())
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                 thread_name_prefix="sweep-run")
    try:
        for run in plan.runs:
            started = threading.Event()
            handles[run.name] = _ChildHandle(pool.submit(run_child, run, started),
                                             str(plan.log(run.name)), started)
        return watch(plan, handles, desc="sweep", progress=progress)
    except KeyboardInterrupt:  # Ctrl-C: the children (same process group) stop too; those
        # that did not get it (a SIGINT to this process alone) get it from here, and say Ctrl-C
        stopping.set()  # first: the slot of a child the Ctrl-C ended starts no other run
        say_stopped(signal.SIGINT, terminate_children(signal.SIGINT, grace=_CTRL_C_GRACE))
        raise SystemExit(128 + signal.SIGINT) from None
    except BaseException:
        terminate_children()  # an error here: no orphan keeps training
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        signal.signal(signal.SIGTERM, previous)


def _record(plan: SweepPlan, name: str) -> RunRecord | None:
    """The run's record (its ``pid``: the process that last began training it); ``None``
    when it has none or it cannot be read."""
    try:
        return RunRecord.read(plan.out / name)
    except (OSError, ValueError):  # unreadable: not this child's
        return None


def stop_with_parent(parent_pid: int, poll: float = 1.0) -> None:
    """Make this process (a sweep worker) stop when ``parent_pid`` ends, however it ends:
    on Linux the kernel sends SIGTERM at the parent's death (``PR_SET_PDEATHSIG``); everywhere
    a daemon thread also sends it when the parent is gone. SIGTERM then interrupts the run
    through Lightning, which marks it ``interrupted``."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl
            pass

    def watch_parent() -> None:
        while True:
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(poll)

    if os.getppid() != parent_pid:  # the parent died before we got here
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=watch_parent, name="stop-with-parent", daemon=True).start()
