"""Model recipes: what a sweep knows about each model, one registry entry per model.

A :class:`Recipe` says how to build the model of one run, what its settings default to
(data, batch size, precision, SNR), which settings it ignores (a grid axis over one of them
would train one run several times), the loss of its random weights (the saturation level)
and, where the model knows it, the exact temperature. :class:`~thermo_lightning.sweep.config.
SweepConfig` checks a sweep against its model's recipe, the runner builds and records runs
through it, and the report reads what the runner recorded: a new model is one entry here.

Importing this module loads neither torch nor Lightning; a recipe's functions do when they
run.

Example: a recipe of one's own, for a sweep run in this process (a ``sweep-run`` worker
process, which every launcher but ``LocalLauncher(workers=1)`` starts, imports the recipes of
this module only; add the entry here, or use a factory, ``model="package.module:factory"``)::

    from thermo_lightning.sweep.recipes import Recipe, register_recipe

    def build(cfg, lr, datamodule):
        from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet
        net = ScaleInvariantConvNet(cfg.width, num_classes=datamodule.num_classes,
                                    in_channels=datamodule.in_channels)
        return ClassificationTask(net, lr=lr, momentum=0.9)

    register_recipe(Recipe("convnet-momentum", build, needs_data=True))
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thermo_lightning.sweep.config import SweepConfig

__all__ = [
    "BUILTIN",
    "FACTORY",
    "RECIPES",
    "Recipe",
    "import_factory",
    "langevin_noise_std",
    "recipe_for",
    "register_recipe",
    "registered_here_only",
]

#: ``(cfg, lr, datamodule) -> LightningModule``
Build = Callable[["SweepConfig", float, Any], Any]
#: ``(module, datamodule, seed) -> loss of random SI weights`` (``None``: cannot tell)
RandomLoss = Callable[[Any, Any, int], "float | None"]


@dataclass(frozen=True)
class Recipe:
    """What a sweep knows about one model.

    Attributes:
        name: the model's name (``--model NAME``).
        build: ``(cfg, lr, datamodule) -> LightningModule``, the run's model (its initial
            weights are seeded by the runner, the same for every learning rate).
        brings_own_data: the model holds its data (no ``data`` setting: ``auto`` is none).
        needs_data: the model needs a data set (``auto`` is ``digits``).
        batch_size: the default of ``batch_size="auto"``.
        precision: the default of ``precision="auto"``.
        snr: what ``snr="auto"`` becomes (``None``: the SNR is off, e.g. for injected noise).
        ignores: settings that do not change a run of this model (refused as grid axes).
        weight_decay: whether the model takes the ``weight_decay`` setting.
        model_args: whether it takes ``model_args`` (factories).
        verify: whether the sphere strategy checks the model's scale invariance at start.
        random_loss: ``(module, datamodule, seed) -> float | None``, the loss of random SI
            weights on the sphere (``None``: not measured).
        known_temperature: ``(cfg, lr) -> float | None``, the exact temperature where the
            model knows it; recorded in ``run.json`` and shown by the report as ``T_true``.
        run_hparams: ``cfg -> dict``, settings recorded with each run besides the sweep's.
    """

    name: str
    build: Build
    brings_own_data: bool = False
    needs_data: bool = False
    batch_size: int = 128
    precision: str = "32-true"
    snr: str | None = "auto"
    ignores: tuple[str, ...] = ("noise_std", "dim")
    weight_decay: bool = False
    model_args: bool = False
    verify: bool = True
    random_loss: RandomLoss | None = None
    known_temperature: Callable[[SweepConfig, float], float | None] | None = None
    run_hparams: Callable[[SweepConfig], dict[str, Any]] | None = field(default=None)


RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Add ``recipe`` to :data:`RECIPES` under its name (a model name holds no ``:``, which
    marks an import path)."""
    if not recipe.name or ":" in recipe.name:
        raise ValueError(f"a recipe's name is a model name without ':', got {recipe.name!r}.")
    RECIPES[recipe.name] = recipe
    return recipe


def recipe_for(model: str) -> Recipe:
    """The recipe of ``model``: a registered name, or :data:`FACTORY` for an import path
    (``package.module:factory``).

    Raises:
        ValueError: neither.
    """
    if model in RECIPES:
        return RECIPES[model]
    if isinstance(model, str) and ":" in model:
        return FACTORY
    raise ValueError(f"`model` must be one of {tuple(RECIPES)} or 'package.module:factory', "
                     f"got {model!r}.")


def registered_here_only(model: str) -> bool:
    """Whether ``model`` names a recipe registered at run time in this process (not one of
    :data:`BUILTIN`, which every worker process has)."""
    return model in RECIPES and model not in BUILTIN


def import_factory(path: str) -> Callable[..., Any]:
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


# ------------------------------------------------------------------------------ built-in
def _si_params(model: Any) -> list[Any]:
    from thermo_lightning.scale_invariance import resolve_parameters

    return [p for _, p in resolve_parameters(model, None)]


def _build_network(cfg: SweepConfig, lr: float, dm: Any) -> Any:
    from thermo_lightning.models import (
        ClassificationTask,
        ScaleInvariantConvNet,
        ScaleInvariantResNet18,
    )

    assert dm is not None, "a network's recipe needs data (checked by SweepConfig)"
    cls = ScaleInvariantConvNet if cfg.model == "convnet" else ScaleInvariantResNet18
    net = cls(cfg.width, num_classes=dm.num_classes, in_channels=dm.in_channels)
    return ClassificationTask(net, lr=lr, weight_decay=cfg.weight_decay)


def _network_random_loss(model: Any, dm: Any, seed: int) -> float | None:
    """Mean loss of random SI weights over the first 4 full-data batches."""
    from itertools import islice

    from thermo_lightning.probes import random_weight_loss

    if dm is None or not hasattr(dm, "full_batches"):
        return None
    dm.setup("fit")
    batches = list(islice(dm.full_batches(), 4))
    return random_weight_loss(
        model, _si_params(model),
        lambda: sum(float(model.loss(b)[0]) for b in batches) / len(batches), seed=seed)


def _build_toy(cfg: SweepConfig, lr: float, dm: Any) -> Any:
    from thermo_lightning.models import ToySphereModule

    return ToySphereModule(kind=cfg.model[-2:], lr=lr, seed=cfg.seed)


def _toy_random_loss(model: Any, dm: Any, seed: int) -> float | None:
    from thermo_lightning.probes import random_weight_loss

    return random_weight_loss(model, _si_params(model), lambda: float(model.full_loss()),
                              draws=64, seed=seed)


def langevin_noise_std(cfg: SweepConfig) -> float:
    """The gradient noise of the Langevin problem's runs: ``noise_std / sqrt(batch_size)``
    (the mean of ``batch_size`` independent draws), so that ``T = lr noise_std^2 /
    (2 batch_size)``; ``batch_size`` is 1 unless set."""
    return cfg.noise_std / math.sqrt(int(cfg.batch_size))


def _build_langevin(cfg: SweepConfig, lr: float, dm: Any) -> Any:
    from thermo_lightning.models import LangevinSphere, LangevinSphereModule

    problem = LangevinSphere(dim=cfg.dim, noise_std=langevin_noise_std(cfg))
    return LangevinSphereModule(problem, lr=lr, seed=cfg.seed, init_seed=cfg.seed)


def _langevin_temperature(cfg: SweepConfig, lr: float) -> float:
    """The temperature a sweep of the known-temperature problem measures: ``dU/dS`` of the
    discrete chain's stationary law (:meth:`~thermo_lightning.models.LangevinSphere.
    chain_temperature`), ``lr sigma^2 / 2`` up to ``O(lr lambda)``; the first-order value
    where the chain is not stable at ``lr``."""
    from thermo_lightning.models import LangevinSphere

    problem = LangevinSphere(dim=cfg.dim, noise_std=langevin_noise_std(cfg))
    try:
        return problem.chain_temperature(lr)
    except ValueError:  # lr * lambda_max >= 2: no stationary chain to compare with
        return problem.temperature(lr)


def _langevin_random_loss(model: Any, dm: Any, seed: int) -> float | None:
    from thermo_lightning.probes import random_weight_loss

    return random_weight_loss(model, _si_params(model), lambda: float(model.energy()),
                              draws=64, seed=seed)


def _module_random_loss(model: Any, dm: Any, seed: int) -> float | None:
    """A factory's module: the random-weights loss of the built-in module it is (a
    classification task, a toy or the Langevin problem), else ``None``."""
    from thermo_lightning.models import ClassificationTask, LangevinSphereModule, ToySphereModule

    for cls, measure in ((ClassificationTask, _network_random_loss),
                         (ToySphereModule, _toy_random_loss),
                         (LangevinSphereModule, _langevin_random_loss)):
        if isinstance(model, cls):
            return measure(model, dm, seed)
    return None


def _build_factory(cfg: SweepConfig, lr: float, dm: Any) -> Any:
    return import_factory(cfg.model)(lr=lr, width=cfg.width, datamodule=dm, seed=cfg.seed,
                                     **(cfg.model_args or {}))


_TOY_IGNORES = ("width", "batch_size", "weight_decay", "noise_std", "dim")
for _recipe in (
    Recipe("convnet", _build_network, needs_data=True, weight_decay=True,
           random_loss=_network_random_loss),
    Recipe("resnet18", _build_network, needs_data=True, weight_decay=True,
           random_loss=_network_random_loss),
    Recipe("toy-up", _build_toy, brings_own_data=True, precision="64-true",
           ignores=_TOY_IGNORES, random_loss=_toy_random_loss),
    Recipe("toy-op", _build_toy, brings_own_data=True, precision="64-true",
           ignores=_TOY_IGNORES, random_loss=_toy_random_loss),
    Recipe("langevin", _build_langevin, brings_own_data=True, batch_size=1,
           precision="64-true", snr=None, ignores=("width", "weight_decay"),
           verify=False, random_loss=_langevin_random_loss,
           known_temperature=_langevin_temperature,
           run_hparams=lambda cfg: {"gradient_noise_std": langevin_noise_std(cfg)}),
):
    register_recipe(_recipe)

#: the recipes every process has (a worker process imports this module afresh: a recipe
#: registered at run time exists only in the process that registered it)
BUILTIN = frozenset(RECIPES)

#: the recipe of a model given as an import path, ``package.module:factory``, called as
#: ``factory(lr=..., width=..., datamodule=..., seed=..., **model_args)``
FACTORY = Recipe("factory", _build_factory, ignores=("noise_std", "dim", "weight_decay"),
                 model_args=True, random_loss=_module_random_loss)
