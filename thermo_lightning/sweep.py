"""Learning-rate sweeps: one training run per LR, each in its own folder, resumable.

Every run of a sweep starts from the same initial weights (one seed) and the same seeded
batch sequence, trains with :class:`~thermo_lightning.SphereProjectionStrategy` and plain SGD
at its learning rate, and is measured by :class:`~thermo_lightning.ThermoCallback`. A run's
folder holds ``run.json`` (its hyperparameters and status), TensorBoard events, a CSV log,
``history.csv`` (the callback's table) and ``checkpoints/last.ckpt``. A finished run is skipped
when the sweep is run again; an interrupted one resumes from its last checkpoint.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import importlib
import json
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from thermo_lightning.callback import ThermoCallback
from thermo_lightning.strategy import DDPSphereProjectionStrategy, SphereProjectionStrategy
from thermo_lightning.sweep_config import (  # noqa: F401 (re-exported: the sweep's settings)
    _NOT_MEASUREMENT,
    DATASETS,
    FIELD_HELP,
    MODELS,
    RunSpec,
    SweepConfig,
    _coerce,
    lr_grid,
    run_dir_name,
)

if TYPE_CHECKING:
    from thermo_lightning.launchers import Launcher, SweepPlan

__all__ = [
    "RunLockedError",
    "RunProgress",
    "RunSpec",
    "SweepConfig",
    "SweepSettingsError",
    "langevin_noise_std",
    "lr_grid",
    "run_dir_name",
    "run_one",
    "run_spec",
    "run_sweep",
    "stop_with_parent",
]

RUN_FILE = "run.json"

HISTORY_FILE = "history.csv"


def _import(path: str) -> Callable[..., Any]:
    """``package.module:factory``, found on ``sys.path`` or else in the current folder (the
    ``thermo-lightning`` command does not put it on ``sys.path``, ``python -m`` does)."""
    module, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"an import path looks like 'package.module:factory', got {path!r}.")
    try:
        found = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name != module.split(".")[0]:
            raise  # the factory's module itself imports something missing
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())
        try:
            found = importlib.import_module(module)
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                f"cannot import {module!r} for {path!r}: not on the Python path nor in the "
                f"current folder {os.getcwd()}; run from the folder that holds it, or add "
                "that folder to PYTHONPATH.", name=err.name) from None
    try:
        return getattr(found, attr)
    except AttributeError:
        raise AttributeError(f"{module!r} has no {attr!r} (from {path!r}).") from None


def _datamodule(cfg: SweepConfig) -> pl.LightningDataModule | None:
    from thermo_lightning.data import CIFARDataModule, DigitsDataModule

    if cfg.data is None:
        return None
    if cfg.data == "digits":
        return DigitsDataModule(batch_size=cfg.batch_size, seed=cfg.seed)
    if cfg.data in ("cifar10", "cifar100"):
        return CIFARDataModule(cfg.data, root=cfg.data_root, download=cfg.download,
                               batch_size=cfg.batch_size, seed=cfg.seed,
                               on_device=cfg.accelerator in ("gpu", "cuda"))
    return _import(cfg.data)(batch_size=cfg.batch_size, seed=cfg.seed, **(cfg.data_args or {}))


def _model(cfg: SweepConfig, lr: float, dm: pl.LightningDataModule | None) -> pl.LightningModule:
    from thermo_lightning.models import (
        ClassificationTask,
        LangevinSphere,
        LangevinSphereModule,
        ScaleInvariantConvNet,
        ScaleInvariantResNet18,
        ToySphereModule,
    )

    pl.seed_everything(cfg.seed, verbose=False)  # the same initial weights for every LR
    if cfg.model in ("convnet", "resnet18"):
        assert dm is not None, "validated in SweepConfig"
        cls = ScaleInvariantConvNet if cfg.model == "convnet" else ScaleInvariantResNet18
        net = cls(cfg.width, num_classes=dm.num_classes, in_channels=dm.in_channels)
        return ClassificationTask(net, lr=lr, weight_decay=cfg.weight_decay)
    if cfg.model in ("toy-up", "toy-op"):
        return ToySphereModule(kind=cfg.model[-2:], lr=lr, seed=cfg.seed)
    if cfg.model == "langevin":
        problem = LangevinSphere(dim=cfg.dim, noise_std=langevin_noise_std(cfg))
        return LangevinSphereModule(problem, lr=lr, seed=cfg.seed, init_seed=cfg.seed)
    return _import(cfg.model)(lr=lr, width=cfg.width, datamodule=dm, seed=cfg.seed,
                              **(cfg.model_args or {}))


def langevin_noise_std(cfg: SweepConfig) -> float:
    """The gradient noise of the Langevin problem's runs: ``noise_std / sqrt(batch_size)``
    (the mean of ``batch_size`` independent draws), so that ``T = lr noise_std^2 /
    (2 batch_size)``; ``batch_size`` is 1 unless set."""
    return cfg.noise_std / math.sqrt(int(cfg.batch_size))


def _random_loss(model: pl.LightningModule, dm: pl.LightningDataModule | None,
                 seed: int) -> float | None:
    """Loss of random SI weights on the sphere (the saturation level), for the built-in
    models; ``None`` for others."""
    from itertools import islice

    from thermo_lightning.models import ClassificationTask, LangevinSphereModule, ToySphereModule
    from thermo_lightning.probes import random_weight_loss
    from thermo_lightning.scale_invariance import resolve_parameters

    params = [p for _, p in resolve_parameters(model, None)]
    was_training = model.training
    model.train()
    try:
        if isinstance(model, ClassificationTask) and dm is not None and hasattr(dm, "full_batches"):
            dm.setup("fit")
            batches = list(islice(dm.full_batches(), 4))
            return random_weight_loss(
                model, params,
                lambda: sum(float(model.loss(b)[0]) for b in batches) / len(batches), seed=seed)
        if isinstance(model, ToySphereModule):
            return random_weight_loss(model, params, lambda: float(model.full_loss()), draws=64,
                                      seed=seed)
        if isinstance(model, LangevinSphereModule):
            return random_weight_loss(model, params, lambda: float(model.energy()), draws=64,
                                      seed=seed)
    finally:
        model.train(was_training)
    return None


def _read_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _write_run(run_dir: Path, info: dict[str, Any]) -> None:
    tmp = run_dir / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, default=str))
    tmp.replace(run_dir / RUN_FILE)


class SweepSettingsError(ValueError):
    """A sweep folder already holds runs made with other measurement settings."""


class RunLockedError(RuntimeError):
    """Another process is training this run right now."""


def _settings_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(k for k in set(old) | set(new)
                  if k not in _NOT_MEASUREMENT and old.get(k) != new.get(k))
    return [f"{k}={old.get(k)!r} there, {new.get(k)!r} now" for k in keys]


@contextlib.contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """An exclusive lock on ``run_dir/run.lock`` for as long as the run trains (released by
    the operating system when the process dies). Raises :class:`RunLockedError` when another
    process holds it."""
    path = run_dir / "run.lock"
    handle = open(path, "a+")  # noqa: SIM115 - closed below, after the lock is released
    try:
        try:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - Windows: an exclusive create instead
            try:
                fd = os.open(str(path) + ".pid", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.close(fd)
            except FileExistsError as err:
                raise RunLockedError(f"{run_dir} is being trained by another process "
                                     f"(delete {path}.pid if none is).") from err
        except OSError as err:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunLockedError(
                f"{run_dir} is being trained by another process (pid {holder}); it is left "
                "to that process."
            ) from err
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()
        pid_file = Path(str(path) + ".pid")
        if "fcntl" not in sys.modules and pid_file.exists():  # pragma: no cover - Windows
            pid_file.unlink()


def _readable_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a complete checkpoint: torch saves zip archives, whose central
    directory is written last, so a file cut mid-write does not open."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


class RunProgress(pl.Callback):
    """Say where a run is, about every 1% of its steps: ``lr=0.01 step 1300/13000, window
    40%`` (the window's fill after a stride change or a resume), to ``report`` (a progress
    bar's postfix, or a worker's log)."""

    def __init__(self, lr: float, thermo: ThermoCallback, report: Callable[[str], Any],
                 label: str = "") -> None:
        self.lr, self.thermo, self.report = lr, thermo, report
        self.label = label  # the run's other axes and seed: " batch_size=64 seed=1"

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        step = trainer.global_step
        if step % max(1, (total or 10_000) // 100) == 0:
            buffer = self.thermo.buffer
            fill = f", window {buffer.fill_fraction:.0%}" if buffer is not None else ""
            self.report(f"lr={self.lr:g}{self.label} step {step}/{total or '?'}{fill}")


def run_one(cfg: SweepConfig, lr: float, out: str | Path, *, seed: int | None = None,
            values: Mapping[str, Any] | None = None, progress_bar: bool = False,
            progress: Callable[[str], Any] | None = None) -> Path:
    """Train and measure one run of the sweep in ``out/<its name>`` (``lr=...``; with
    ``seed``, one of the sweep's ``seeds``, ``lr=...,seed=N``; with ``values`` on its
    ``grid`` axes, ``lr=...,batch_size=64,...``); skip it when done, resume it from
    ``checkpoints/last.ckpt`` when interrupted. Returns the run's folder. ``progress`` is
    told where the run is (:class:`RunProgress`).

    Raises:
        ValueError: ``seed`` or ``values`` are not those of one of the sweep's runs.
        SweepSettingsError: the folder holds this run made with other measurement settings.
        RunLockedError: another process is training this run.
    """
    spec = RunSpec(float(lr), seed, tuple((values or {}).items()))
    return run_spec(cfg, spec, out, progress_bar=progress_bar, progress=progress)


def run_spec(cfg: SweepConfig, spec: RunSpec, out: str | Path, *, progress_bar: bool = False,
             progress: Callable[[str], Any] | None = None) -> Path:
    """:func:`run_one` for a :class:`~thermo_lightning.sweep_config.RunSpec` of ``cfg``."""
    if spec.seed is not None and (cfg.seeds is None or spec.seed not in cfg.seeds):
        raise ValueError(f"seed {spec.seed} is not one of the sweep's `seeds` ({cfg.seeds}).")
    grid = cfg.grid or {}
    given = dict(spec.values)
    if set(given) != set(grid):
        raise ValueError(f"the run's axis values {given} must name every `grid` axis "
                         f"({sorted(grid)}).")
    for axis, value in spec.values:
        if value not in grid[axis]:
            raise ValueError(f"{axis}={value!r} is not one of the sweep's values "
                             f"{grid[axis]!r}.")
    # the grid's order, whatever order the values came in
    spec = RunSpec(spec.lr, spec.seed, tuple((axis, given[axis]) for axis in grid))
    run_dir = Path(out) / spec.name
    run_dir.mkdir(parents=True, exist_ok=True)
    with _run_lock(run_dir), _sigterm_interrupts() as current:
        return _run_locked(cfg.for_run(spec), spec, run_dir, progress_bar, current, progress)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[dict[str, Any]]:
    """SIGTERM anywhere in a run (also while it loads data or builds the model, before
    Lightning's own handler is in place) ends it with :class:`SIGTERMException`, so that it is
    marked ``interrupted``. Inside ``fit`` Lightning's handler runs first, sets
    ``trainer.received_sigterm`` and stops at the next batch; this one then does nothing.
    Yields a dict where the run puts its ``"trainer"``."""
    current: dict[str, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        yield current
        return

    def handler(signum: int, frame: Any) -> None:
        trainer = current.get("trainer")
        if not getattr(trainer, "received_sigterm", False):
            raise SIGTERMException

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield current
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_locked(cfg: SweepConfig, spec: RunSpec, run_dir: Path, progress_bar: bool,
                current: dict[str, Any], progress: Callable[[str], Any] | None = None) -> Path:
    lr = spec.lr
    info = _read_run(run_dir)
    hparams = {**dataclasses.asdict(cfg), "lr": lr, "precision": cfg.resolved_precision(),
               "stride": cfg.stride_for(lr)}
    for key in ("lrs", "seeds", "grid"):  # the sweep's grid, not this run (its values are
        hparams.pop(key)                  # in the settings and in `axes`)
    if cfg.model == "langevin":
        hparams["gradient_noise_std"] = langevin_noise_std(cfg)
    if info.get("hparams"):
        diff = _settings_diff(info["hparams"], hparams)
        if diff:
            raise SweepSettingsError(
                f"{run_dir} was made with other settings ({'; '.join(diff)}); it is neither "
                "skipped nor resumed. Write this sweep to another --out, or delete the run's "
                "folder to redo it with the new settings."
            )
    if info.get("status") == "done":
        return run_dir
    info.update(hparams=hparams, axes=spec.axes(), status="running", started=time.time(),
                pid=os.getpid())
    _write_run(run_dir, info)
    try:
        trainer, thermo = _train(cfg, spec, run_dir, info, progress_bar, current, progress)
    except SIGTERMException:
        info.update(status="interrupted", error="SIGTERM (resumes from its last checkpoint)")
        _write_run(run_dir, info)
        raise
    except BaseException as err:
        info.update(status="failed", error=f"{type(err).__name__}: {err}")
        _write_run(run_dir, info)
        raise
    if trainer.global_rank == 0:
        thermo.history.to_csv(run_dir / HISTORY_FILE, index=False)
        info.update(
            status="done", finished=time.time(), global_step=trainer.global_step,
            last_logged_step=int(thermo.history["step"].iloc[-1]) if len(thermo.history) else None,
            num_parameters=thermo.spec.num_parameters, entropy_dim=thermo.spec.dim,
            window_spec=thermo.spec.as_hparams(),
            train_acc=_final_metric(trainer, "train/acc"),
        )
        _write_run(run_dir, info)
    return run_dir


def _train(cfg: SweepConfig, spec: RunSpec, run_dir: Path, info: dict[str, Any],
           progress_bar: bool, current: dict[str, Any],
           progress: Callable[[str], Any] | None = None) -> tuple[pl.Trainer, ThermoCallback]:
    """Build the run's data, model, callback and Trainer, and fit (resuming from
    ``checkpoints/last.ckpt`` when it is there and readable). ``cfg``: the run's own
    settings (:meth:`SweepConfig.for_run`)."""
    lr = spec.lr
    dm = _datamodule(cfg)
    model = _model(cfg, lr, dm)
    if "random_loss" not in info:
        info["random_loss"] = _random_loss(model, dm, cfg.seed)
    thermo = cfg.callback(lr)
    every = cfg.checkpoint_every or max(1, cfg.steps // 10)
    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0,
                           every_n_train_steps=every)
    strategy: Any
    if cfg.devices > 1:
        strategy = DDPSphereProjectionStrategy(verify=cfg.model not in ("langevin",))
    else:
        strategy = SphereProjectionStrategy(verify=cfg.model not in ("langevin",))
    # a resumed run appends TensorBoard events and starts a new CSV version: nothing is lost
    loggers = [TensorBoardLogger(run_dir, name="", version="tensorboard", default_hp_metric=False),
               CSVLogger(run_dir, name="csv")]
    trainer = pl.Trainer(
        accelerator=cfg.accelerator, devices=cfg.devices, strategy=strategy,
        precision=cfg.resolved_precision(),  # type: ignore[arg-type]
        max_steps=cfg.steps, logger=loggers,
        callbacks=[thermo, ckpt,
                   *([RunProgress(lr, thermo, progress, "".join(
                       f" {k}={v}" for k, v in spec.axes().items() if k != "lr"))]
                     if progress else [])],
        enable_progress_bar=progress_bar, enable_model_summary=False,
        log_every_n_steps=max(1, min(50, cfg.steps)),
    )
    current["trainer"] = trainer
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.exists() and not _readable_checkpoint(last):
        kept = last.with_name(f"last.unreadable-{int(time.time())}.ckpt")
        last.replace(kept)
        note = (f"{last} was unreadable (cut mid-write?); kept as {kept.name}, and the run "
                "starts again from step 0")
        warnings.warn(note, stacklevel=3)
        info.setdefault("notes", []).append(note)
        _write_run(run_dir, info)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(model, datamodule=dm, ckpt_path=last if last.exists() else None)
    return trainer, thermo


def _final_metric(trainer: pl.Trainer, key: str) -> float | None:
    value = trainer.callback_metrics.get(key)
    return float(value) if value is not None else None


def _gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_sweep(
    cfg: SweepConfig,
    out: str | Path,
    *,
    workers: int = 1,
    progress: bool = True,
    launcher: Launcher | None = None,
) -> list[Path]:
    """Run every run of ``cfg`` (learning rates x grid x seeds) into ``out``.

    Args:
        workers: with the default local launcher, runs in parallel processes (each
            ``thermo-lightning sweep-run`` on the sweep's own ``sweep.json``; one GPU each
            when there are GPUs). ``1`` runs them one after the other in this process.
            Workers stop when this process ends.
        progress: a progress bar over runs.
        launcher: where the runs execute (:mod:`thermo_lightning.launchers`: local
            processes, a Ray cluster, a SLURM job array); default
            ``LocalLauncher(workers)``.

    The sweep is planned first (``sweep.json``, ``plan.json``). A run that another process
    is training (its lock is held) is left to it, with a warning. SIGTERM (a scheduler's
    stop) ends a local sweep with exit status 143 after marking the run in progress
    ``interrupted``; running the sweep again resumes it.

    Raises:
        SweepSettingsError: ``out`` holds a sweep made with other measurement settings.
        RuntimeError: some runs failed (the others finish first), listed.

    Returns:
        The run folders, in the plan's order.
    """
    from thermo_lightning.launchers import LocalLauncher, write_plan

    check_factories(cfg)
    plan = write_plan(cfg, out)
    failures = (launcher or LocalLauncher(workers)).launch(plan, progress=progress)
    if failures:
        raise RuntimeError("some runs failed:\n" + "\n".join(failures))
    return [Path(out) / spec.name for spec in plan.runs]


def check_factories(cfg: SweepConfig) -> None:
    """Before any run: the model and data factories (``package.module:factory``) import, and
    accept the keyword arguments the sweep will pass them (``model_args``, ``data_args`` and
    their ``grid`` axes). Raises ValueError saying what is wrong."""
    import inspect

    for kind, path, fixed in (("model", cfg.model, {"lr", "width", "datamodule", "seed"}),
                              ("data", cfg.data, {"batch_size", "seed"})):
        if not (isinstance(path, str) and ":" in path):
            continue
        try:
            factory = _import(path)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"the {kind} factory: {err}") from None
        given = set(getattr(cfg, f"{kind}_args") or {})
        given |= {a.split(".", 1)[1] for a in (cfg.grid or {}) if a.startswith(f"{kind}_args.")}
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):  # a builtin or C callable: cannot tell
            continue
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            continue
        missing = sorted((fixed | given) - set(params))
        if missing:
            raise ValueError(
                f"the {kind} factory {path!r} does not take {missing} (it is called with "
                f"{sorted(fixed)} and the sweep's {kind}_args {sorted(given)}); add them to "
                "its signature (or **kwargs).")


def _run_local(plan: SweepPlan, workers: int, progress: bool) -> list[str]:
    """The local launcher: the plan's runs in this process one after the other, or in
    ``workers`` child processes (:func:`_run_parallel`); the failures."""
    from tqdm.auto import tqdm

    runs, out = list(plan.runs), plan.out
    bar = tqdm(total=len(runs), desc="sweep", unit="run", disable=not progress)
    failures: list[str] = []
    elsewhere: list[str] = []
    if workers <= 1:
        cfg = plan.config()
        for i, spec in enumerate(runs):
            try:
                run_spec(cfg, spec, out, progress=bar.set_postfix_str if progress else None)
            except SIGTERMException:
                bar.close()
                print(f"sweep stopped by SIGTERM during {spec.name}; "
                      f"{len(runs) - i - 1} runs not started. Run the same command again to "
                      "resume.", file=sys.stderr)
                raise SystemExit(128 + signal.SIGTERM) from None
            except RunLockedError as err:
                elsewhere.append(str(err))
            except Exception as err:  # keep going; report at the end
                failures.append(f"{spec.name}: {type(err).__name__}: {err}")
            bar.update()
    else:
        failures = _run_parallel(plan, workers, bar)
    bar.close()
    for message in elsewhere:
        warnings.warn(message, stacklevel=3)
    return failures


def _run_parallel(plan: SweepPlan, workers: int, bar: Any) -> list[str]:
    """Each run in a ``sweep-run`` child process reading ``out/sweep.json`` (the merged
    settings), at most ``workers`` at a time. Children watch this process and stop when it
    ends; SIGTERM to this process is passed on to them and ends the sweep with status 143.

    A ``ThreadPoolExecutor`` schedules them: each of its threads starts one child and waits
    for it. Not a ``ProcessPoolExecutor``: a run must be its own process, started with its own
    environment (its GPU, its thread count) before torch is imported, with its own log, and
    stoppable alone; pool processes are reused and cannot be signalled one task at a time.
    """
    out = plan.out
    gpus = _gpu_count()
    free_gpus: queue.SimpleQueue[int] = queue.SimpleQueue()
    for device in range(gpus):
        for _ in range(-(-workers // gpus)):  # runs share the GPUs evenly
            free_gpus.put(device)
    running: dict[str, subprocess.Popen] = {}  # by run folder name
    lock = threading.Lock()
    stopping = threading.Event()

    def run_child(spec: RunSpec) -> int:
        name = spec.name
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
        cmd = [*plan.command(spec), "--parent-pid", str(os.getpid())]
        try:
            with open(plan.log(spec), "w") as log, lock:
                if stopping.is_set():
                    return -signal.SIGTERM
                proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
                running[name] = proc
            return proc.wait()
        finally:
            with lock:
                running.pop(name, None)
            if device is not None:
                free_gpus.put(device)

    def terminate_children() -> int:
        stopping.set()
        with lock:
            procs = list(running.values())
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        return len(procs)

    def stop(signum: int, frame: Any) -> None:
        not_started = sum(not f.running() and not f.done() for f in futures)
        interrupted = terminate_children()
        print(f"sweep stopped by signal {signum}; {interrupted} runs interrupted, "
              f"{not_started} not started. Run the same command again to resume.",
              file=sys.stderr)
        raise SystemExit(128 + signum)

    failures: list[str] = []
    futures: dict[concurrent.futures.Future[int], str] = {}
    previous = signal.signal(signal.SIGTERM, stop)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                 thread_name_prefix="sweep-run")
    try:
        futures.update({pool.submit(run_child, spec): spec.name for spec in plan.runs})
        pending = set(futures)
        while pending:
            done, pending = concurrent.futures.wait(
                pending, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED)
            with lock:
                now = sorted(running)
            bar.set_postfix_str(_progress_line(out, now), refresh=True)
            for future in done:
                bar.update()
                name, code = futures[future], future.result()
                for message in _warnings_in(out / f"{name}.log"):
                    bar.write(f"{name}: {message}")  # the worker's warnings, on the console
                if code != 0:
                    failures.append(f"{name}: exit code {code} (see {out / (name + '.log')})")
    except BaseException:
        terminate_children()  # Ctrl-C or an error here: no orphan keeps training
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        signal.signal(signal.SIGTERM, previous)
    return failures


_WARNING_LINE = re.compile(r"\.py:\d+: (?:\w*Warning: )?(Thermo\w*: .*)$")


def _warnings_in(log: Path) -> list[str]:
    """The package's own warnings in a worker's log (``ThermoMeter: ...`` and the like), each
    once, in order."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    found = [m.group(1) for m in map(_WARNING_LINE.search, lines) if m]
    return list(dict.fromkeys(found))


def _progress_line(out: Path, names: Sequence[str]) -> str:
    """The running workers' last log lines, joined (workers that logged nothing yet are left
    out: no bare separators in the bar)."""
    return "; ".join(line for name in names if (line := _last_line(out / f"{name}.log")))


def _last_line(log: Path) -> str:
    """The last progress line a worker wrote to its log (empty when none yet)."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.path.getsize(log) - 4096))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines()
                     if ln.startswith("lr=") and " step " in ln]
    except OSError:
        return ""
    return lines[-1] if lines else ""


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

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(poll)

    if os.getppid() != parent_pid:  # the parent died before we got here
        os.kill(os.getpid(), signal.SIGTERM)
    import threading

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()
