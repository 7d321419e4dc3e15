"""Learning-rate sweeps: one training run per LR, each in its own folder, resumable.

Every run of a sweep starts from the same initial weights (one seed) and the same seeded
batch sequence, trains with :class:`~thermo_lightning.SphereProjectionStrategy` and plain SGD
at its learning rate, and is measured by :class:`~thermo_lightning.ThermoCallback`. A run's
folder holds ``run.json`` (its hyperparameters and status), TensorBoard events, a CSV log,
``history.csv`` (the callback's table) and ``checkpoints/last.ckpt``. A finished run is skipped
when the sweep is run again; an interrupted one resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from thermo_lightning.callback import ThermoCallback
from thermo_lightning.strategy import DDPSphereProjectionStrategy, SphereProjectionStrategy

__all__ = ["SweepConfig", "lr_grid", "run_dir_name", "run_one", "run_sweep"]

MODELS = ("convnet", "resnet18", "toy-up", "toy-op", "langevin")
DATASETS = ("digits", "cifar10", "cifar100")
RUN_FILE = "run.json"
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
    window: int = 1000
    stride: int | str = 1
    stride_per_lr: float | None = None
    k: list[int] = field(default_factory=lambda: [50])
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
        if isinstance(self.k, int):
            self.k = [self.k]
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


def lr_grid(lr_min: float, lr_max: float, num: int) -> list[float]:
    """``num`` log-spaced learning rates from ``lr_min`` to ``lr_max`` (3 significant
    digits)."""
    if num == 1:
        return [float(f"{lr_min:.3g}")]
    return [float(f"{v:.3g}") for v in np.geomspace(lr_min, lr_max, num)]


def run_dir_name(lr: float) -> str:
    """Folder name of the run at ``lr``: ``lr=1.00e-02``."""
    return f"lr={lr:.2e}"


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


def run_one(cfg: SweepConfig, lr: float, out: str | Path, *, progress_bar: bool = False) -> Path:
    """Train and measure the run at ``lr`` in ``out/lr=...``; skip it when done, resume it
    from ``checkpoints/last.ckpt`` when interrupted. Returns the run's folder."""
    run_dir = Path(out) / run_dir_name(lr)
    run_dir.mkdir(parents=True, exist_ok=True)
    info = _read_run(run_dir)
    if info.get("status") == "done":
        return run_dir
    hparams = {**dataclasses.asdict(cfg), "lr": lr, "precision": cfg.resolved_precision(),
               "stride": cfg.stride_for(lr)}
    hparams.pop("lrs")
    info.update(hparams=hparams, status="running", started=time.time())
    _write_run(run_dir, info)

    dm = _datamodule(cfg)
    model = _model(cfg, lr, dm)
    if "random_loss" not in info:
        info["random_loss"] = _random_loss(model, dm, cfg.seed)
    thermo = ThermoCallback(window=cfg.window, stride=cfg.stride_for(lr), k=cfg.k,
                            estimator=cfg.estimator, schedule=cfg.schedule, energy=cfg.energy,
                            snr=cfg.snr, snr_batches=cfg.snr_batches, seed=cfg.seed)
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
        max_steps=cfg.steps, callbacks=[thermo, ckpt], logger=loggers,
        enable_progress_bar=progress_bar, enable_model_summary=False,
        log_every_n_steps=max(1, min(50, cfg.steps)),
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            trainer.fit(model, datamodule=dm, ckpt_path=last if last.exists() else None)
    except BaseException as err:
        info.update(status="failed", error=f"{type(err).__name__}: {err}")
        _write_run(run_dir, info)
        raise
    if trainer.global_rank == 0:
        thermo.history.to_csv(run_dir / HISTORY_FILE, index=False)
        info.update(
            status="done", finished=time.time(), global_step=trainer.global_step,
            num_parameters=sum(p.numel() for _, p in thermo._named), entropy_dim=thermo._dim,
            train_acc=_final_metric(trainer, "train/acc"),
        )
        _write_run(run_dir, info)
    return run_dir


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
    config_path: Path | None = None,
    progress: bool = True,
) -> list[Path]:
    """Run every learning rate of ``cfg`` into ``out``.

    Args:
        workers: runs in parallel processes (each ``thermo-lightning sweep-run``; one GPU each
            when there are GPUs). ``1`` runs them one after the other in this process.
        progress: a progress bar over runs.

    Returns:
        The run folders, in LR order. Failed runs are reported at the end (the others finish).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2, default=str))
    lrs = cfg.learning_rates()
    from tqdm.auto import tqdm

    bar = tqdm(total=len(lrs), desc="sweep", unit="run", disable=not progress)
    failures: list[str] = []
    if workers <= 1:
        for lr in lrs:
            try:
                run_one(cfg, lr, out)
            except Exception as err:  # keep going; report at the end
                failures.append(f"lr={lr:g}: {type(err).__name__}: {err}")
            bar.update()
    else:
        failures = _run_parallel(cfg, lrs, out, workers, config_path, bar)
    bar.close()
    if failures:
        raise RuntimeError("some runs failed:\n" + "\n".join(failures))
    return [out / run_dir_name(lr) for lr in lrs]


def _run_parallel(cfg: SweepConfig, lrs: Sequence[float], out: Path, workers: int,
                  config_path: Path | None, bar: Any) -> list[str]:
    cfg_file = config_path or (out / "sweep.json")
    gpus = _gpu_count()
    pending = list(lrs)
    running: list[tuple[subprocess.Popen, float]] = []
    failures: list[str] = []
    slot = 0
    while pending or running:
        while pending and len(running) < workers:
            lr = pending.pop(0)
            env = dict(os.environ)
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
            slot += 1
            cmd = [sys.executable, "-m", "thermo_lightning.cli", "sweep-run",
                   "--config", str(cfg_file), "--lr", repr(lr), "--out", str(out)]
            log = open(out / f"{run_dir_name(lr)}.log", "w")  # noqa: SIM115 - closed by the child's exit
            running.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT),
                            lr))
        time.sleep(0.2)
        for proc, lr in list(running):
            if proc.poll() is not None:
                running.remove((proc, lr))
                bar.update()
                if proc.returncode != 0:
                    failures.append(f"lr={lr:g}: exit code {proc.returncode} (see "
                                    f"{out / (run_dir_name(lr) + '.log')})")
    return failures
