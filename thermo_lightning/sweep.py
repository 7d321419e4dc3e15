"""Learning-rate sweeps: one training run per LR, each in its own folder, resumable.

Every run of a sweep starts from the same initial weights (one seed) and the same seeded
batch sequence, trains with :class:`~thermo_lightning.SphereProjectionStrategy` and plain SGD
at its learning rate, and is measured by :class:`~thermo_lightning.ThermoCallback`. A run's
folder holds ``run.json`` (its hyperparameters and status), TensorBoard events, a CSV log,
``history.csv`` (the callback's table) and ``checkpoints/last.ckpt``. A finished run is skipped
when the sweep is run again; an interrupted one resumes from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import types
import typing
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from thermo_lightning.callback import ThermoCallback
from thermo_lightning.strategy import DDPSphereProjectionStrategy, SphereProjectionStrategy

__all__ = [
    "RunLockedError",
    "RunProgress",
    "SweepConfig",
    "SweepSettingsError",
    "lr_grid",
    "run_dir_name",
    "run_one",
    "run_sweep",
    "stop_with_parent",
]

MODELS = ("convnet", "resnet18", "toy-up", "toy-op", "langevin")
DATASETS = ("digits", "cifar10", "cifar100")
RUN_FILE = "run.json"

#: one line per SweepConfig field: the command line's help (defaults are added there)
FIELD_HELP: dict[str, str] = {
    "model": f"one of {', '.join(MODELS)}, or package.module:factory",
    "data": f"one of {', '.join(DATASETS)}, none (toy and langevin), or package.module:factory",
    "width": "network width (channels of the first block)",
    "lrs": "explicit learning rates (instead of --lr-min/--lr-max/--num-lrs)",
    "lr_min": "smallest learning rate of the log-spaced grid",
    "lr_max": "largest learning rate of the log-spaced grid",
    "num_lrs": "learning rates in the grid",
    "steps": "optimiser steps per run",
    "batch_size": "mini-batch size (batches drawn with replacement)",
    "seed": "seed of the initial weights and the batches (the same for every LR)",
    "window": "snapshots in the entropy window, or auto (steps / 200 within [50, 1000])",
    "stride": "steps between snapshots, or auto (one correlation time, from a pilot)",
    "stride_per_lr": "c: stride = ceil(c / lr) instead of --stride",
    "k": "neighbour count(s) of the entropy, or auto (window / 20 within [3, 50])",
    "estimator": "knn_graph (the paper's) or kozachenko_leonenko",
    "schedule": "logging points: log (201 log-spaced) or an int n (every n steps)",
    "energy": "window (mean training loss) or full (loss over the whole training set)",
    "snr": "unbiased, exact (with the full-data gradient) or none",
    "snr_batches": "mini-batches per SNR measurement (K >= 2)",
    "precision": "Lightning precision (default: 64-true for toy/langevin, else 32-true)",
    "accelerator": "Lightning accelerator: auto, cpu, gpu",
    "devices": "devices per run (> 1: DDP)",
    "data_root": "folder of the CIFAR data",
    "download": "download CIFAR into --data-root",
    "noise_std": "langevin: sigma of the gradient noise",
    "dim": "langevin: dimension of the space (the sphere has dim - 1)",
    "checkpoint_every": "steps between checkpoints (default steps / 10)",
}
HISTORY_FILE = "history.csv"


@dataclass
class SweepConfig:
    """Everything a sweep needs; loads from YAML (:meth:`from_yaml`) and the command line.

    Models by name: ``convnet`` / ``resnet18`` (the paper's scale-invariant networks of width
    ``width``), ``toy-up`` / ``toy-op`` (the 3-D toy problems), ``langevin`` (the
    known-temperature problem); or ``"package.module:factory"``, called as
    ``factory(lr=..., width=..., datamodule=..., seed=...)`` and returning a LightningModule.
    Data by name: ``digits`` (offline), ``cifar10``, ``cifar100`` (torchvision, ``data_root``,
    ``download``), ``None`` for the toy and Langevin problems, or an import path called as
    ``factory(batch_size=..., seed=...)``.

    ``window``, ``stride`` and ``k`` are the callback's (default ``"auto"``: the window sized
    from ``steps``, the stride from the run's own correlation time; see
    :class:`~thermo_lightning.meter.ThermoMeter`).
    ``stride_per_lr=c`` thins each run with ``stride = ceil(c / lr)`` instead of ``stride``:
    SGD's correlation time grows like ``1 / lr``, so one ``c`` gives every LR about the same
    number of snapshots per correlation time (for the Langevin problem ``c = 2 / lambda``).
    """

    model: str = "convnet"
    data: str | None = "digits"
    width: int = 8
    lrs: list[float] | None = None
    lr_min: float = 1e-3
    lr_max: float = 1.0
    num_lrs: int = 10
    steps: int = 2000
    batch_size: int = 128
    seed: int = 0
    window: int | str = "auto"
    stride: int | str = "auto"
    stride_per_lr: float | None = None
    k: list[int] | str = "auto"
    estimator: str = "knn_graph"
    schedule: str | int = "log"
    energy: str = "window"
    snr: str | None = "unbiased"
    snr_batches: int = 16
    precision: str | None = None
    accelerator: str = "auto"
    devices: int = 1
    data_root: str = "data"
    download: bool = False
    noise_std: float = 0.5
    dim: int = 6
    checkpoint_every: int | None = None

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name]))
        if self.model not in MODELS and ":" not in self.model:
            raise ValueError(
                f"`model` must be one of {MODELS} or 'package.module:factory', got {self.model!r}."
            )
        if self.data is not None and self.data not in DATASETS and ":" not in self.data:
            raise ValueError(
                f"`data` must be one of {DATASETS}, None or 'package.module:factory', got "
                f"{self.data!r}."
            )
        if self.model in ("convnet", "resnet18") and self.data is None:
            raise ValueError(f"model {self.model!r} needs `data` (digits, cifar10, cifar100).")
        if self.steps < 1 or self.batch_size < 1 or self.width < 1 or self.devices < 1:
            raise ValueError("`steps`, `batch_size`, `width` and `devices` must be positive.")
        if self.lrs is not None:
            if not self.lrs or any(not (lr > 0) for lr in self.lrs):
                raise ValueError(f"`lrs` must be positive numbers, got {self.lrs!r}.")
        elif not (0 < self.lr_min < self.lr_max) or self.num_lrs < 1:
            raise ValueError("`lr_min < lr_max` (both positive) and `num_lrs >= 1` are needed.")
        if self.stride_per_lr is not None and not self.stride_per_lr > 0:
            raise ValueError(f"`stride_per_lr` must be positive, got {self.stride_per_lr!r}.")
        lrs = self.learning_rates()
        names = [run_dir_name(lr) for lr in lrs]
        if len(set(lrs)) != len(lrs) or len(set(names)) != len(names):
            raise ValueError(f"`lrs` must be distinct learning rates, got {lrs!r}.")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ValueError(
                f"`checkpoint_every` must be a positive integer, got {self.checkpoint_every!r}.")
        for lr in lrs:  # the measurement's own checks, before any run starts
            try:
                self._check_window_fills(self.callback(lr), lr)
            except ValueError as err:
                raise ValueError(f"{err} (sweep setting at lr={lr:g})") from err

    def _check_window_fills(self, cb: ThermoCallback, lr: float) -> None:
        """A window that cannot fill within ``steps`` measures no entropy: refuse it before
        any run trains (``stride="auto"`` counts its pilot and stride 1, the least it needs)."""
        from thermo_lightning.meter import _pilot_length, _resolve_window

        m = cb.meter
        n, _ = _resolve_window(m.window_arg, m.k_arg, self.steps)
        stride = self.stride_for(lr)
        need = n * (1 if stride == "auto" else int(stride))
        if stride == "auto" and _pilot_length(self.steps) + n <= self.steps:
            return
        if need > self.steps:
            raise ValueError(
                f"a window of {n} snapshots at stride {stride} needs {need} steps, more than "
                f"`steps` ({self.steps}): no entropy would be measured. Pass a smaller "
                "`window` (or 'auto'), a smaller stride, or more steps.")

    def callback(self, lr: float) -> ThermoCallback:
        """The :class:`~thermo_lightning.ThermoCallback` that measures the run at ``lr``."""
        return ThermoCallback(window=self.window, stride=self.stride_for(lr), k=self.k,
                              estimator=self.estimator, schedule=self.schedule,
                              energy=self.energy, snr=self.snr, snr_batches=self.snr_batches,
                              seed=self.seed)

    def measurement_settings(self) -> dict[str, Any]:
        """The settings that change what a run measures (every field but the LR grid and
        where and how fast it runs): a finished run is reused only when they are equal."""
        values = dataclasses.asdict(self)
        return {k: v for k, v in values.items() if k not in _NOT_MEASUREMENT}

    def stride_for(self, lr: float) -> int | str:
        """The stride of the run at ``lr``."""
        if self.stride_per_lr is not None:
            return max(1, math.ceil(self.stride_per_lr / lr))
        return self.stride

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SweepConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown sweep settings {unknown}; known: {sorted(known)}.")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SweepConfig:
        import yaml  # pyyaml: a dependency of lightning

        values = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a mapping of sweep settings.")
        return cls.from_dict(values)

    def learning_rates(self) -> list[float]:
        return sorted(self.lrs) if self.lrs is not None else lr_grid(self.lr_min, self.lr_max,
                                                                      self.num_lrs)

    def resolved_precision(self) -> str:
        if self.precision is not None:
            return self.precision
        return "64-true" if self.model in ("toy-up", "toy-op", "langevin") else "32-true"


# settings that do not change a run's numbers: the grid itself, and where/how it runs
_NOT_MEASUREMENT = frozenset({"lrs", "lr_min", "lr_max", "num_lrs", "accelerator", "devices",
                              "data_root", "download", "checkpoint_every"})
_NONE_WORDS = ("none", "None", "null", "NULL", "~")


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the field's type ``hint``; strings from the command line or YAML (such as
    ``"1e-3"``, which YAML 1.1 reads as a string) are converted. Raises a ValueError naming
    the setting."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or value in _NONE_WORDS):
            return None
        members = [a for a in args if a is not type(None)]
        if (isinstance(value, list) and len(value) == 1 and isinstance(value[0], str)
                and str in members and not value[0].strip().lstrip("-").isdigit()):
            value = value[0]  # "--k auto" from the command line arrives as ["auto"]
        if isinstance(value, str):  # "5" is the int 5 in int | str; "auto" stays a string
            members.sort(key=lambda a: a is str)
        else:  # the value's own type first: 3 stays an int in int | float
            for member in members:
                if _is_instance(value, member):
                    return _coerce(name, value, member)
        for member in members:
            try:
                return _coerce(name, value, member)
            except ValueError:
                continue
        raise ValueError(f"`{name}` must be {_type_name(hint)}, got {value!r}.")
    if origin is list:
        items = value if isinstance(value, list | tuple) else [value]
        return [_coerce(name, v, args[0]) for v in items]
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif hint is int:
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, int | float | np.number) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - every field has one of the types above
        return value
    raise ValueError(f"`{name}` must be {_type_name(hint)}, got {value!r}.")


def _is_instance(value: Any, hint: Any) -> bool:
    if typing.get_origin(hint) is list:
        return isinstance(value, list | tuple)
    if hint in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is list:
        return f"a list of {_type_name(args[0])}"
    if args:
        return " or ".join("None" if a is type(None) else _type_name(a) for a in args)
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, str(hint))


def lr_grid(lr_min: float, lr_max: float, num: int) -> list[float]:
    """``num`` log-spaced learning rates from ``lr_min`` to ``lr_max`` (3 significant
    digits)."""
    if num == 1:
        return [float(f"{lr_min:.3g}")]
    return [float(f"{v:.3g}") for v in np.geomspace(lr_min, lr_max, num)]


def run_dir_name(lr: float) -> str:
    """Folder name of the run at ``lr``: ``lr=1.00e-02`` (three significant digits, as
    :func:`lr_grid` makes them), with as many more digits as ``lr`` needs to be told apart
    from any other learning rate (``lr=1.0001e-02``)."""
    for digits in range(2, 17):
        name = f"{lr:.{digits}e}"
        if float(name) == lr:
            return f"lr={name}"
    return f"lr={lr!r}"


def _import(path: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"an import path looks like 'package.module:factory', got {path!r}.")
    return getattr(importlib.import_module(module), attr)


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
    return _import(cfg.data)(batch_size=cfg.batch_size, seed=cfg.seed)


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
        return ClassificationTask(net, lr=lr)
    if cfg.model in ("toy-up", "toy-op"):
        return ToySphereModule(kind=cfg.model[-2:], lr=lr, seed=cfg.seed)
    if cfg.model == "langevin":
        problem = LangevinSphere(dim=cfg.dim, noise_std=cfg.noise_std)
        return LangevinSphereModule(problem, lr=lr, seed=cfg.seed, init_seed=cfg.seed)
    return _import(cfg.model)(lr=lr, width=cfg.width, datamodule=dm, seed=cfg.seed)


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

    def __init__(self, lr: float, thermo: ThermoCallback, report: Callable[[str], Any]) -> None:
        self.lr, self.thermo, self.report = lr, thermo, report

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        step = trainer.global_step
        if step % max(1, (total or 10_000) // 100) == 0:
            buffer = self.thermo.buffer
            fill = f", window {buffer.fill_fraction:.0%}" if buffer is not None else ""
            self.report(f"lr={self.lr:g} step {step}/{total or '?'}{fill}")


def run_one(cfg: SweepConfig, lr: float, out: str | Path, *, progress_bar: bool = False,
            progress: Callable[[str], Any] | None = None) -> Path:
    """Train and measure the run at ``lr`` in ``out/lr=...``; skip it when done, resume it
    from ``checkpoints/last.ckpt`` when interrupted. Returns the run's folder. ``progress``
    is told where the run is (:class:`RunProgress`).

    Raises:
        SweepSettingsError: the folder holds this run made with other measurement settings.
        RunLockedError: another process is training this run.
    """
    run_dir = Path(out) / run_dir_name(lr)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _run_lock(run_dir), _sigterm_interrupts() as current:
        return _run_locked(cfg, lr, run_dir, progress_bar, current, progress)


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


def _run_locked(cfg: SweepConfig, lr: float, run_dir: Path, progress_bar: bool,
                current: dict[str, Any], progress: Callable[[str], Any] | None = None) -> Path:
    info = _read_run(run_dir)
    hparams = {**dataclasses.asdict(cfg), "lr": lr, "precision": cfg.resolved_precision(),
               "stride": cfg.stride_for(lr)}
    hparams.pop("lrs")
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
    info.update(hparams=hparams, status="running", started=time.time(), pid=os.getpid())
    _write_run(run_dir, info)
    try:
        trainer, thermo = _train(cfg, lr, run_dir, info, progress_bar, current, progress)
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


def _train(cfg: SweepConfig, lr: float, run_dir: Path, info: dict[str, Any], progress_bar: bool,
           current: dict[str, Any], progress: Callable[[str], Any] | None = None
           ) -> tuple[pl.Trainer, ThermoCallback]:
    """Build the run's data, model, callback and Trainer, and fit (resuming from
    ``checkpoints/last.ckpt`` when it is there and readable)."""
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
        callbacks=[thermo, ckpt, *([RunProgress(lr, thermo, progress)] if progress else [])],
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
) -> list[Path]:
    """Run every learning rate of ``cfg`` into ``out``.

    Args:
        workers: runs in parallel processes (each ``thermo-lightning sweep-run`` on the
            sweep's own ``sweep.json``; one GPU each when there are GPUs). ``1`` runs them one
            after the other in this process. Workers stop when this process ends.
        progress: a progress bar over runs.

    A run that another process is training (its lock is held) is left to it, with a warning.
    SIGTERM (a scheduler's stop) ends the sweep with exit status 143 after marking the run
    in progress ``interrupted``; running the sweep again resumes it.

    Raises:
        SweepSettingsError: ``out`` holds a sweep made with other measurement settings.

    Returns:
        The run folders, in LR order. Failed runs are reported at the end (the others finish).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sweep_file = out / "sweep.json"
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
    tmp = sweep_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(cfg), indent=2, default=str))
    tmp.replace(sweep_file)
    lrs = cfg.learning_rates()
    from tqdm.auto import tqdm

    bar = tqdm(total=len(lrs), desc="sweep", unit="run", disable=not progress)
    failures: list[str] = []
    elsewhere: list[str] = []
    if workers <= 1:
        for i, lr in enumerate(lrs):
            try:
                run_one(cfg, lr, out, progress=bar.set_postfix_str if progress else None)
            except SIGTERMException:
                bar.close()
                print(f"sweep stopped by SIGTERM during lr={lr:g}; {len(lrs) - i - 1} runs not "
                      "started. Run the same command again to resume.", file=sys.stderr)
                raise SystemExit(128 + signal.SIGTERM) from None
            except RunLockedError as err:
                elsewhere.append(str(err))
            except Exception as err:  # keep going; report at the end
                failures.append(f"lr={lr:g}: {type(err).__name__}: {err}")
            bar.update()
    else:
        failures = _run_parallel(lrs, out, workers, bar)
    bar.close()
    for message in elsewhere:
        warnings.warn(message, stacklevel=2)
    if failures:
        raise RuntimeError("some runs failed:\n" + "\n".join(failures))
    return [out / run_dir_name(lr) for lr in lrs]


def _run_parallel(lrs: Sequence[float], out: Path, workers: int, bar: Any) -> list[str]:
    """Each run in a ``sweep-run`` child process reading ``out/sweep.json`` (the merged
    settings). Children watch this process and stop when it ends; SIGTERM to this process
    is passed on to them and ends the sweep with status 143."""
    cfg_file = out / "sweep.json"
    gpus = _gpu_count()
    pending = list(lrs)
    running: list[tuple[subprocess.Popen, float]] = []
    failures: list[str] = []
    slot = 0

    def stop(signum: int, frame: Any) -> None:
        for proc, _ in running:
            proc.terminate()
        for proc, _ in running:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        print(f"sweep stopped by signal {signum}; {len(running)} runs interrupted, "
              f"{len(pending)} not started. Run the same command again to resume.",
              file=sys.stderr)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        while pending or running:
            while pending and len(running) < workers:
                lr = pending.pop(0)
                env = dict(os.environ)
                if gpus:
                    env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
                elif "OMP_NUM_THREADS" not in os.environ:
                    # CPU runs share the cores: oversubscribed threads slow every run down
                    # (two 2-thread runs on 2 cores: several times slower than one each)
                    env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
                slot += 1
                cmd = [sys.executable, "-m", "thermo_lightning.cli", "sweep-run",
                       "--config", str(cfg_file), "--lr", repr(lr), "--out", str(out),
                       "--parent-pid", str(os.getpid())]
                with open(out / f"{run_dir_name(lr)}.log", "w") as log:
                    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
                running.append((proc, lr))
            time.sleep(0.2)
            bar.set_postfix_str("; ".join(_last_line(out / f"{run_dir_name(lr)}.log")
                                          for _, lr in running), refresh=True)
            for proc, lr in list(running):
                if proc.poll() is not None:
                    running.remove((proc, lr))
                    bar.update()
                    if proc.returncode != 0:
                        failures.append(f"lr={lr:g}: exit code {proc.returncode} (see "
                                        f"{out / (run_dir_name(lr) + '.log')})")
    except BaseException:
        for proc, _ in running:  # Ctrl-C or an error here: no orphan keeps training
            proc.terminate()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return failures


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
