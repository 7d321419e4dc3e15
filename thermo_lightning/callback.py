"""ThermoCallback: Lightning hooks wired to a :class:`~thermo_lightning.meter.ThermoMeter`.

The meter does the measurement (window, energy, stride, schedule, entropy, ESS, ``T_local``,
history); this adapter hands it the sphere strategy's group, a snapshot after every optimiser
step actually taken, each batch's loss, the SNR's extra mini-batches, the DDP all-reduce, and
writes what it measures to every attached logger. Keys: :mod:`thermo_lightning.keys`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from typing_extensions import override

from thermo_lightning import keys, loggers
from thermo_lightning.buffer import TrajectoryBuffer
from thermo_lightning.data.sources import DataSpec, ExtraBatches, full_data_batches
from thermo_lightning.meter import PAPER_PROTOCOL, ThermoMeter, WindowSpec
from thermo_lightning.probes import batch_energy, default_loss_fn, random_weight_loss
from thermo_lightning.scale_invariance import (
    ParameterSpec,
    check_parameter_spec,
    resolve_parameters,
)
from thermo_lightning.schedules import Schedule

__all__ = ["ThermoCallback"]

_NOT_LEARNING = 0.8  # a final U above this share of the random-weights loss is warned about
_SNR_MODES = ("auto", "unbiased", "exact", None)

LossFn = Callable[[nn.Module, Any], Tensor]


class ThermoCallback(pl.Callback):
    """Measure the thermodynamics of training: energy, entropy, temperature, gradient SNR.

    ``window``, ``stride``, ``k``, ``estimator``, ``schedule``, ``sketch_dim``,
    ``memory_budget``, ``backend``, ``temperature``, ``lag``, ``n_directions``,
    ``max_stride``, ``save_window``, ``seed``, ``buffer_device`` and ``pin_memory`` are the
    :class:`~thermo_lightning.meter.ThermoMeter`'s (documented there). The callback's own:

    Args:
        energy: ``"window"`` (mean loss that ``training_step`` returned over the window's
            steps, or its ``"energy"`` entry) or ``"full"`` (loss over the whole training set,
            BatchNorm in train mode, as the paper; needs ``full_data`` or a data module with
            ``full_batches()``).
        snr: ``"auto"`` (default): ``"exact"`` when a pass over the whole training set takes
            at most ``K / 2`` batches (decided once, at the first measurement; the noise then
            uses ``K / 2`` mini-batches, so the cost stays at most ``K`` gradients), else
            ``"unbiased"``. ``"unbiased"``: ``K`` extra mini-batches and the pairwise
            unbiased estimate of ``||g||^2``; where that estimate is not positive (a signal
            below what ``K`` batches resolve) ``thermo/snr`` is NaN, not 0. ``"exact"``: the
            full-data gradient plus ``K`` mini-batches (the paper's definition). ``None``:
            off. The full training set comes from ``full_data``, else
            ``datamodule.full_batches()``, else ``module.full_batches()``.
        snr_batches: ``K >= 2`` gradients per SNR measurement.
        snr_data: the SNR's mini-batches (an iterable or a callable returning one); default:
            independent draws from a :class:`~thermo_lightning.data.TensorBatchLoader`.
        full_data: the whole training set in batches; default ``datamodule.full_batches()``.
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
        snr_data: DataSpec = None, full_data: DataSpec = None, loss_fn: LossFn | None = None,
        parameters: ParameterSpec = None, buffer_device: str | torch.device | None = None,
        pin_memory: bool = False, sketch_dim: int | None = None, shard: bool = False,
        memory_budget: int | None = None, backend: str = "auto",
        temperature: float | None = None, lag: int = 4, n_directions: int = 8,
        max_stride: int = 10_000, save_window: bool = False, seed: int = 0,
    ) -> None:
        super().__init__()
        self.meter = ThermoMeter(
            window, stride, k, estimator, schedule, lag=lag, n_directions=n_directions,
            max_stride=max_stride, sketch_dim=sketch_dim, memory_budget=memory_budget,
            backend=backend, temperature=temperature, save_window=save_window, seed=seed,
            buffer_device=buffer_device, pin_memory=pin_memory, warn=rank_zero_warn,
            inform=rank_zero_info)
        if energy not in ("window", "full"):
            raise ValueError(f"`energy` must be 'window' or 'full', got {energy!r}.")
        if snr not in _SNR_MODES:
            raise ValueError(f"`snr` must be 'auto', 'unbiased', 'exact' or None, got {snr!r}.")
        if isinstance(snr_batches, bool) or not isinstance(snr_batches, int) or snr_batches < 2:
            raise ValueError(f"`snr_batches` (K) must be an integer >= 2, got {snr_batches!r}.")
        if not isinstance(shard, bool):
            raise ValueError(f"`shard` must be True or False, got {shard!r}.")
        if sketch_dim is not None and shard:
            raise ValueError("use either `sketch_dim` or `shard=True`, not both.")
        check_parameter_spec(parameters)
        self.energy, self.snr, self.snr_batches, self.shard = energy, snr, snr_batches, shard
        self.snr_data, self.full_data, self.loss_fn, self.parameters = (snr_data, full_data,
                                                                        loss_fn, parameters)
        self._extra = ExtraBatches(snr_data, seed)
        #: loss of random SI weights on the first batch (``None`` until measured)
        self.random_loss: float | None = None
        #: ``(mode, mini-batches for the noise)`` that ``snr="auto"`` chose for this fit
        self._snr_plan: tuple[str, int] | None = None

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
        return self.meter.state_dict()

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.meter.load_state_dict(state_dict)

    # ------------------------------------------------------------------ hooks
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
                rank_zero_warn("ThermoCallback without SphereProjectionStrategy: the window "
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
        if self.energy == "full" or self.snr is not None:
            self._loss_fn = self.loss_fn or default_loss_fn(pl_module, warn=rank_zero_warn)
        self._on_sphere = on_sphere
        self._radius = projector.radius if on_sphere else 1.0
        self._snr_plan = None  # snr="auto" decides again for this fit
        loggers.write_layout(trainer)
        loggers.log_hyperparams(trainer, spec.as_hparams())

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._teardown()

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: Any, batch_idx: int) -> None:
        if self.random_loss is None and trainer.global_step == 0 and self._on_sphere:
            self.random_loss = self._random_weight_loss(trainer, pl_module, batch)

    def _random_weight_loss(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                            batch: Any) -> float | None:
        """The first batch's loss at random SI weights (the level of a net that learned
        nothing); ``None`` when the module gives no loss outside ``training_step`` (manual
        optimisation without ``loss``)."""
        try:
            loss_fn = self.loss_fn or default_loss_fn(pl_module)
        except ValueError:
            return None
        params = list(self.meter._params)
        step_input = _step_input(trainer, batch)
        with trainer.precision_plugin.train_step_context():
            return random_weight_loss(pl_module, params,
                                      lambda: float(loss_fn(pl_module, step_input)),
                                      radius=self._radius, seed=self.meter.seed)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = self.meter.history
        if self.random_loss is None or history.empty or keys.ENERGY not in history:
            return
        energies = history[keys.ENERGY].dropna()
        if len(energies) and energies.iloc[-1] >= _NOT_LEARNING * self.random_loss:
            rank_zero_warn(
                f"ThermoCallback: the training loss U = {energies.iloc[-1]:.4g} at the end is "
                f"at or near the loss of random weights ({self.random_loss:.4g}): the network "
                "has not learned (the saturated regime of a too-high learning rate). If you "
                "meant to train it, lower the learning rate or train longer.")

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
        if self.energy == "full" or self.snr is not None:
            loss_fn = self._loss_fn
            with trainer.precision_plugin.train_step_context():
                if self.energy == "full":
                    extra[keys.ENERGY] = self.meter.full_energy(
                        pl_module, loss_fn, self._full_batches(trainer, pl_module))
                if self.snr is not None:
                    mode, noise_count = self._snr_mode(trainer, pl_module)
                    batches = self._snr_batches(trainer, noise_count)
                    if batches:
                        full = (self._full_batches(trainer, pl_module) if mode == "exact"
                                else None)
                        extra.update(self.meter.snr(pl_module, loss_fn, batches,
                                                    full_batches=full))
        for at, metrics in self.meter.measure(step, extra):
            loggers.log_metrics(trainer, metrics, at)
            if at == step:
                trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})

    def _full_batches(self, trainer: pl.Trainer, pl_module: pl.LightningModule
                      ) -> Iterable[Any]:
        return (_step_input(trainer, b)
                for b in full_data_batches(self.full_data, trainer.datamodule, pl_module))

    def _snr_mode(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[str, int]:
        """``(mode, mini-batches for the noise)``. ``snr="auto"`` looks, once, at how many
        batches the whole training set takes: at most ``K / 2``, and its pass plus ``K / 2``
        mini-batches give the exact SNR for at most the ``K`` gradients of the unbiased
        estimate."""
        if self.snr != "auto":
            return str(self.snr), self.snr_batches
        if self._snr_plan is None:
            budget = self.snr_batches // 2
            try:
                source = full_data_batches(self.full_data, trainer.datamodule, pl_module)
                count = sum(1 for _ in itertools.islice(source, budget + 1))
            except ValueError:  # no full training set to be had
                count = None
            k = self.snr_batches
            if count is not None and 1 <= count <= budget:  # budget >= 1: K >= 2
                self._snr_plan = ("exact", budget)
                rank_zero_info(f"ThermoCallback: snr='auto' measures the exact SNR (the "
                               f"training set is {count} batch(es): its full gradient, plus "
                               f"{budget} mini-batches for the noise).")
            else:
                self._snr_plan = ("unbiased", k)
                why = ("no full training set (full_data=, or full_batches() on the data "
                       "module or module)" if count is None else
                       f"the training set takes more than {budget} batches")
                rank_zero_info(f"ThermoCallback: snr='auto' uses the unbiased estimate from "
                               f"{k} mini-batches ({why}).")
        return self._snr_plan

    def _snr_batches(self, trainer: pl.Trainer, count: int) -> list[Any] | None:
        batches = self._extra.draw(count, loader=trainer.train_dataloader,
                                   index=self.meter.measurements, rank=trainer.global_rank)
        if batches is None:
            rank_zero_warn("ThermoCallback cannot draw extra mini-batches for the SNR from this "
                           "train loader without disturbing it; pass `snr_data=` (an iterable "
                           "of batches) or snr=None.")
            return None
        return [_step_input(trainer, b) for b in batches]


def _step_input(trainer: pl.Trainer, batch: Any) -> Any:
    """A batch as ``training_step`` receives it: converted by the precision plugin
    (``64-true``: float64 inputs), then on the device (the order of Lightning's loop)."""
    return trainer.strategy.batch_to_device(trainer.precision_plugin.convert_input(batch))
