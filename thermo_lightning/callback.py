"""ThermoCallback: measure U, S, T, the gradient SNR and window diagnostics during training.

Snapshots of the scale-invariant (SI) weight vector are taken after every ``stride``-th
optimiser step that was actually taken (the strategy's projection hook, or the optimiser's own
step post-hook without it) into a :class:`~thermo_lightning.buffer.TrajectoryBuffer`. At the
logging points of a schedule (log-spaced like the paper by default) the callback computes

- ``thermo/U``: the mean training loss over the window's steps (or the full-data loss),
- ``thermo/S``, ``thermo/S_k{k}``: the k-NN entropy of the window, ``dim = D - 1`` on the sphere,
- ``thermo/T_local``: ``dU/dS`` along the run (central difference over logging points),
- ``thermo/snr``, ``thermo/grad_norm``, ``thermo/stoch_grad_norm``, ``thermo/noise_scale``,
- ``thermo/elr``, ``thermo/weight_norm``, ``thermo/ess``, ``thermo/window_fill``,
  ``thermo/stride``, ``thermo/duplicates``, ``thermo/skipped``,

writes them to every attached logger and keeps them in :attr:`ThermoCallback.history`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from thermo_lightning import loggers as keys
from thermo_lightning._validation import positive_int
from thermo_lightning.buffer import TrajectoryBuffer
from thermo_lightning.data.sampling import TensorBatchLoader, batch_indices
from thermo_lightning.functional.entropy import (
    ESTIMATORS,
    EntropyEstimate,
    entropy_from_knn_distances,
    knn_entropy_estimate,
)
from thermo_lightning.functional.sphere import joint_norm
from thermo_lightning.functional.stationarity import (
    integrated_autocorrelation_time,
    raw_window_projections,
)
from thermo_lightning.functional.temperature import local_temperature
from thermo_lightning.knn.torch_backend import knn_from_sq_distances, pairwise_sq_distances
from thermo_lightning.probes import (
    full_gradient_and_loss,
    preserved_state,
    snr_from_batches,
    training_step_loss,
)
from thermo_lightning.scale_invariance import (
    ParameterSpec,
    check_parameter_spec,
    resolve_parameters,
)
from thermo_lightning.schedules import Schedule, as_schedule, check_schedule

__all__ = ["ThermoCallback"]

LossFn = Callable[[nn.Module, Any], Tensor]
DataSpec = Iterable[Any] | Callable[[], Iterable[Any]] | None

_SNR_SEED_OFFSET = 0x5EED_0F_5A


def _step_input(trainer: pl.Trainer, batch: Any) -> Any:
    """A batch as ``training_step`` receives it: converted by the precision plugin
    (``64-true`` makes float inputs float64, ``16-true`` half), then on the device (the order of
    Lightning's training loop)."""
    return trainer.strategy.batch_to_device(trainer.precision_plugin.convert_input(batch))


def _batch_energy(outputs: Any, module: pl.LightningModule, accumulate: int) -> Tensor | None:
    """The batch's loss as ``training_step`` returned it (or its ``"energy"`` entry), a 0-d
    float64 tensor; ``None`` when the step returned none.

    Under automatic optimisation Lightning hands callbacks the loss divided by
    ``accumulate_grad_batches`` (what is back-propagated); the factor is undone here so that
    ``thermo/U`` is the batch loss whatever the accumulation.
    """
    value, scaled = outputs, True
    if isinstance(outputs, dict):
        scaled = "energy" not in outputs
        value = outputs.get("energy", outputs.get("loss"))
    if not (isinstance(value, Tensor) and value.numel() == 1):
        return None
    value = value.detach().reshape(()).to(torch.float64)
    if scaled and module.automatic_optimization and accumulate > 1:
        value = value * accumulate
    return value


def _module_loss(module: nn.Module, batch: Any) -> Tensor:
    """Default loss: ``module.loss(batch)`` (first element if it returns a tuple)."""
    out = module.loss(batch)  # type: ignore[operator]
    return out[0] if isinstance(out, tuple | list) else out


def _check_ks(k: Any) -> tuple[int, ...]:
    """``k`` as a tuple of distinct positive ints (the first is ``thermo/S``)."""
    ks = (k,) if not isinstance(k, Sequence | np.ndarray) or isinstance(k, str) else tuple(k)
    if not ks or any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1
                     for v in ks):
        raise ValueError(f"`k` must be a positive int or a sequence of them, got {k!r}.")
    if len(set(ks)) != len(ks):
        raise ValueError(f"`k` must not repeat a value (each k is logged once), got {k!r}.")
    return tuple(int(v) for v in ks)


class ThermoCallback(pl.Callback):
    """Measure the thermodynamics of training: energy, entropy, temperature, gradient SNR.

    Args:
        window: ``N``, snapshots in the entropy window (the paper: 1000).
        stride: steps between snapshots (the paper: 1), or ``"auto"``: start at 1 and, each
            time a full window has an effective sample size below ``N / 2``, multiply the stride
            by the window's autocorrelation time and refill.
        k: neighbour count(s) of the entropy; the first is ``thermo/S`` (the paper: 50).
        estimator: ``"knn_graph"`` (the paper's) or ``"kozachenko_leonenko"``.
        schedule: ``"log"`` (201 points: steps 0..9, then log-spaced to ``max_steps``), an
            int ``n`` (every ``n`` steps) or a callable ``step -> bool``.
        energy: ``"window"`` (mean training loss over the window's steps; a ``training_step``
            that returns a dict with an ``"energy"`` entry has that averaged instead) or
            ``"full"`` (loss over the whole training set, BatchNorm in train mode, as the
            paper; needs ``full_data`` or a data module with ``full_batches()``).
        snr: ``"unbiased"`` (``snr_batches`` extra mini-batches, pairwise estimate of
            ``||g||``), ``"exact"`` (the paper: full-data gradient plus ``snr_batches``
            mini-batches) or ``None`` (off).
        snr_batches: ``K >= 2`` mini-batches per SNR measurement.
        snr_data: where the SNR's mini-batches come from: an iterable or a callable returning
            one. Default: independent draws from the training tensors when the train loader is
            a :class:`~thermo_lightning.data.TensorBatchLoader`.
        full_data: the whole training set in batches (iterable or callable), for
            ``energy="full"`` and ``snr="exact"``; default ``datamodule.full_batches()``.
        loss_fn: ``(module, batch) -> loss``; default ``module.loss(batch)`` when defined,
            else ``training_step`` with logging switched off.
        parameters: the weights to snapshot; default the sphere strategy's group, else every
            trainable parameter (then the window is not on a sphere and ``dim = D``).
        buffer_device: where the window lives; default the training device.
        pin_memory: pinned host memory for a window on ``"cpu"``.
        sketch_dim: keep a CountSketch of ``m`` numbers per snapshot (memory ``N*m*4``).
        shard: under DDP, split the window's coordinates over the ranks.
        memory_budget: bytes the window may take (default a quarter of free memory).
        backend: k-NN backend, ``"auto"``, ``"torch"`` or ``"faiss"``.
        temperature: a temperature ``T`` (e.g. from a sweep) to log ``thermo/F = U - T S``.
        lag: half-width of the central difference of ``thermo/T_local`` (the paper: 2).
        n_directions: random directions for the effective sample size.
        max_stride: upper bound of ``stride="auto"``.
        save_window: put the window itself in checkpoints (it can be gigabytes); without it a
            resumed run refills the window before logging entropy again.
        seed: seed of the SNR mini-batches, the sketch and the ESS directions.

    Example::

        trainer = Trainer(strategy="sphere_projection", callbacks=[ThermoCallback()],
                          max_steps=100_000)
    """

    def __init__(
        self,
        window: int = 1000,
        stride: int | str = 1,
        k: int | Sequence[int] = 50,
        estimator: str = "knn_graph",
        schedule: str | int | Schedule = "log",
        energy: str = "window",
        snr: str | None = "unbiased",
        snr_batches: int = 16,
        snr_data: DataSpec = None,
        full_data: DataSpec = None,
        loss_fn: LossFn | None = None,
        parameters: ParameterSpec = None,
        buffer_device: str | torch.device | None = None,
        pin_memory: bool = False,
        sketch_dim: int | None = None,
        shard: bool = False,
        memory_budget: int | None = None,
        backend: str = "auto",
        temperature: float | None = None,
        lag: int = 2,
        n_directions: int = 8,
        max_stride: int = 10_000,
        save_window: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.window = positive_int(window, "window")
        self.ks = _check_ks(k)
        # configuration systems (YAML, jsonargparse) may hand numbers over as strings
        if isinstance(stride, str) and stride.isdigit():
            stride = int(stride)
        schedule = check_schedule(schedule)
        if self.window <= max(self.ks):
            raise ValueError(
                f"`window` ({self.window}) must be larger than the largest `k` "
                f"({max(self.ks)}): each point needs k neighbours in the window."
            )
        if stride == "auto":
            self._auto_stride, self.stride = True, 1
        elif isinstance(stride, int) and not isinstance(stride, bool) and stride >= 1:
            self._auto_stride, self.stride = False, stride
        else:
            raise ValueError(f"`stride` must be an integer >= 1 or 'auto', got {stride!r}.")
        self._initial_stride = self.stride
        if estimator not in ESTIMATORS:
            raise ValueError(f"`estimator` must be one of {ESTIMATORS}, got {estimator!r}.")
        if energy not in ("window", "full"):
            raise ValueError(f"`energy` must be 'window' or 'full', got {energy!r}.")
        if snr not in ("unbiased", "exact", None):
            raise ValueError(f"`snr` must be 'unbiased', 'exact' or None, got {snr!r}.")
        if isinstance(snr_batches, bool) or not isinstance(snr_batches, int) or snr_batches < 2:
            raise ValueError(f"`snr_batches` (K) must be an integer >= 2, got {snr_batches!r}.")
        if backend not in ("auto", "torch", "faiss"):
            raise ValueError(f"`backend` must be 'auto', 'torch' or 'faiss', got {backend!r}.")
        if sketch_dim is not None:
            positive_int(sketch_dim, "sketch_dim")
        if sketch_dim is not None and shard:
            raise ValueError("use either `sketch_dim` or `shard=True`, not both.")
        if temperature is not None and not (
            isinstance(temperature, int | float | np.floating) and not isinstance(temperature, bool)
            and math.isfinite(temperature) and temperature > 0
        ):
            raise ValueError(f"`temperature` must be a positive number, got {temperature!r}.")
        if memory_budget is not None:
            positive_int(memory_budget, "memory_budget")
        if buffer_device is not None:
            try:
                torch.device(buffer_device)
            except (RuntimeError, TypeError) as err:
                raise ValueError(
                    f"`buffer_device` must be a torch device such as 'cpu' or 'cuda:0', got "
                    f"{buffer_device!r}."
                ) from err
        check_parameter_spec(parameters)
        flags = {"pin_memory": pin_memory, "shard": shard, "save_window": save_window}
        for flag, value in flags.items():
            if not isinstance(value, bool):
                raise ValueError(f"`{flag}` must be True or False, got {value!r}.")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ValueError(f"`seed` must be an integer, got {seed!r}.")
        self.estimator = estimator
        self.schedule_spec = schedule
        self.energy = energy
        self.snr = snr
        self.snr_batches = snr_batches
        self.snr_data = snr_data
        self.full_data = full_data
        self.loss_fn = loss_fn
        self.parameters = parameters
        self.buffer_device = buffer_device
        self.pin_memory = pin_memory
        self.sketch_dim = sketch_dim
        self.shard = shard
        self.memory_budget = memory_budget
        self.backend = backend
        self.temperature = temperature
        self.lag = positive_int(lag, "lag")
        self.n_directions = positive_int(n_directions, "n_directions")
        self.max_stride = positive_int(max_stride, "max_stride")
        self.save_window = save_window
        self.seed = int(seed)

        self._history: list[dict[str, float]] = []
        self._last_step = -1
        self._measurements = 0
        self._skipped_steps: set[int] = set()
        self._steps_taken = 0
        self._loaded_state: dict[str, Any] | None = None
        self._warned: set[str] = set()
        self.buffer: TrajectoryBuffer | None = None
        self._trainer: pl.Trainer | None = None
        self._named: list[tuple[str, nn.Parameter]] = []
        self._on_sphere = False
        self._dim = 0
        self._hooks: list[Any] = []
        self._schedule: Schedule | None = None
        self._snr_iter: Any = None

    # ------------------------------------------------------------------ identity and state
    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            window=self.window, stride="auto" if self._auto_stride else self.stride,
            k=list(self.ks), estimator=self.estimator,
        )

    @property
    def history(self) -> pd.DataFrame:
        """Every logging point so far: a ``step`` column and one column per metric key."""
        return pd.DataFrame(self._history)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "history": [dict(row) for row in self._history],
            "last_step": self._last_step,
            "measurements": self._measurements,
            "stride": self.stride,
            "skipped_steps": sorted(self._skipped_steps),
            # the snapshot phase: which optimiser steps fall on the stride after a resume
            "steps_taken": self._steps_taken,
        }
        if self.buffer is not None:
            state["buffer"] = self.buffer.state_dict(include_data=self.save_window)
            if self.save_window:
                state["losses"] = self._losses.detach().cpu().clone()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._history = [dict(row) for row in state_dict.get("history", [])]
        self._last_step = int(state_dict.get("last_step", -1))
        self._measurements = int(state_dict.get("measurements", 0))
        self.stride = int(state_dict.get("stride", self.stride))
        self._skipped_steps = set(state_dict.get("skipped_steps", []))
        self._steps_taken = int(state_dict.get("steps_taken", 0))
        self._loaded_state = state_dict

    # ------------------------------------------------------------------ set-up
    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            rank_zero_warn(message)

    def _reset(self) -> None:
        """Forget a previous fit (a callback reused for a new ``fit`` starts afresh)."""
        self._history = []
        self._last_step = -1
        self._measurements = 0
        self._skipped_steps = set()
        self._steps_taken = 0
        self._snr_iter = None
        self.stride = 1 if self._auto_stride else self._initial_stride

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._loaded_state is None:
            self._reset()  # a resumed fit has its state from the checkpoint instead
        self._trainer = trainer
        projector = getattr(trainer.strategy, "projector", None)
        if projector is not None and projector.named_parameters and self.parameters is None:
            self._named = list(projector.named_parameters)
            self._on_sphere = True
            n_spheres = len(self._named) if projector.per_tensor else 1
        else:
            spec = self.parameters
            if spec is None:
                spec = [n for n, p in pl_module.named_parameters() if p.requires_grad]
            self._named = resolve_parameters(pl_module, spec)
            self._on_sphere = projector is not None and self.parameters is not None
            n_spheres = 1 if self._on_sphere else 0
            if projector is None:
                self._warn_once(
                    "raw",
                    "ThermoCallback without SphereProjectionStrategy: the window holds the raw "
                    "trainable weights, which are not on a sphere (their norm drifts), and the "
                    "entropy uses dim = D. Use strategy='sphere_projection' for the method.",
                )
        self._params = [p for _, p in self._named]
        num = sum(p.numel() for p in self._params)
        self._dim = max(1, num - n_spheres)
        world = trainer.world_size
        device = torch.device(self.buffer_device) if self.buffer_device else pl_module.device
        self.buffer = TrajectoryBuffer(
            num, self.window, device=device, pin_memory=self.pin_memory,
            sketch_dim=self.sketch_dim, sketch_seed=self.seed,
            shard=(trainer.global_rank, world) if self.shard and world > 1 else None,
            memory_budget=self.memory_budget,
        )
        # NaN: a slot whose interval has no loss yet is left out of U, never counted as 0
        self._losses = torch.full((self.window,), math.nan, dtype=torch.float64, device=device)
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self._loss_n = 0
        self._pending_slots: list[int] = []
        state = self._loaded_state or {}
        self._loaded_state = None  # consumed: a later fit without a checkpoint starts afresh
        if self.save_window and "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])
            if "losses" in state:
                self._losses.copy_(state["losses"])
        max_steps = trainer.max_steps
        if self.schedule_spec == "log" and (max_steps is None or max_steps < 1):
            # max_epochs instead of max_steps: the loop knows how many steps it will take
            estimated = trainer.estimated_stepping_batches
            max_steps = int(estimated) if math.isfinite(estimated) else None
        self._schedule = as_schedule(self.schedule_spec, max_steps)
        if projector is not None and projector.named_parameters:
            self._hooks.append(projector.add_step_listener(self._on_step))
        else:
            for opt in trainer.optimizers:
                handle = opt.register_step_post_hook(lambda o, a, k: self._on_step(o))
                self._hooks.append(handle.remove)
        keys.write_layout(trainer, self.ks)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._teardown_hooks()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        self._teardown_hooks()

    def _teardown_hooks(self) -> None:
        for remove in self._hooks:
            remove()
        self._hooks = []

    # ------------------------------------------------------------------ every step
    def _on_step(self, optimizer: torch.optim.Optimizer) -> None:
        self._steps_taken += 1
        if self._steps_taken % self.stride != 0 or self.buffer is None:
            return
        slot = self.buffer.count % self.window
        step = (self._trainer.global_step + 1) if self._trainer is not None else self._steps_taken
        self.buffer.add(self._params, step)
        # its loss arrives with this batch's on_train_batch_end (several optimiser steps in one
        # batch under manual optimisation share that batch's loss)
        self._pending_slots.append(slot)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        value = _batch_energy(outputs, pl_module, trainer.accumulate_grad_batches)
        if value is not None:
            self._loss_sum.add_(value)
            self._loss_n += 1
        if self._pending_slots:
            # the mean loss of the batches since the previous snapshot (NaN: none, or
            # non-finite)
            index = torch.tensor(self._pending_slots, device=self._losses.device)
            self._losses[index] = (self._loss_sum / self._loss_n if self._loss_n
                                   else self._loss_sum.new_tensor(math.nan))
            self._pending_slots = []
            self._loss_sum.zero_()
            self._loss_n = 0
        step = trainer.global_step
        if step != self._last_step and self._schedule is not None and self._schedule(step):
            self._last_step = step
            self._measure(trainer, pl_module, step)

    # ------------------------------------------------------------------ measurement
    def _measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        assert self.buffer is not None, "on_fit_start creates the buffer"
        metrics: dict[str, float] = {}
        params = [p for _, p in self._named]
        norm = float(joint_norm(params))
        metrics[keys.WEIGHT_NORM] = norm
        metrics[keys.ELR] = self._elr(trainer, norm)
        metrics[keys.STRIDE] = float(self.stride)
        metrics[keys.WINDOW_FILL] = self.buffer.fill_fraction
        rows, slots, bad_steps = self.buffer.snapshots()
        if bad_steps:
            self._skipped_steps.update(bad_steps)
            self._warn_once(
                "nan",
                f"ThermoCallback: snapshots with NaN/Inf weights were left out of the window "
                f"(steps {bad_steps[:5]}{'...' if len(bad_steps) > 5 else ''}); counted in "
                f"{keys.SKIPPED}.",
            )
        metrics[keys.SKIPPED] = float(len(self._skipped_steps))
        if slots:
            losses = self._losses[slots] if len(slots) < self.window else self._losses
            bad = int((~torch.isfinite(losses)).sum())
            if bad:
                self._warn_once(
                    "nanloss",
                    f"ThermoCallback: {bad} intervals between snapshots had a non-finite or no "
                    f"training loss (seen at step {step}); they are left out of {keys.ENERGY}.",
                )
            metrics[keys.ENERGY] = self._mean_over_ranks(trainer, losses.nanmean())
        if self.buffer.full and len(slots) > max(self.ks):
            ess, tau = self._ess(trainer, rows, slots)
            metrics[keys.ESS] = ess
            if self._auto_stride and tau > 2.0 and self.stride < self.max_stride:
                self.stride = min(self.max_stride, self.stride * math.ceil(tau))
                self.buffer.clear()
                metrics[keys.STRIDE] = float(self.stride)
            else:
                est = self._entropy(trainer, rows)
                for kk, value in est.entropy.items():
                    metrics[keys.entropy_key(kk)] = value
                metrics[keys.ENTROPY] = est.entropy[self.ks[0]]
                metrics[keys.DUPLICATES] = float(est.n_duplicate_points)
                if est.n_duplicate_points:
                    self._warn_once(
                        "dup",
                        f"ThermoCallback: {est.n_duplicate_points} snapshots in the window at step "
                        f"{step} have an identical twin (the weights did not move); they bias S "
                        f"downwards. Counted in {keys.DUPLICATES}.",
                    )
        if self.energy == "full":
            metrics[keys.ENERGY] = self._full_energy(trainer, pl_module)
        if self.snr is not None:
            metrics.update(self._snr(trainer, pl_module, params))
        if self.temperature is not None and keys.ENTROPY in metrics and keys.ENERGY in metrics:
            u, s = metrics[keys.ENERGY], metrics[keys.ENTROPY]
            metrics[keys.FREE_ENERGY] = u - self.temperature * s
        self._measurements += 1
        row = {"step": float(step), **metrics}
        self._history.append(row)
        keys.log_metrics(trainer, metrics, step)
        self._log_local_temperature(trainer)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in metrics.items()})

    def _elr(self, trainer: pl.Trainer, norm: float) -> float:
        strategy_elr = getattr(trainer.strategy, "effective_lr", None)
        if self._on_sphere and strategy_elr is not None:
            return float(strategy_elr)
        if not trainer.optimizers or norm <= 0:
            return float("nan")
        return float(trainer.optimizers[0].param_groups[0]["lr"]) / norm**2

    def _mean_over_ranks(self, trainer: pl.Trainer, value: Tensor) -> float:
        value = value.reshape(()).to(torch.float64)
        if trainer.world_size > 1:
            value = trainer.strategy.reduce(value.clone(), reduce_op="mean")
        return float(value)

    def _ess(self, trainer: pl.Trainer, rows: Tensor, slots: list[int]) -> tuple[float, float]:
        assert self.buffer is not None, "buffer exists while measuring"
        ordered = rows if len(slots) == rows.shape[0] and slots == sorted(slots) else None
        if ordered is None or len(slots) != rows.shape[0]:
            index = torch.tensor(slots, device=self.buffer.data.device)
            ordered = self.buffer.data[index]
        proj = raw_window_projections(ordered, self.n_directions, seed=self.seed,
                                      column_offset=self.buffer.col_start)
        if self.buffer.shard is not None:
            proj = trainer.strategy.reduce(proj, reduce_op="sum")
        taus = integrated_autocorrelation_time(proj.T.cpu().numpy())
        tau = float(np.max(taus))
        return len(slots) / tau, tau

    def _entropy(self, trainer: pl.Trainer, rows: Tensor) -> EntropyEstimate:
        assert self.buffer is not None, "buffer exists while measuring"
        if self.buffer.shard is None:
            return knn_entropy_estimate(rows, self.ks, estimator=self.estimator, dim=self._dim,
                                        backend=self.backend, warn=False)
        sq = pairwise_sq_distances(rows, center=True, dtype=torch.float32)
        sq = trainer.strategy.reduce(sq, reduce_op="sum")
        dist = knn_from_sq_distances(sq, max(self.ks))
        return entropy_from_knn_distances(dist, self.ks, estimator=self.estimator,
                                          dim=self._dim, warn=False)

    def _log_local_temperature(self, trainer: pl.Trainer) -> None:
        rows = [r for r in self._history if keys.ENERGY in r and keys.ENTROPY in r]
        if len(rows) <= 2 * self.lag:
            return
        u = [r[keys.ENERGY] for r in rows[-(2 * self.lag + 1):]]
        s = [r[keys.ENTROPY] for r in rows[-(2 * self.lag + 1):]]
        t = float(local_temperature(u, s, lag=self.lag)[self.lag])
        target = rows[-(self.lag + 1)]
        if keys.T_LOCAL in target or not math.isfinite(t):
            return
        target[keys.T_LOCAL] = t
        keys.log_metrics(trainer, {keys.T_LOCAL: t}, int(target["step"]))

    # -------------------------------------------------------------- extra passes
    def _loss(self, pl_module: pl.LightningModule) -> LossFn:
        if self.loss_fn is not None:
            return self.loss_fn
        if callable(getattr(pl_module, "loss", None)):
            return _module_loss
        if not pl_module.automatic_optimization:
            raise ValueError(
                "ThermoCallback needs a loss for the SNR / full-data energy: under manual "
                "optimisation define `loss(self, batch)` on the module or pass `loss_fn=`."
            )
        self._warn_once(
            "loss", "ThermoCallback computes extra losses with training_step (logging off); "
            "define `loss(self, batch)` on the module or pass `loss_fn=` to be explicit.")
        return training_step_loss

    def _full_batches(self, trainer: pl.Trainer) -> Iterable[Any]:
        source = self.full_data
        if source is None:
            dm = trainer.datamodule
            if dm is not None and callable(getattr(dm, "full_batches", None)):
                source = dm.full_batches
            else:
                raise ValueError(
                    "energy='full' and snr='exact' need the whole training set: pass "
                    "`full_data=` (an iterable of batches or a callable returning one) or use a "
                    "data module with `full_batches()`."
                )
        batches = source() if callable(source) else source
        return (_step_input(trainer, b) for b in batches)

    def _full_energy(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> float:
        with preserved_state(pl_module), trainer.precision_plugin.train_step_context():
            _, loss = full_gradient_and_loss(pl_module, self._loss(pl_module),
                                             self._full_batches(trainer), None)
        return self._mean_over_ranks(trainer, torch.tensor(loss))

    def _snr_batch_source(self, trainer: pl.Trainer) -> list[Any] | None:
        k = self.snr_batches
        if self.snr_data is not None:
            out = []
            for _ in range(k):
                if self._snr_iter is None:
                    src = self.snr_data() if callable(self.snr_data) else self.snr_data
                    self._snr_iter = iter(src)
                try:
                    out.append(next(self._snr_iter))
                except StopIteration:
                    src = self.snr_data() if callable(self.snr_data) else self.snr_data
                    self._snr_iter = iter(src)
                    out.append(next(self._snr_iter))
            return [_step_input(trainer, b) for b in out]
        loader = trainer.train_dataloader
        if isinstance(loader, TensorBatchLoader):
            rank = trainer.global_rank
            out = []
            for j in range(k):
                idx = batch_indices(loader.num_samples, loader.batch_size,
                                    seed=loader.seed + _SNR_SEED_OFFSET + self.seed,
                                    index=self._measurements * k + j, rank=rank)
                idx = idx.to(loader.tensors[0].device)
                batch = tuple(t[idx] for t in loader.tensors)
                if loader.transform is not None:
                    batch = loader.transform(batch)
                out.append(_step_input(trainer, batch))
            return out
        self._warn_once(
            "snrdata",
            "ThermoCallback cannot draw extra mini-batches for the SNR from this train loader "
            "without disturbing it; pass `snr_data=` (an iterable of batches) or snr=None.",
        )
        return None

    def _snr(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
             params: list[nn.Parameter]) -> dict[str, float]:
        batches = self._snr_batch_source(trainer)
        if not batches:
            return {}
        loss_fn = self._loss(pl_module)
        with preserved_state(pl_module), trainer.precision_plugin.train_step_context():
            full_grad = None
            if self.snr == "exact":
                full_grad, _ = full_gradient_and_loss(pl_module, loss_fn,
                                                      self._full_batches(trainer), params)
            reduce_fn = None
            if trainer.world_size > 1:  # the sums of every rank's batches, then one ratio
                def reduce_fn(t: Tensor) -> Tensor:
                    return trainer.strategy.reduce(t, reduce_op="sum")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # autograd.grad on unused params
                res = snr_from_batches(pl_module, loss_fn, batches, params, full_grad,
                                       reduce_fn=reduce_fn)
        out = {
            keys.SNR: res["snr"],
            keys.GRAD_NORM: res["full_grad_norm"],
            keys.STOCH_GRAD_NORM: res["mean_stoch_grad_norm"],
            keys.NOISE_SCALE: res["noise_scale"],
        }
        return out
