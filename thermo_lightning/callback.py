"""ThermoCallback: Lightning hooks wired to a :class:`~thermo_lightning.meter.ThermoMeter`.

The meter does the measurement (window, energy, stride, schedule, entropy, ESS, ``T_local``,
history); this adapter hands it the sphere strategy's group, a snapshot after every optimiser
step actually taken, each batch's loss, the SNR's extra mini-batches, the DDP all-reduce, and
writes what it measures to every attached logger. Keys: :mod:`thermo_lightning.keys`.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterable, Sequence, Sized
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from typing_extensions import override

from thermo_lightning import keys, loggers
from thermo_lightning._warnings import rank_zero_user_warn
from thermo_lightning.buffer import TrajectoryBuffer
from thermo_lightning.data.sources import DataSpec, ExtraBatches, full_data_batches
from thermo_lightning.meter import ThermoMeter
from thermo_lightning.probes import (
    batch_energy,
    default_loss_fn,
    training_step_energy,
    uses_batch_statistics,
)
from thermo_lightning.scale_invariance import (
    ParameterSpec,
    check_parameter_spec,
    resolve_parameters,
)
from thermo_lightning.schedules import Schedule
from thermo_lightning.spec import ENERGY_MODES, PAPER_PROTOCOL, WindowSpec

__all__ = ["ThermoCallback"]

LossFn = Callable[[nn.Module, Any], Tensor]


class ThermoCallback(pl.Callback):
    """Measure the thermodynamics of training: energy, entropy, temperature, gradient SNR.

    ``window``, ``stride``, ``k``, ``estimator``, ``schedule``, ``snr``, ``snr_batches``,
    ``conf_temperature``, ``sketch_dim``, ``memory_budget``, ``backend``, ``temperature``, ``lag``,
    ``n_directions``, ``max_stride``, ``save_window``, ``seed``, ``buffer_device`` and
    ``pin_memory`` are the :class:`~thermo_lightning.meter.ThermoMeter`'s (documented there,
    with the same defaults). The callback's own:

    Args:
        energy: ``"window"`` (mean loss that ``training_step`` returned over the window's
            steps, or its ``"energy"`` entry) or ``"full"`` (loss over the whole training set,
            BatchNorm in train mode, as the paper; needs ``full_data`` or a data module with
            ``full_batches()``).
        snr: the meter's (:meth:`~thermo_lightning.meter.ThermoMeter.snr_plan`; ``"auto"``
            decides at the first measurement of each fit). The full training set comes from
            ``full_data``, else ``datamodule.full_batches()``, else ``module.full_batches()``.
        snr_data: the SNR's mini-batches (an iterable or a callable returning one); default:
            independent seeded draws from the train loader's data (a
            :class:`~thermo_lightning.data.TensorBatchLoader`, or any ``DataLoader`` over a
            map-style dataset, collated by its ``collate_fn``); the training batches are
            untouched. Needed only for an ``IterableDataset``.
        full_data: the whole training set in batches; default ``datamodule.full_batches()``,
            else ``module.full_batches()``, else the train ``DataLoader``'s map-style dataset
            in order.
        loss_fn: ``(module, batch) -> loss``; default ``module.loss(batch)``, else
            ``training_step`` with logging off.
        parameters: the weights to snapshot; default the sphere strategy's group, else every
            trainable parameter (not on a sphere: ``dim = D``).
        shard: under DDP, split the window's coordinates over the ranks.

    Example::

        trainer = Trainer(strategy="sphere_projection", callbacks=[ThermoCallback()],
                          max_steps=100_000)
    """

    def __init__(
        self, window: int | str = "auto", stride: int | str = "auto",
        k: int | Sequence[int] | str = "auto",
        estimator: str = "knn_graph", schedule: str | int | Schedule = "log",
        energy: str = "window", snr: str | None = "auto", snr_batches: int = 16,
        conf_temperature: bool = False,
        snr_data: DataSpec = None, full_data: DataSpec = None, loss_fn: LossFn | None = None,
        parameters: ParameterSpec = None, buffer_device: str | torch.device | None = None,
        pin_memory: bool = False, sketch_dim: int | None = None, shard: bool = False,
        memory_budget: int | None = None, backend: str = "auto",
        temperature: float | None = None, lag: int = 4, n_directions: int = 8,
        max_stride: int = 10_000, save_window: bool = False, seed: int = 0,
    ) -> None:
        super().__init__()
        self._fit_id: int | None = None  # the training's identity (keys.FIT_ID)
        self.meter = ThermoMeter(
            window, stride, k, estimator, schedule, snr=snr, snr_batches=snr_batches,
            conf_temperature=conf_temperature, lag=lag, n_directions=n_directions,
            max_stride=max_stride, sketch_dim=sketch_dim, memory_budget=memory_budget,
            backend=backend, temperature=temperature, save_window=save_window, seed=seed,
            buffer_device=buffer_device, pin_memory=pin_memory, warn=rank_zero_user_warn,
            inform=rank_zero_info)
        if energy not in ENERGY_MODES:
            raise ValueError(f"`energy` must be 'window' or 'full', got {energy!r}.")
        if not isinstance(shard, bool):
            raise ValueError(f"`shard` must be True or False, got {shard!r}.")
        if sketch_dim is not None and shard:
            raise ValueError("use either `sketch_dim` or `shard=True`, not both.")
        check_parameter_spec(parameters)
        self.energy, self.shard = energy, shard
        self.snr_data, self.full_data, self.loss_fn, self.parameters = (snr_data, full_data,
                                                                        loss_fn, parameters)
        self._extra = ExtraBatches(snr_data, seed)
        self._said_no_snr = False

    @property
    def snr(self) -> str | None:
        """The SNR mode (the meter's ``snr``)."""
        return self.meter.snr_mode

    @property
    def snr_batches(self) -> int:
        """``K``, gradients per SNR measurement (the meter's)."""
        return self.meter.snr_batches

    @property
    def random_loss(self) -> float | None:
        """Loss of random SI weights on the first batch (``None`` until measured)."""
        return self.meter.random_loss

    # ------------------------------------------------------------------ state
    @property
    def state_key(self) -> str:
        m = self.meter
        k = list(m.k_arg) if isinstance(m.k_arg, tuple) else m.k_arg
        return self._generate_state_key(window=m.window_arg, stride=m.stride_spec, k=k,
                                        estimator=m.estimator.name)

    @classmethod
    def paper(cls, **kwargs: Any) -> ThermoCallback:
        """The paper's protocol: windows of 1000 consecutive iterates (stride 1), ``k = 50``,
        the graph-length estimator, 201 log-spaced logging points; ``kwargs`` override. Its
        windows are strongly autocorrelated (ESS far below N), which biases ``T`` low: use it
        to compare with the paper's numbers, the defaults to measure ``T``."""
        return cls(**{**PAPER_PROTOCOL, **kwargs})

    @property
    def history(self) -> pd.DataFrame:
        """Every logging point so far: a ``step`` column and one column per metric key."""
        return self.meter.history

    @property
    def buffer(self) -> TrajectoryBuffer | None:
        return self.meter.buffer

    @property
    def spec(self) -> WindowSpec | None:
        """The window's description (after the fit started); logged once as hparams."""
        return self.meter.spec

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in ("_remove", "_loss_fn"):  # bound to the last fit
            state.pop(name, None)
        return state

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**self.meter.state_dict(), "fit_id": self._fit_id}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        self._fit_id = state.pop("fit_id", None)  # the training this checkpoint is of
        self.meter.load_state_dict(state)

    # ------------------------------------------------------------------ hooks
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # before a checkpoint's callback state is restored (which brings its training's id)
        if stage == "fit":
            self._fit_id = None  # else drawn when the training starts

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        projector = getattr(trainer.strategy, "projector", None)
        on_sphere = projector is not None and bool(projector.named_parameters)
        if on_sphere and self.parameters is None:
            named = projector.named_parameters
            n_spheres = len(named) if projector.per_tensor else 1
        else:
            spec = self.parameters or [n for n, p in pl_module.named_parameters()
                                       if p.requires_grad]
            named, n_spheres = resolve_parameters(pl_module, spec), 1
            if not on_sphere:
                rank_zero_user_warn("ThermoCallback without SphereProjectionStrategy: the window "
                               "holds the raw trainable weights, which are not on a sphere "
                               "(their norm drifts), and the entropy uses dim = D. Use "
                               "strategy='sphere_projection' for the method.")
        max_steps = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        if max_steps is None:  # max_epochs instead of max_steps: the loop's own estimate
            estimated = trainer.estimated_stepping_batches
            max_steps = int(estimated) if estimated != float("inf") else None
        world, rank = trainer.world_size, trainer.global_rank
        spec = self.meter.setup(
            named, radius=projector.radius if on_sphere else None, n_spheres=n_spheres,
            optimizers=trainer.optimizers, max_steps=max_steps,
            shard=(rank, world) if self.shard and world > 1 else None,
            reduce_fn=(lambda t: trainer.strategy.reduce(t, reduce_op="sum")) if world > 1
            else None)
        if on_sphere:
            self._remove = projector.add_step_listener(lambda opt: self.meter.snapshot())
        else:
            removers = [self.meter.attach(opt) for opt in trainer.optimizers]
            self._remove = lambda: [remove() for remove in removers]
        if self.energy == "full" or self.snr is not None or self.meter.conf_temperature:
            self._loss_fn = self.loss_fn or default_loss_fn(pl_module, warn=rank_zero_user_warn)
        self._on_sphere, self._said_no_snr = on_sphere, False
        loggers.write_layout(trainer)
        loggers.log_hyperparams(trainer, spec.as_hparams())

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._teardown()

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if self.meter.random_loss is None and trainer.global_step == 0 and self._on_sphere:
            self._measure_random_loss(trainer, pl_module, batch)

    def _measure_random_loss(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any) -> None:
        """The first batch's ``U`` at random SI weights (the level of a net that learned
        nothing): what ``training_step`` returns as its energy (its ``"energy"`` entry, else
        its loss), the quantity ``U`` averages; under manual optimisation the module's
        ``loss`` (or ``loss_fn``), and nothing when it has neither."""
        step_input = _step_input(trainer, batch)
        if pl_module.automatic_optimization:
            def value() -> float:
                energy = training_step_energy(pl_module, step_input)
                return math.nan if energy is None else float(energy)
        else:
            try:
                loss_fn = self.loss_fn or default_loss_fn(pl_module)
            except ValueError:
                return

            def value() -> float:
                return float(loss_fn(pl_module, step_input))
        with trainer.precision_plugin.train_step_context():
            self.meter.measure_random_loss(pl_module, value)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after the checkpoint's loop state is restored (on_fit_start comes before it)
        step = trainer.global_step
        if self._fit_id is None:  # a new training (a resumed one has its checkpoint's)
            self._fit_id = random.SystemRandom().randrange(1, 2**24)  # exact in float32
        loggers.log_metrics(trainer, {keys.FIT_START: float(step),
                                      keys.FIT_ID: float(self._fit_id)}, step)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.meter.check_learned()
        step = trainer.global_step
        loggers.log_metrics(trainer, {keys.FIT_END: float(step)}, step)

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        self._teardown()

    def _teardown(self) -> None:  # keep nothing of the trainer after the fit
        getattr(self, "_remove", lambda: None)()
        self._remove = lambda: None
        self.meter.detach()

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        self.meter.update(batch_energy(outputs, accumulate=trainer.accumulate_grad_batches
                                       if pl_module.automatic_optimization else 1))
        step = trainer.global_step
        # step 0 at a batch's end: no optimiser step yet (the first micro-batches under
        # gradient accumulation), nothing trained to measure; the same rows with or without
        if step == 0 or not self.meter.should_measure(step):
            return
        extra: dict[str, float] = {}
        conf = self.meter.conf_temperature
        if self.energy == "full" or self.snr is not None or conf:
            loss_fn = self._loss_fn
            with trainer.precision_plugin.train_step_context():
                if self.energy == "full":
                    extra[keys.ENERGY] = self.meter.full_energy(
                        pl_module, loss_fn, self._full_batches(trainer, pl_module))
                plan = (self.meter.snr_plan(
                    lambda limit: self._count_full_batches(trainer, pl_module, limit),
                    batch_statistics=uses_batch_statistics(pl_module))
                    if self.snr is not None and self._can_draw(trainer) else None)
                # T_conf's pass computes the gradients of the same K batches: the unbiased
                # SNR comes from them, not from a second pass
                shared = conf and plan == ("unbiased", self.snr_batches)
                if plan is not None and not shared:
                    mode, noise_count = plan
                    batches = self._snr_batches(trainer, noise_count)
                    if batches:
                        full = (self._full_batches(trainer, pl_module) if mode == "exact"
                                else None)
                        extra.update(self.meter.snr(pl_module, loss_fn, batches,
                                                    full_batches=full))
                if conf and self._can_draw(trainer):  # K mini-batches, the SNR's when drawn
                    drawn = self._snr_batches(trainer, self.snr_batches)
                    if drawn:
                        extra.update(self.meter.configurational(pl_module, loss_fn, drawn,
                                                                with_snr=shared))
        for at, metrics in self.meter.measure(step, extra):
            loggers.log_metrics(trainer, metrics, at)
            if at == step:
                trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})

    def _full_batches(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                      ) -> Iterable[Any]:
        return (_step_input(trainer, b)
                for b in full_data_batches(self.full_data, trainer.datamodule, pl_module,
                                           trainer.train_dataloader))

    def _count_full_batches(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                            limit: int) -> int | None:
        """Batches of the whole training set, counted up to ``limit`` (``None``: none to be
        had); the meter's ``snr="auto"`` plan asks once per fit."""
        try:
            source = full_data_batches(self.full_data, trainer.datamodule, pl_module,
                                       trainer.train_dataloader)
        except ValueError:  # no full training set to be had
            return None
        if isinstance(source, Sized):
            return min(len(source), limit)
        return sum(1 for _ in itertools.islice(source, limit))

    def _can_draw(self, trainer: pl.Trainer) -> bool:
        """Whether the SNR's mini-batches can be had; said once per fit when not (and the SNR
        is then left out, not announced)."""
        if self._extra.can_draw(trainer.train_dataloader):
            return True
        if not self._said_no_snr:
            self._said_no_snr = True
            lost = " and ".join(what for what, on in (
                ("no gradient SNR", self.snr is not None),
                ("no configurational temperature", self.meter.conf_temperature)) if on)
            rank_zero_user_warn(
                f"ThermoCallback measures {lost} in this fit: its train loader is not a "
                "DataLoader over a map-style dataset (an IterableDataset, or several loaders), "
                "so independent mini-batches cannot be drawn without disturbing it. Pass "
                "`snr_data=` (an iterable of batches, or a callable returning one) to measure "
                "it, or snr=None / conf_temperature=False to say you do not want it.")
        return False

    def _snr_batches(self, trainer: pl.Trainer, count: int) -> list[Any]:
        batches = self._extra.draw(count, loader=trainer.train_dataloader,
                                   index=self.meter.measurements, rank=trainer.global_rank)
        return [_step_input(trainer, b) for b in batches or ()]


def _step_input(trainer: pl.Trainer, batch: Any) -> Any:
    """A batch as ``training_step`` receives it: converted by the precision plugin
    (``64-true``: float64 inputs), then on the device (the order of Lightning's loop)."""
    return trainer.strategy.batch_to_device(trainer.precision_plugin.convert_input(batch))
