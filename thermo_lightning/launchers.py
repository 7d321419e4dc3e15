"""Where a sweep's runs execute: one :class:`Launcher` protocol, three launchers.

A sweep is planned first (:func:`write_plan`): ``OUT/sweep.json`` holds its settings and
``OUT/plan.json`` one entry per run (its folder name, its axis values, and the command that
runs it, ``thermo-lightning sweep-run --config OUT/sweep.json --run NAME --out OUT``). Every
launcher executes that same unit, on its own engine:

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

Ray and submitit are optional (extras ``ray`` and ``slurm``); nothing imports them until a
launcher that needs them is used.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from thermo_lightning.sweep_config import RunSpec, SweepConfig

__all__ = [
    "LAUNCHERS",
    "Launcher",
    "LocalLauncher",
    "RayLauncher",
    "SlurmLauncher",
    "SweepPlan",
    "read_plan",
    "write_plan",
]

PLAN_FILE = "plan.json"
CONFIG_FILE = "sweep.json"


@dataclass(frozen=True)
class SweepPlan:
    """The runs of a sweep and how to run each.

    Attributes:
        out: the sweep's folder (shared by every worker).
        runs: the runs, in order.
    """

    out: Path
    runs: tuple[RunSpec, ...]

    @property
    def config_file(self) -> Path:
        return self.out / CONFIG_FILE

    def config(self) -> SweepConfig:
        """The sweep's settings, as written in ``sweep.json``."""
        return SweepConfig.from_dict(json.loads(self.config_file.read_text()))

    def command(self, spec: RunSpec) -> list[str]:
        """The command that trains (or resumes, or skips when done) one run."""
        return [sys.executable, "-m", "thermo_lightning.cli", "sweep-run", "--config",
                str(self.config_file), "--run", spec.name, "--out", str(self.out)]

    def log(self, spec: RunSpec) -> Path:
        """Where a worker writes the run's output."""
        return self.out / f"{spec.name}.log"

    def pending(self) -> list[RunSpec]:
        """The runs not yet done (``run.json`` status other than ``done``)."""
        out = []
        for spec in self.runs:
            info = self.out / spec.name / "run.json"
            try:
                done = json.loads(info.read_text()).get("status") == "done"
            except (OSError, ValueError):
                done = False
            if not done:
                out.append(spec)
        return out


def write_plan(cfg: SweepConfig, out: str | Path) -> SweepPlan:
    """Check ``cfg`` against a sweep already in ``out`` (``SweepSettingsError`` when its
    measurement settings differ), then write ``sweep.json`` and ``plan.json``."""
    from thermo_lightning.sweep import SweepSettingsError, _settings_diff

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    sweep_file = out / CONFIG_FILE
    if sweep_file.exists():  # refuse before anything is rewritten
        try:
            old = SweepConfig.from_dict(json.loads(sweep_file.read_text()))
        except (ValueError, TypeError) as err:
            raise SweepSettingsError(f"{sweep_file} is unreadable ({err}); write this sweep "
                                     "to another --out.") from err
        diff = _settings_diff(old.measurement_settings(), cfg.measurement_settings())
        if diff:
            raise SweepSettingsError(
                f"{out} holds a sweep made with other settings ({'; '.join(diff)}). Its "
                "finished runs would be skipped as if they matched: write this sweep to "
                "another --out, or delete the folder to redo it."
            )
    _write_atomic(sweep_file, json.dumps(dataclasses.asdict(cfg), indent=2, default=str))
    plan = SweepPlan(out, tuple(cfg.runs()))
    entries = [{**spec.as_dict(), "axes": spec.axes(), "command": plan.command(spec)}
               for spec in plan.runs]
    _write_atomic(out / PLAN_FILE, json.dumps({"config": str(sweep_file), "runs": entries},
                                              indent=2, default=str))
    return plan


def read_plan(out: str | Path) -> SweepPlan:
    """The plan :func:`write_plan` left in ``out``."""
    out = Path(out).resolve()
    data = json.loads((out / PLAN_FILE).read_text())
    return SweepPlan(out, tuple(RunSpec.from_dict(r) for r in data["runs"]))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


@runtime_checkable
class Launcher(Protocol):
    """Runs the runs of a :class:`SweepPlan` somewhere; returns one message per run that
    failed (an empty list: every run is done)."""

    def launch(self, plan: SweepPlan, *, progress: bool = True) -> list[str]: ...


@dataclass
class LocalLauncher:
    """Processes on this machine: one after the other in this process (``workers=1``), or
    ``workers`` ``sweep-run`` child processes at a time (one GPU each when there are GPUs)."""

    workers: int = 1

    def launch(self, plan: SweepPlan, *, progress: bool = True) -> list[str]:
        from thermo_lightning.sweep import _run_local

        return _run_local(plan, self.workers, progress)


def _where(plan: SweepPlan, specs: Sequence[RunSpec]) -> str:
    """The last progress line of each of ``specs`` that has one (``lr=... step n/N``)."""
    from thermo_lightning.sweep import _last_line

    return "; ".join(line for line in (_last_line(plan.log(s)) for s in specs) if line)


def _run_task(command: Sequence[str], log: str, pid_file: str | None = None) -> int:
    """A worker's job: run one ``sweep-run`` command (told to stop when this worker dies),
    its output appended to ``log``; the exit status."""
    if pid_file is not None:
        Path(pid_file).write_text(str(os.getpid()))
    with open(log, "a") as f:
        proc = subprocess.Popen([*command, "--parent-pid", str(os.getpid())], stdout=f,
                                stderr=subprocess.STDOUT)
        return proc.wait()


@dataclass
class RayLauncher:
    """One Ray task per run.

    Attributes:
        address: an existing cluster (``ray://host:10001``, ``host:6379`` or ``auto``);
            ``None`` starts a local one (``num_cpus`` CPUs).
        cpus_per_run, gpus_per_run: what each task asks the cluster for.
        max_retries: retries of a task whose worker or node is lost (the run then resumes
            from its last checkpoint).
        num_cpus: CPUs of a local cluster (``None``: all).
    """

    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_retries: int = 3
    num_cpus: int | None = None
    _pid_files: bool = field(default=False, repr=False)  # tests: where each worker is

    def launch(self, plan: SweepPlan, *, progress: bool = True) -> list[str]:
        try:
            import ray
        except ImportError as err:
            raise ImportError("--launcher ray needs Ray: pip install "
                              "'thermo-lightning[ray]'") from err
        from tqdm.auto import tqdm

        started_here = not ray.is_initialized()
        if started_here:
            kwargs: dict[str, Any] = {"address": self.address, "include_dashboard": False,
                                      "log_to_driver": False}
            if self.address is None and self.num_cpus is not None:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(**kwargs)
        task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run,
                          max_retries=self.max_retries)(_run_task)
        try:
            refs = {task.remote(plan.command(spec), str(plan.log(spec)),
                                str(plan.out / f"{spec.name}.worker") if self._pid_files
                                else None): spec for spec in plan.runs}
            bar = tqdm(total=len(refs), desc="sweep (ray)", unit="run", disable=not progress)
            failures, pending = [], list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                if progress:
                    bar.set_postfix_str(_where(plan, [refs[r] for r in pending]), refresh=True)
                for ref in done:
                    spec = refs[ref]
                    try:
                        code = ray.get(ref)
                    except Exception as err:  # retries used up: the worker kept dying
                        failures.append(f"{spec.name}: {type(err).__name__}: {err}")
                    else:
                        if code != 0:
                            failures.append(f"{spec.name}: exit code {code} (see "
                                            f"{plan.log(spec)})")
                    bar.update()
            bar.close()
            return failures
        finally:
            if started_here:
                ray.shutdown()


class _SlurmTask:
    """One array task: run one ``sweep-run`` command. On preemption or timeout submitit
    calls :meth:`checkpoint`, which requeues the same task; the run resumes from its last
    checkpoint."""

    def __init__(self, command: Sequence[str], log: str) -> None:
        self.command, self.log = list(command), log

    def __call__(self) -> int:
        code = _run_task(self.command, self.log)
        if code != 0:
            raise RuntimeError(f"sweep-run exited with {code} (see {self.log})")
        return code

    def checkpoint(self) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(_SlurmTask(self.command, self.log))


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

    partition: str | None = None
    time_min: int = 60
    gpus_per_run: int = 0
    cpus_per_run: int = 1
    mem: str | None = None
    array_parallelism: int = 64
    extra: Mapping[str, Any] = field(default_factory=dict)
    setup: Sequence[str] = ()
    executor: str = "slurm"
    wait: bool = True

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

        folder = plan.out / "slurm" / "%A_%a"
        command = (f"{sys.executable} -u -m submitit.core._submit "
                   f"{plan.out / 'slurm'}")
        return slurm._make_sbatch_string(command=command, folder=folder,
                                         job_name=f"thermo-{plan.out.name}",
                                         map_count=len(plan.runs), **self._parameters())

    def launch(self, plan: SweepPlan, *, progress: bool = True) -> list[str]:
        try:
            import submitit
        except ImportError as err:
            raise ImportError("--launcher slurm needs submitit: pip install "
                              "'thermo-lightning[slurm]'") from err
        from tqdm.auto import tqdm

        folder = plan.out / "slurm" / "%j"  # submitit's job folders (sbatch fills in %j)
        if self.executor == "local":
            executor: Any = submitit.LocalExecutor(folder=plan.out / "slurm")
            executor.update_parameters(timeout_min=self.time_min)
        elif self.executor == "slurm":
            executor = submitit.SlurmExecutor(folder=folder)
            executor.update_parameters(**self._parameters())
        else:
            raise ValueError(f"`executor` must be 'slurm' or 'local', got {self.executor!r}.")
        tasks = [_SlurmTask(plan.command(spec), str(plan.log(spec))) for spec in plan.runs]
        with executor.batch():
            jobs = [executor.submit(task) for task in tasks]
        ids = sorted({str(job.job_id).split("_")[0] for job in jobs})
        print(f"submitted {len(jobs)} runs as SLURM job {', '.join(ids)} "
              f"({'local executor' if self.executor == 'local' else 'sbatch'}); logs in "
              f"{plan.out / 'slurm'}", file=sys.stderr)
        if not self.wait:
            return []
        bar = tqdm(total=len(jobs), desc="sweep (slurm)", unit="run", disable=not progress)
        failures: list[str] = []
        remaining = dict(zip(jobs, plan.runs, strict=True))
        while remaining:
            if progress:
                bar.set_postfix_str(_where(plan, list(remaining.values())), refresh=True)
            for job in [j for j in remaining if j.done()]:
                spec = remaining.pop(job)
                try:
                    job.result()
                except Exception as err:
                    failures.append(f"{spec.name}: {type(err).__name__}: "
                                    f"{str(err).strip().splitlines()[-1][:300]}")
                bar.update()
            time.sleep(0.5)
        bar.close()
        return failures


#: the launchers by ``--launcher`` name
LAUNCHERS: dict[str, type] = {"local": LocalLauncher, "ray": RayLauncher,
                              "slurm": SlurmLauncher}

