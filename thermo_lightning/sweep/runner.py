"""One run of a sweep, and a whole sweep through a launcher.

Every run of a sweep starts from the same initial weights (one seed) and the same seeded
batch sequence, trains with :class:`~thermo_lightning.SphereProjectionStrategy` and plain SGD
at its learning rate, and is measured by :class:`~thermo_lightning.ThermoCallback`. A run's
folder (:mod:`thermo_lightning.runs.layout`) holds its record ``run.json``, TensorBoard
events, a CSV log, ``history.csv`` (the callback's table) and ``checkpoints/last.ckpt``. A
finished run is skipped when the sweep is run again; an interrupted one resumes from its last
checkpoint; a process trains a run only while it holds the run's lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import os
import signal
import sys
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from thermo_lightning._warnings import warn as user_warn
from thermo_lightning.callback import ThermoCallback
from thermo_lightning.launch import (
    Launcher,
    LauncherError,
    LocalLauncher,
    RunInterrupted,
    SweepPlan,
)
from thermo_lightning.launch.base import interrupted_by_user
from thermo_lightning.launch.progress import format_progress
from thermo_lightning.runs.layout import (
    CHECKPOINT_DIR,
    CSV_DIR,
    HISTORY_FILE,
    LOCK_FILE,
    RUN_FILE,
    TENSORBOARD_DIR,
    RunSpec,
    last_checkpoint,
)
from thermo_lightning.runs.record import RunRecord, RunStatus
from thermo_lightning.strategy import DDPSphereProjectionStrategy, SphereProjectionStrategy
from thermo_lightning.sweep.config import SweepConfig
from thermo_lightning.sweep.errors import RunLockedError, SweepSettingsError
from thermo_lightning.sweep.plan import (
    PlanFiles,
    check_sweep_folder,
    planned_spec,
    settings_diff,
    write_plan,
)
from thermo_lightning.sweep.recipes import import_factory, recipe_for, registered_here_only

__all__ = ["RunProgress", "check_factories", "check_run", "plan_sweep", "run_lock", "run_one",
           "run_spec", "run_sweep", "thermo_callback"]


def thermo_callback(cfg: SweepConfig, lr: float) -> ThermoCallback:
    """The :class:`~thermo_lightning.ThermoCallback` that measures the run at ``lr``."""
    return ThermoCallback(window=cfg.window, stride=cfg.stride_for(lr), k=cfg.k,
                          estimator=cfg.estimator, schedule=cfg.schedule, energy=cfg.energy,
                          snr=cfg.snr, snr_batches=cfg.snr_batches,
                          conf_temperature=cfg.conf_temperature, seed=cfg.seed)


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
    return import_factory(cfg.data)(batch_size=cfg.batch_size, seed=cfg.seed,
                                    **(cfg.data_args or {}))


def _random_loss(cfg: SweepConfig, model: pl.LightningModule,
                 dm: pl.LightningDataModule | None) -> float | None:
    """The loss of random SI weights on the sphere (the saturation level), as the model's
    recipe measures it (``None``: it cannot)."""
    measure = recipe_for(cfg.model).random_loss
    if measure is None:
        return None
    was_training = model.training
    model.train()
    try:
        return measure(model, dm, cfg.seed)
    finally:
        model.train(was_training)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """An exclusive lock on ``run_dir/run.lock`` for as long as the run trains (released by
    the operating system when the process dies). Raises :class:`RunLockedError` when another
    process holds it."""
    path = run_dir / LOCK_FILE
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
    """Say where a run is, about every 1% of its steps, as a progress line
    (:func:`~thermo_lightning.launch.progress.format_progress`: ``lr=0.01 step
    1300/13000, window 40%``, the window's fill after a stride change or a resume), to
    ``report`` (a progress bar's postfix, or a worker's log)."""

    def __init__(self, axes: Mapping[str, Any], thermo: ThermoCallback,
                 report: Callable[[str], Any]) -> None:
        self.axes, self.thermo, self.report = dict(axes), thermo, report

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        step = trainer.global_step
        if step % max(1, (total or 10_000) // 100) == 0:
            buffer = self.thermo.buffer
            self.report(format_progress(self.axes, step, total,
                                        buffer.fill_fraction if buffer is not None else None,
                                        pilot=self.thermo.meter.in_pilot))


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


def check_run(cfg: SweepConfig, spec: RunSpec) -> RunSpec:
    """``spec`` if it is one of ``cfg``'s runs (its learning rates, grid values and seeds),
    its values in the grid's order; else a ValueError saying what is not.

    Raises:
        ValueError: naming the value that is not the sweep's.
    """
    if spec.lr not in cfg.learning_rates():
        raise ValueError(f"lr={spec.lr!r} is not one of the sweep's learning rates "
                         f"{cfg.learning_rates()}; add it to `lrs` (a run outside the plan "
                         "would be read as part of another sweep).")
    if spec.seed is not None and (cfg.seeds is None or spec.seed not in cfg.seeds):
        raise ValueError(f"seed {spec.seed} is not one of the sweep's `seeds` ({cfg.seeds}).")
    if spec.seed is None and cfg.seeds is not None:
        raise ValueError(f"the sweep runs `seeds` {cfg.seeds}: name the run's seed (--run-seed, "
                         "or --run NAME from plan.json).")
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
    return RunSpec(spec.lr, spec.seed, tuple((axis, given[axis]) for axis in grid))


def run_spec(cfg: SweepConfig, spec: RunSpec, out: str | Path, *, progress_bar: bool = False,
             progress: Callable[[str], Any] | None = None) -> Path:
    """:func:`run_one` for a :class:`~thermo_lightning.runs.layout.RunSpec` of ``cfg``
    (:func:`check_run`), in a folder whose ``sweep.json``, if any, has ``cfg``'s measurement
    settings. A finished run is returned without taking its lock (its files are left as
    they are)."""
    planned = planned_spec(out, spec.name)
    # a run of the folder's plan.json (the sweep's, or an earlier one's an extension kept)
    spec = planned if planned is not None else check_run(cfg, spec)
    check_sweep_folder(cfg, Path(out))
    run_dir = Path(out) / spec.name
    finished = _read_record(run_dir)
    if finished is not None and finished.done:  # skipped without touching its lock
        _check_settings(finished, _run_hparams(cfg.for_run(spec), spec.lr), run_dir)
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir), _sigterm_interrupts() as current:
        return _run_locked(cfg.for_run(spec), spec, run_dir, progress_bar, current, progress)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[dict[str, Any]]:
    """SIGTERM anywhere in a run (also while it loads data or builds the model, before
    Lightning's own handler is in place) ends it with :class:`SIGTERMException`, so that it is
    marked ``interrupted``. Inside ``fit`` Lightning's handler runs first, sets
    ``trainer.received_sigterm`` and stops at the next batch; this one then does nothing.
    Only the first SIGTERM stops the run: a second one (a worker whose parent died gets one
    from the kernel and one from its watcher) would cut the write that marks it
    ``interrupted``. Yields a dict where the run puts its ``"trainer"``."""
    current: dict[str, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        yield current
        return

    def handler(signum: int, frame: Any) -> None:
        trainer = current.get("trainer")
        if current.get("stopping") or getattr(trainer, "received_sigterm", False):
            return
        current["stopping"] = True
        raise SIGTERMException

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield current
    finally:
        signal.signal(signal.SIGTERM, previous)


def _read_record(run_dir: Path) -> RunRecord | None:
    """The run's record; one that cannot be read (cut mid-write, edited by hand) is kept
    aside as ``run.unreadable-<time>.json`` with a warning, and the run starts afresh
    (``None``), rather than failing every retry."""
    if not (run_dir / RUN_FILE).exists():
        return None
    try:
        return RunRecord.read(run_dir)
    except ValueError as err:  # JSON that does not parse, or not a record
        kept = run_dir / f"run.unreadable-{int(time.time())}.json"
        (run_dir / RUN_FILE).replace(kept)
        user_warn(f"{run_dir / RUN_FILE} was unreadable ({type(err).__name__}: {err}); kept as "
                  f"{kept.name}, and the run starts again")
        return None


def _run_hparams(cfg: SweepConfig, lr: float) -> dict[str, Any]:
    """What a run records of its settings: the sweep's, at its own ``lr`` (and seed and axis
    values: ``cfg`` is :meth:`SweepConfig.for_run`'s), without the sweep's grid."""
    recipe = recipe_for(cfg.model)
    hparams = {**dataclasses.asdict(cfg), "lr": lr, "precision": cfg.resolved_precision(),
               "stride": cfg.stride_for(lr)}
    for key in ("lrs", "seeds", "grid"):  # the sweep's grid, not this run (its values are
        hparams.pop(key)                  # in the settings and in `axes`)
    if recipe.run_hparams is not None:
        hparams.update(recipe.run_hparams(cfg))
    return hparams


def _check_settings(record: RunRecord, hparams: dict[str, Any], run_dir: Path) -> None:
    """Refuse a run folder made with other measurement settings."""
    diff = settings_diff(record.hparams, hparams) if record.hparams else []
    if diff:
        raise SweepSettingsError(
            f"{run_dir} was made with other settings ({'; '.join(diff)}); it is neither "
            "skipped nor resumed. Write this sweep to another --out, or delete the run's "
            "folder to redo it with the new settings."
        )


def _run_locked(cfg: SweepConfig, spec: RunSpec, run_dir: Path, progress_bar: bool,
                current: dict[str, Any], progress: Callable[[str], Any] | None = None) -> Path:
    lr = spec.lr
    record = _read_record(run_dir) or RunRecord()
    hparams = _run_hparams(cfg, lr)
    _check_settings(record, hparams, run_dir)
    if record.done:
        return run_dir
    known = recipe_for(cfg.model).known_temperature
    record.hparams, record.axes = hparams, spec.axes()
    if record.error is not None:  # an earlier attempt's: kept as a note, not as this one's
        record.notes.append(f"an earlier attempt ended: {record.error}")
        record.error = None
    record.status, record.started, record.pid = RunStatus.RUNNING.value, time.time(), os.getpid()
    record.known_temperature = known(cfg, lr) if known is not None else None
    try:  # a stop that comes as soon as the record says "running" still marks it
        record.write(run_dir)
        trainer, thermo = _train(cfg, spec, run_dir, record, progress_bar, current, progress)
    except SIGTERMException:
        record.status = RunStatus.INTERRUPTED.value
        record.error = "SIGTERM (resumes from its last checkpoint)"
        record.write(run_dir)
        raise
    except BaseException as err:
        if interrupted_by_user(err):  # Ctrl-C: stopped, not failed
            record.status = RunStatus.INTERRUPTED.value
            record.error = "Ctrl-C (resumes from its last checkpoint)"
        else:
            record.status, record.error = RunStatus.FAILED.value, f"{type(err).__name__}: {err}"
        record.write(run_dir)
        raise
    if trainer.global_rank == 0:
        thermo.history.to_csv(run_dir / HISTORY_FILE, index=False)
        assert thermo.spec is not None, "set at the fit's start"
        history = thermo.history
        record.status, record.finished = RunStatus.DONE.value, time.time()
        record.global_step = trainer.global_step
        record.last_logged_step = int(history["step"].iloc[-1]) if len(history) else None
        record.num_parameters, record.entropy_dim = thermo.spec.num_parameters, thermo.spec.dim
        record.window_spec = thermo.spec.as_hparams()
        record.train_acc = _final_metric(trainer, "train/acc")
        record.write(run_dir)
    return run_dir


def _train(cfg: SweepConfig, spec: RunSpec, run_dir: Path, record: RunRecord,
           progress_bar: bool, current: dict[str, Any],
           progress: Callable[[str], Any] | None = None) -> tuple[pl.Trainer, ThermoCallback]:
    """Build the run's data, model, callback and Trainer, and fit (resuming from
    ``checkpoints/last.ckpt`` when it is there and readable). ``cfg``: the run's own
    settings (:meth:`SweepConfig.for_run`)."""
    lr = spec.lr
    recipe = recipe_for(cfg.model)
    dm = _datamodule(cfg)
    pl.seed_everything(cfg.seed, verbose=False)  # the same initial weights for every LR
    model = recipe.build(cfg, lr, dm)
    if record.random_loss is None:  # measured once (a resumed run keeps it)
        record.random_loss = _random_loss(cfg, model, dm)
    thermo = thermo_callback(cfg, lr)
    every = cfg.checkpoint_every or max(1, cfg.steps // 10)
    ckpt = ModelCheckpoint(dirpath=run_dir / CHECKPOINT_DIR, save_last=True, save_top_k=0,
                           every_n_train_steps=every)
    strategy: Any
    if cfg.devices > 1:
        strategy = DDPSphereProjectionStrategy(verify=recipe.verify)
    else:
        strategy = SphereProjectionStrategy(verify=recipe.verify)
    # a resumed run appends TensorBoard events and starts a new CSV version: nothing is lost
    loggers = [TensorBoardLogger(run_dir, name="", version=TENSORBOARD_DIR,
                                 default_hp_metric=False),
               CSVLogger(run_dir, name=CSV_DIR)]
    trainer = pl.Trainer(
        accelerator=cfg.accelerator, devices=cfg.devices, strategy=strategy,
        precision=cfg.resolved_precision(),  # type: ignore[arg-type]
        max_steps=cfg.steps, logger=loggers,
        callbacks=[thermo, ckpt, *([RunProgress(spec.axes(), thermo, progress)]
                                   if progress else [])],
        enable_progress_bar=progress_bar, enable_model_summary=False,
        log_every_n_steps=max(1, min(50, cfg.steps)),
    )
    current["trainer"] = trainer
    last = last_checkpoint(run_dir)
    if last.exists() and not _readable_checkpoint(last):
        kept = last.with_name(f"last.unreadable-{int(time.time())}.ckpt")
        last.replace(kept)
        note = (f"{last} was unreadable (cut mid-write?); kept as {kept.name}, and the run "
                "starts again from step 0")
        user_warn(note)
        record.notes.append(note)
        record.write(run_dir)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(model, datamodule=dm, ckpt_path=last if last.exists() else None)
    return trainer, thermo


def _final_metric(trainer: pl.Trainer, key: str) -> float | None:
    value = trainer.callback_metrics.get(key)
    return float(value) if value is not None else None


def _run_here(cfg: SweepConfig, out: Path, name: str,
              progress: Callable[[str], Any] | None) -> None:
    """The runner as a launcher calls it in this process: SIGTERM becomes
    :class:`~thermo_lightning.launch.RunInterrupted` (the run is marked ``interrupted``)."""
    try:
        run_spec(cfg, cfg.run_named(name), out, progress=progress)
    except SIGTERMException:
        raise RunInterrupted(name) from None
    except BaseException as err:
        if interrupted_by_user(err):
            raise RunInterrupted(name, signal.SIGINT) from None
        raise


def plan_sweep(cfg: SweepConfig, out: str | Path) -> SweepPlan:
    """:func:`~thermo_lightning.sweep.plan.write_plan` with this process's runner handed in
    (for ``LocalLauncher(workers=1)``)."""
    out = Path(out).resolve()
    return write_plan(cfg, out, run_here=functools.partial(_run_here, cfg, out))


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
        launcher: where the runs execute (:mod:`thermo_lightning.launch`: local processes,
            a Ray cluster, a SLURM job array); default ``LocalLauncher(workers)``.

    The sweep is planned first (``sweep.json``, ``plan.json``). A run that another process
    is training (its lock is held) is left to it, with a warning. SIGTERM (a scheduler's
    stop) ends a local sweep with exit status 143 after marking the run in progress
    ``interrupted``; running the sweep again resumes it.

    Raises:
        SweepSettingsError: ``out`` holds a sweep made with other measurement settings.
        ValueError: a model factory that cannot be called as the sweep will, or a recipe
            registered at run time with a launcher that starts other processes.
        RuntimeError: some runs failed (the others finish first), listed.

    Returns:
        The run folders, in the plan's order.
    """
    check_factories(cfg)
    launcher = launcher or LocalLauncher(workers)
    in_process = isinstance(launcher, LocalLauncher) and launcher.workers <= 1
    if registered_here_only(cfg.model) and not in_process:
        raise ValueError(
            f"model {cfg.model!r} is a recipe registered in this process only; worker "
            "processes (workers > 1, Ray, SLURM) import thermo_lightning.sweep.recipes "
            "afresh and do not know it. Run with workers=1 (in this process), add the recipe "
            "to thermo_lightning/sweep/recipes.py, or use a factory "
            "(model='package.module:factory').")
    earlier = PlanFiles(out)
    plan = plan_sweep(cfg, out)
    try:
        failures = launcher.launch(plan, progress=progress)
    except (LauncherError, ImportError):  # nothing started: the folder as it was
        earlier.restore()
        raise
    if failures:
        what = ("all runs failed" if len(failures) >= len(plan.runs) else
                f"some runs failed ({len(failures)} of {len(plan.runs)})")
        raise RuntimeError(f"{what}:\n" + "\n".join(failures))
    return [Path(out) / run.name for run in plan.runs]


def check_factories(cfg: SweepConfig) -> None:
    """Before any run: the model and data factories (``package.module:factory``) import, and
    accept the keyword arguments the sweep will pass them (``model_args``, ``data_args`` and
    their ``grid`` axes). Raises ValueError saying what is wrong."""
    for kind, path, fixed in (("model", cfg.model, {"lr", "width", "datamodule", "seed"}),
                              ("data", cfg.data, {"batch_size", "seed"})):
        if not (isinstance(path, str) and ":" in path):
            continue
        try:
            factory = import_factory(path)
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
