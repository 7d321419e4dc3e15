"""The settings of a sweep: :class:`SweepConfig`, its fields' help and the learning-rate grid.

Imports neither torch nor Lightning (the command line builds its parser, and answers
``--help``, from here). A config checks itself when it is made: against its model's recipe
(:mod:`thermo_lightning.sweep.recipes`), and the measurement's settings with the meter's own
pure rules (:mod:`thermo_lightning.spec`), so that a sweep that cannot measure is refused
before any run trains.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermo_lightning.runs.layout import RunSpec, run_dir_name, value_text
from thermo_lightning.schedules import check_schedule
from thermo_lightning.spec import (
    BUILTIN_ESTIMATORS,
    ENERGY_MODES,
    check_snr,
    check_stride,
    check_window_arguments,
    resolve_window,
)
from thermo_lightning.sweep.coerce import coerce, yaml_scalar
from thermo_lightning.sweep.recipes import RECIPES, recipe_for

__all__ = ["DATASETS", "FIELD_HELP", "GRID_FIXED", "MODELS", "NOT_MEASUREMENT", "RunSpec",
           "SweepConfig", "lr_grid", "run_dir_name"]

DATASETS = ("digits", "cifar10", "cifar100")


#: the built-in models' names (their recipes: :data:`~thermo_lightning.sweep.recipes.RECIPES`)
MODELS = tuple(RECIPES)

#: one line per SweepConfig field: the command line's help (defaults are added there)
FIELD_HELP: dict[str, str] = {
    "model": f"one of {', '.join(RECIPES)}, or package.module:factory (a recipe's name: "
             "thermo_lightning.sweep.recipes)",
    "data": f"one of {', '.join(DATASETS)}, none, package.module:factory, or auto (digits; "
            "none for toy and langevin, which bring their own data)",
    "width": "network width (channels of the first block)",
    "lrs": "explicit learning rates (instead of --lr-min/--lr-max/--num-lrs)",
    "lr_min": "smallest learning rate of the log-spaced grid",
    "lr_max": "largest learning rate of the log-spaced grid",
    "num_lrs": "learning rates in the grid",
    "steps": "optimiser steps per run",
    "batch_size": "mini-batch size (batches drawn with replacement); langevin: the gradient "
                  "noise is the mean of batch_size draws (sigma^2 / B); auto: 1 for langevin, "
                  "else 128",
    "weight_decay": "SGD weight decay of the built-in models (convnet, resnet18)",
    "grid": "more sweep axes besides lr and seeds, as AXIS=V1,V2,... (repeat the flag): a "
            "setting such as batch_size, width or weight_decay, or model_args.NAME / "
            "data_args.NAME for an argument of your factory",
    "model_args": "extra keyword arguments of a model factory, as NAME=VALUE",
    "data_args": "extra keyword arguments of a data factory, as NAME=VALUE",
    "seed": "seed of the initial weights and the batches (the same for every LR)",
    "seeds": "run every learning rate once per seed (folders lr=...,seed=N; the report "
             "groups them by LR); none: one run per LR with --seed",
    "window": "snapshots in the entropy window, or auto (steps / 200 within [50, 1000])",
    "stride": "steps between snapshots, or auto (one correlation time, from a pilot)",
    "stride_per_lr": "c: stride = ceil(c / lr) instead of --stride",
    "k": "neighbour count(s) of the entropy, or auto (window / 20 within [3, 50])",
    "estimator": "knn_graph (the paper's) or kozachenko_leonenko",
    "schedule": "logging points: log (201 log-spaced) or an int n (every n steps)",
    "energy": "window (mean training loss) or full (loss over the whole training set)",
    "snr": "auto (exact when the training set is at most K/2 batches, else unbiased; none for "
           "langevin, whose noise is injected), unbiased, exact (with the full-data gradient) "
           "or none",
    "snr_batches": "gradients per SNR measurement (K >= 2)",
    "conf_temperature": "also measure the configurational temperature at each logging point "
                        "(about 2 K extra backward passes; docs/configurational.md)",
    "precision": "Lightning precision; auto: 64-true for toy/langevin, else 32-true",
    "accelerator": "Lightning accelerator: auto, cpu, gpu",
    "devices": "devices per run (> 1: DDP)",
    "data_root": "folder of the CIFAR data",
    "download": "download CIFAR into --data-root",
    "noise_std": "langevin: sigma of the gradient noise",
    "dim": "langevin: dimension of the space (the sphere has dim - 1)",
    "checkpoint_every": "steps between checkpoints; none: steps / 10",
}

@dataclass
class SweepConfig:
    """Everything a sweep needs; loads from YAML (:meth:`from_yaml`) and the command line.

    Models by name: ``convnet`` / ``resnet18`` (the paper's scale-invariant networks of width
    ``width``), ``toy-up`` / ``toy-op`` (the 3-D toy problems), ``langevin`` (the
    known-temperature problem); or ``"package.module:factory"``, called as
    ``factory(lr=..., width=..., datamodule=..., seed=...)`` and returning a LightningModule.
    Data by name: ``digits`` (offline), ``cifar10``, ``cifar100`` (torchvision, ``data_root``,
    ``download``), ``None`` for the toy and Langevin problems, or an import path called as
    ``factory(batch_size=..., seed=...)``; ``"auto"`` (default): ``digits``, or ``None`` for
    the models that bring their own data. ``precision="auto"``: ``64-true`` for those,
    ``32-true`` otherwise; ``snr="auto"`` is off for the Langevin problem.

    ``window``, ``stride`` and ``k`` are the callback's (default ``"auto"``: the window sized
    from ``steps``, the stride from the run's own correlation time; see
    :class:`~thermo_lightning.meter.ThermoMeter`).
    ``stride_per_lr=c`` thins each run with ``stride = ceil(c / lr)`` instead of ``stride``:
    SGD's correlation time grows like ``1 / lr``, so one ``c`` gives every LR about the same
    number of snapshots per correlation time (for the Langevin problem ``c = 2 / lambda``).
    """

    model: str = "convnet"
    data: str | None = "auto"
    width: int = 8
    lrs: list[float] | None = None
    lr_min: float = 1e-3
    lr_max: float = 1.0
    num_lrs: int = 10
    steps: int = 2000
    batch_size: int | str = "auto"
    weight_decay: float = 0.0
    seed: int = 0
    seeds: list[int] | None = None
    grid: dict[str, list[Any]] | None = None
    model_args: dict[str, Any] | None = None
    data_args: dict[str, Any] | None = None
    window: int | str = "auto"
    stride: int | str = "auto"
    stride_per_lr: float | None = None
    k: list[int] | str = "auto"
    estimator: str = "knn_graph"
    schedule: str | int = "log"
    energy: str = "window"
    snr: str | None = "auto"
    snr_batches: int = 16
    conf_temperature: bool = False
    precision: str | None = "auto"
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
            setattr(self, f.name, coerce(f.name, getattr(self, f.name), hints[f.name]))
        recipe = recipe_for(self.model)  # raises for an unknown model
        # "auto" settings take their value from the model (print_config shows the result)
        if self.data == "auto":
            self.data = None if recipe.brings_own_data else "digits"
        elif recipe.brings_own_data and self.data is not None:
            raise ValueError(f"model {self.model!r} brings its own data: leave `data` out "
                             f"(--data auto) or pass --data none, not {self.data!r}.")
        if self.batch_size == "auto":
            self.batch_size = recipe.batch_size
        elif isinstance(self.batch_size, str):
            raise ValueError(f"`batch_size` must be a positive integer or 'auto', got "
                             f"{self.batch_size!r}.")
        if self.weight_decay and not recipe.weight_decay:
            raise ValueError(
                f"`weight_decay` applies to the built-in networks; for {self.model!r} pass it "
                "to your factory as model_args.weight_decay (or --model-args weight_decay=...).")
        if self.model_args and not recipe.model_args:
            raise ValueError("`model_args` are passed to a model factory "
                             "('package.module:factory'); the built-in models take none.")
        if self.data_args and (self.data is None or ":" not in self.data):
            raise ValueError("`data_args` are passed to a data factory "
                             "('package.module:factory'); the built-in data sets take none.")
        self._check_grid()
        if self.precision in (None, "auto"):
            self.precision = recipe.precision
        if self.snr == "auto":
            self.snr = recipe.snr  # the Langevin problem's noise is injected: none
        if self.data is not None and self.data not in DATASETS and ":" not in self.data:
            raise ValueError(
                f"`data` must be one of {DATASETS}, None or 'package.module:factory', got "
                f"{self.data!r}."
            )
        if recipe.needs_data and self.data is None:
            raise ValueError(f"model {self.model!r} needs `data` (digits, cifar10, cifar100).")
        for name in ("steps", "batch_size", "width", "devices"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"`{name}` (--{name.replace('_', '-')}) must be a positive "
                                 f"integer, got {getattr(self, name)!r}.")
        if not (isinstance(self.noise_std, int | float) and 0 < self.noise_std < math.inf):
            raise ValueError(f"`noise_std` (--noise-std) must be a positive number, got "
                             f"{self.noise_std!r}.")
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 2:
            raise ValueError(f"`dim` (--dim) must be an integer >= 2 (the sphere in R^dim), "
                             f"got {self.dim!r}.")
        if self.lrs is not None:
            if not self.lrs or any(not (0 < lr < math.inf) for lr in self.lrs):
                raise ValueError(f"`lrs` must be positive finite numbers, got {self.lrs!r}.")
        elif not (0 < self.lr_min < self.lr_max < math.inf) or self.num_lrs < 1:
            raise ValueError("`lr_min < lr_max` (both positive) and `num_lrs >= 1` are needed.")
        if self.stride_per_lr is not None and not self.stride_per_lr > 0:
            raise ValueError(f"`stride_per_lr` must be positive, got {self.stride_per_lr!r}.")
        lrs = self.learning_rates()
        names = [run_dir_name(lr) for lr in lrs]
        if len(set(lrs)) != len(lrs) or len(set(names)) != len(names):
            raise ValueError(f"`lrs` must be distinct learning rates, got {lrs!r}.")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)
                                       or any(s < 0 for s in self.seeds)):
            raise ValueError(f"`seeds` must be distinct non-negative integers, got "
                             f"{self.seeds!r}.")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ValueError(
                f"`checkpoint_every` must be a positive integer, got {self.checkpoint_every!r}.")
        self._check_measurement(lrs)

    def _check_measurement(self, lrs: list[float]) -> None:
        """The meter's own rules (:mod:`thermo_lightning.spec`), before any run starts: its
        arguments, and a window that cannot fill within ``steps`` (it would measure no
        entropy; ``stride="auto"`` counts stride 1, the least it can use)."""
        window, k = check_window_arguments(self.window, self.k)
        check_stride(self.stride)
        check_schedule(self.schedule)
        if self.estimator not in BUILTIN_ESTIMATORS:
            from thermo_lightning.functional.entropy import get_estimator

            get_estimator(self.estimator)  # one registered in this process; else raises
        if self.energy not in ENERGY_MODES:
            raise ValueError(f"`energy` must be 'window' or 'full', got {self.energy!r}.")
        check_snr(self.snr, self.snr_batches)
        n, _ = resolve_window(window, k, self.steps)
        for lr in lrs:
            stride = self.stride_for(lr)
            need = n * (1 if stride == "auto" else int(stride))
            if need > self.steps:
                raise ValueError(
                    f"a window of {n} snapshots at stride {stride} needs {need} steps, more "
                    f"than `steps` ({self.steps}): no entropy would be measured. Pass a "
                    "smaller `window` (or 'auto'), a smaller stride, or more steps. (sweep "
                    f"setting at lr={lr:g})")

    def _check_grid(self) -> None:
        """``grid``: axis -> distinct values, each axis a per-run setting or a factory
        argument; values converted to the setting's type."""
        if self.grid is None:
            return
        if not isinstance(self.grid, dict) or not self.grid:
            raise ValueError(f"`grid` must map axis names to lists of values, got "
                             f"{self.grid!r}.")
        hints = typing.get_type_hints(type(self))
        checked: dict[str, list[Any]] = {}
        for axis, values in self.grid.items():
            if axis in ("lr", "lrs", "seed", "seeds"):
                raise ValueError(f"`grid` axis {axis!r}: the learning rates and seeds have "
                                 "their own settings (lrs / lr_min..lr_max, seeds).")
            prefix = axis.split(".", 1)[0]
            if "." in axis:
                if prefix not in ("model_args", "data_args") or not axis.split(".", 1)[1]:
                    raise ValueError(f"`grid` axis {axis!r}: a dotted axis is "
                                     "model_args.NAME or data_args.NAME.")
                if (prefix == "model_args" and ":" not in self.model) or (
                        prefix == "data_args" and (self.data is None or ":" not in self.data)):
                    raise ValueError(f"`grid` axis {axis!r} needs a {prefix[:-5]} factory "
                                     "('package.module:factory').")
            elif axis in recipe_for(self.model).ignores:
                raise ValueError(f"`grid` axis {axis!r} does not change a {self.model!r} run "
                                 f"(the model ignores {axis}): every value would train the "
                                 "same run.")
            elif axis not in hints or axis in GRID_FIXED:
                allowed = sorted(set(hints) - GRID_FIXED)
                raise ValueError(f"`grid` axis {axis!r} is not a per-run setting; use one of "
                                 f"{allowed}, or model_args.NAME / data_args.NAME.")
            items = values if isinstance(values, list | tuple) else [values]
            if not items:
                raise ValueError(f"`grid` axis {axis!r} has no values.")
            if "." in axis:
                items = [yaml_scalar(v) for v in items]
            else:
                items = [coerce(axis, v, hints[axis]) for v in items]
            names = [value_text(v) for v in items]
            if len(set(names)) != len(names):
                raise ValueError(f"`grid` axis {axis!r} repeats a value: {items!r}.")
            checked[axis] = items
        self.grid = checked
        for axis, items in checked.items():  # every value through the settings' own checks
            if "." in axis:
                continue
            for value in items:
                try:
                    dataclasses.replace(self, grid=None, **{axis: value})
                except ValueError as err:
                    raise ValueError(f"`grid` axis {axis}={value!r}: {err}") from err

    def runs(self) -> list[RunSpec]:
        """Every run of the sweep, by learning rate, then the other axes of ``grid`` (in
        their order), then seed; ``seed`` is ``None`` without ``seeds``."""
        seeds: list[int | None] = list(self.seeds) if self.seeds is not None else [None]
        axes = list((self.grid or {}).items())
        combos = [()]
        for axis, values in axes:
            combos = [(*c, (axis, v)) for c in combos for v in values]
        return [RunSpec(lr, seed, combo) for lr in self.learning_rates() for combo in combos
                for seed in seeds]

    def run_named(self, name: str) -> RunSpec:
        """The run of the sweep whose folder is ``name``."""
        for spec in self.runs():
            if spec.name == name:
                return spec
        raise ValueError(f"no run named {name!r} in this sweep (its runs: "
                         f"{', '.join(r.name for r in self.runs()[:4])}, ...).")

    def for_run(self, spec: RunSpec) -> SweepConfig:
        """The settings of one run: its seed and axis values in place of the sweep's."""
        changes: dict[str, Any] = {"seeds": None, "grid": None}
        if spec.seed is not None:
            changes["seed"] = spec.seed
        model_args, data_args = dict(self.model_args or {}), dict(self.data_args or {})
        for axis, value in spec.values:
            if axis.startswith("model_args."):
                model_args[axis.split(".", 1)[1]] = value
            elif axis.startswith("data_args."):
                data_args[axis.split(".", 1)[1]] = value
            else:
                changes[axis] = value
        changes["model_args"] = model_args or None
        changes["data_args"] = data_args or None
        return dataclasses.replace(self, **changes)

    def measurement_settings(self) -> dict[str, Any]:
        """The settings that change what a run measures (every field but the LR grid and
        where and how fast it runs): a finished run is reused only when they are equal."""
        values = dataclasses.asdict(self)
        return {k: v for k, v in values.items() if k not in NOT_MEASUREMENT}

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
        """The Lightning precision (``"auto"`` is resolved when the config is made)."""
        assert self.precision is not None, "resolved in __post_init__"
        return self.precision


# settings that do not change a run's numbers: the grid itself, and where/how it runs
NOT_MEASUREMENT = frozenset({"lrs", "lr_min", "lr_max", "num_lrs", "seeds", "grid",
                              "accelerator", "devices", "data_root", "download",
                              "checkpoint_every"})
#: settings that cannot be a ``grid`` axis (what the sweep is, and where it runs)
GRID_FIXED = frozenset({"model", "data", "lrs", "lr_min", "lr_max", "num_lrs", "seed", "seeds",
                        "grid", "model_args", "data_args", "accelerator", "devices",
                        "data_root", "download", "checkpoint_every", "precision"})


def lr_grid(lr_min: float, lr_max: float, num: int) -> list[float]:
    """``num`` log-spaced learning rates from ``lr_min`` to ``lr_max`` (3 significant
    digits)."""
    if num == 1:
        return [float(f"{lr_min:.3g}")]
    return [float(f"{v:.3g}") for v in np.geomspace(lr_min, lr_max, num)]


