"""The sweep as one SLURM job array through submitit, one array task per run (partition,
time, GPUs and other options); a preempted or timed-out task is requeued and the run resumes
from its last checkpoint. submitit is optional (the ``slurm`` extra) and imported only when
this launcher runs."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from thermo_lightning.launch.base import LauncherError, SweepPlan, signal_label, watch
from thermo_lightning.launch.worker import run_command
from thermo_lightning.runs.layout import SLURM_DIR
from thermo_lightning.runs.record import RunRecord, RunStatus

__all__ = ["SlurmLauncher"]


class _SlurmTask:
    """One array task: run one ``sweep-run`` command. On preemption or timeout submitit
    calls :meth:`checkpoint`, which requeues the same task; the run resumes from its last
    checkpoint."""

    def __init__(self, command: Sequence[str], log: str) -> None:
        self.command, self.log = list(command), log

    def __call__(self) -> int:
        code = run_command(self.command, self.log)
        if code != 0:
            raise RuntimeError(f"sweep-run exited with {code} (see {self.log})")
        return code

    def checkpoint(self) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(_SlurmTask(self.command, self.log))


@dataclass
class _JobHandle:
    job: Any

    def done(self) -> bool:
        return bool(self.job.done())

    def running(self) -> bool:
        return not self.done()

    def failure(self) -> str | None:
        try:
            self.job.result()
        except Exception as err:
            return f"{type(err).__name__}: {str(err).strip().splitlines()[-1][:300]}"
        return None


@dataclass
class SlurmLauncher:
    """The sweep as one SLURM job array through submitit, one array task per run.

    Attributes:
        partition, time_min, gpus_per_run, cpus_per_run, mem: the array task's resources
            (``mem`` as SLURM writes it: ``16G``).
        array_parallelism: array tasks running at once.
        extra: more ``#SBATCH`` options (``{"account": "proj", "qos": "high"}``).
        setup: shell lines run before each task (``module load ...``, activating an
            environment).
        executor: ``"slurm"``, or ``"local"`` (submitit's local executor: real processes on
            this machine, the same code path without ``sbatch``; for tests).
        wait: wait for the array to finish (with progress) instead of returning once it is
            submitted.
    """

    partition: str | None = field(default=None, metadata={
        "flag": "--slurm-partition", "help": "partition (default: the cluster's default)"})
    time_min: int = field(default=60, metadata={
        "flag": "--slurm-time", "type": int, "help": "minutes per run"})
    gpus_per_run: int = field(default=0, metadata={
        "flag": "--gpus-per-run", "type": float, "help": "GPUs per run"})
    cpus_per_run: int = field(default=1, metadata={
        "flag": "--cpus-per-run", "type": float, "help": "CPUs per run"})
    mem: str | None = field(default=None, metadata={
        "flag": "--slurm-mem", "help": "memory per run, e.g. 16G (default: the "
                                       "cluster's default)"})
    array_parallelism: int = field(default=64, metadata={
        "flag": "--slurm-parallelism", "type": int, "help": "array tasks at once"})
    extra: Mapping[str, Any] = field(default_factory=dict, metadata={
        "flag": "--slurm-option", "action": "append", "metavar": "KEY=VALUE",
        "help": "another #SBATCH option (account=..., qos=...); repeat the flag "
                "(default: none)"})
    setup: Sequence[str] = field(default=(), metadata={
        "flag": "--slurm-setup", "action": "append", "metavar": "LINE",
        "help": "a shell line run before each task (module load ...); repeat the "
                "flag (default: none)"})
    executor: str = field(default="slurm", metadata={
        "flag": "--slurm-executor", "choices": ["slurm", "local"],
        "help": "'local' runs the array as local processes (a test)"})
    wait: bool = field(default=True, metadata={
        "flag": "--no-wait", "action": "store_false",
        "help": "return once the array is submitted"})

    def __post_init__(self) -> None:
        if isinstance(self.extra, list | tuple):  # KEY=VALUE items from the command line
            items = list(self.extra)
            bad = [o for o in items if not isinstance(o, str) or "=" not in o]
            if bad:
                raise ValueError(f"`extra` (--slurm-option) takes KEY=VALUE items, got {bad}.")
            self.extra = dict(o.split("=", 1) for o in items)

    def _parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {"time": int(self.time_min),
                                  "cpus_per_task": int(self.cpus_per_run),
                                  "array_parallelism": self.array_parallelism}
        if self.partition:
            params["partition"] = self.partition
        if self.gpus_per_run:
            params["gpus_per_node"] = int(self.gpus_per_run)
        if self.mem:
            params["mem"] = self.mem
        if self.setup:
            params["setup"] = list(self.setup)
        if self.extra:
            params["additional_parameters"] = dict(self.extra)
        return params

    def script(self, plan: SweepPlan) -> str:
        """The ``sbatch`` script of the array (what ``--dry-run`` prints), without
        submitting anything."""
        from submitit.slurm import slurm

        folder = plan.out / SLURM_DIR / "%A_%a"
        command = f"{sys.executable} -u -m submitit.core._submit {plan.out / SLURM_DIR}"
        return slurm._make_sbatch_string(command=command, folder=folder,
                                         job_name=f"thermo-{plan.out.name}",
                                         map_count=len(plan.runs), **self._parameters())

    def launch(self, plan: SweepPlan, *, progress: bool = True) -> list[str]:
        try:
            import submitit
        except ImportError as err:
            raise ImportError("--launcher slurm needs submitit: pip install "
                              "'thermo-lightning[slurm]'") from err

        folder = plan.out / SLURM_DIR / "%j"  # submitit's job folders (sbatch fills in %j)
        if self.executor == "local":
            executor: Any = submitit.LocalExecutor(folder=plan.out / SLURM_DIR)
            executor.update_parameters(timeout_min=self.time_min)
        elif self.executor == "slurm":
            try:
                executor = submitit.SlurmExecutor(folder=folder)
                executor.update_parameters(**self._parameters())
            except Exception as err:  # srun not found: not a SLURM machine
                raise _cannot_submit(err) from None
        else:
            raise ValueError(f"`executor` must be 'slurm' or 'local', got {self.executor!r}.")
        tasks = [_SlurmTask(run.command, str(plan.log(run.name))) for run in plan.runs]
        try:
            with executor.batch():
                jobs = [executor.submit(task) for task in tasks]
        except Exception as err:  # sbatch refused the array (an option, the account ...)
            raise _cannot_submit(err) from None
        ids = sorted({str(job.job_id).split("_")[0] for job in jobs})
        print(f"submitted {len(jobs)} runs as SLURM job {', '.join(ids)} "
              f"({'local executor' if self.executor == 'local' else 'sbatch'}); logs in "
              f"{plan.out / SLURM_DIR}", file=sys.stderr)
        if not self.wait:
            return []
        handles = {run.name: _JobHandle(job) for run, job in zip(plan.runs, jobs, strict=True)}
        if self.executor != "local":  # the cluster's jobs live on without this process
            return watch(plan, handles, desc="sweep (slurm)", progress=progress, poll=0.5)
        return _watch_local(plan, handles, jobs, progress)


def _cannot_submit(err: Exception) -> LauncherError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
    return LauncherError(
        f"--launcher slurm could not submit the array ({type(err).__name__}: {first}). Run "
        "the sweep on a SLURM login node, or pass --slurm-executor local to run the array as "
        "processes on this machine (--dry-run prints the sbatch script).")


def _watch_local(plan: SweepPlan, handles: dict[str, _JobHandle], jobs: list[Any],
                 progress: bool) -> list[str]:
    """:func:`watch` for the local executor, whose jobs are this process's children: a
    SIGTERM or Ctrl-C cancels them (each stops its run, marked ``interrupted``) and waits for
    them, then ends the sweep with one line; no job outlives the sweep."""
    def stop(signum: int, frame: Any) -> None:
        raise _Stopped(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return watch(plan, handles, desc="sweep (slurm)", progress=progress, poll=0.5)
    except (KeyboardInterrupt, _Stopped) as err:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal: still clean up
        signum = err.signum if isinstance(err, _Stopped) else signal.SIGINT
        live = [job for job in jobs if not job.done()]
        _stop_runs(plan)  # each run marks itself interrupted; its task then ends
        deadline = time.monotonic() + 120
        while any(not job.done() for job in live) and time.monotonic() < deadline:
            time.sleep(0.2)
        for job in live:  # a task that did not end with its run (none should)
            if not job.done():
                job.cancel(check=False)
        print(f"sweep stopped by {signal_label(signum)}; {len(live)} array tasks cancelled "
              "(their runs interrupted). Run the same command again to resume.", file=sys.stderr)
        raise SystemExit(128 + signum) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_runs(plan: SweepPlan) -> None:
    """SIGTERM to the ``sweep-run`` process of every run of ``plan`` in progress (its
    ``run.json`` names it): the run stops at its next batch, marked ``interrupted``."""
    for run in plan.runs:
        try:
            record = RunRecord.read(plan.out / run.name)
        except (OSError, ValueError):
            continue
        if record is not None and record.status == RunStatus.RUNNING.value and record.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):  # ended already
                os.kill(int(record.pid), signal.SIGTERM)


class _Stopped(Exception):
    """SIGTERM while the local executor's jobs run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
