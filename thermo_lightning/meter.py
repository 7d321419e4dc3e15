"""ThermoMeter: the whole measurement of U, S, T and the gradient SNR, without Lightning.

A meter owns the window of snapshots of the scale-invariant (SI) weights and the matching
window of training losses, the stride policy (fixed, or ``"auto"``: one snapshot per
integrated autocorrelation time, measured once by a :class:`~thermo_lightning.pilot.
CorrelationPilot` over the first tenth of the run), the logging schedule and the history. Its
cross-process reductions are declared: every quantity that differs between DDP ranks is a sum
(loss sums and counts, SNR gradient sums, a sharded window's squared distances and ESS
projections), reduced with one ``reduce_fn`` (an all-reduce of a sum) before any ratio.

From a plain PyTorch loop::

    meter = ThermoMeter(schedule=50)     # window, k and stride "auto" by default
    meter.setup(group, optimizers=[opt], max_steps=steps)  # group: the SI parameters
    meter.attach(opt)                    # a snapshot after every opt.step() that runs
    for step in range(1, steps + 1):
        loss = ...; loss.backward(); opt.step(); opt.zero_grad()
        meter.update(loss)               # the batch's loss joins the energy window
        if meter.should_measure(step):
            meter.measure(step)          # U, S, ESS, T_local, ... -> meter.history

:class:`~thermo_lightning.callback.ThermoCallback` wires the same calls to Lightning's hooks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from thermo_lightning import keys
from thermo_lightning._validation import flag, integer, positive_int, positive_number
from thermo_lightning._warnings import warn as user_warn
from thermo_lightning.buffer import TrajectoryBuffer
from thermo_lightning.functional.entropy import EntropyEstimator, get_estimator
from thermo_lightning.functional.sphere import joint_norm
from thermo_lightning.functional.stationarity import effective_sample_size, half_window_chi2
from thermo_lightning.functional.temperature import free_energy, trend_temperature
from thermo_lightning.meter_state import MeterState
from thermo_lightning.passes import ExtraPasses
from thermo_lightning.pilot import (
    CorrelationPilot,
    auto_stride,
    capped_advice,
    low_ess_advice,
    pilot_length,
    stride_cap,
)
from thermo_lightning.schedules import DenseTail, Schedule, as_schedule, check_schedule
from thermo_lightning.spec import (  # noqa: F401 (PAPER_PROTOCOL: the meter's presets)
    LOW_ESS_FRACTION,
    PAPER_PROTOCOL,
    WindowSpec,
    check_snr,
    check_stride,
    check_window_arguments,
    resolve_window,
)

__all__ = ["ThermoMeter", "WindowSpec"]

ReduceFn = Callable[[Tensor], Tensor]


# the worst |T(sketch) / T(exact) - 1| over adjacent-LR windows in
# benchmarks/sketch_temperature.py (D = 20000, N = 200 and 1000, 6 seeds, 3 spectra)
_SKETCH_T_ERROR = "worst 6.5% at m = 256, 3.9% at m = 1024, 1.5% at m = 4096"


class ThermoMeter(ExtraPasses, MeterState):
    """Measure energy, entropy, temperature and gradient SNR of a training run.

    Args:
        window: ``N``, snapshots in the entropy window (the paper: 1000), or ``"auto"``: one
            slot per 200 steps of the run, within [50, 1000].
        stride: optimiser steps between snapshots (the paper: 1), or ``"auto"``: stride 1
            during a pilot (the first tenth of the run, within [100, 200000] steps; 2000 when
            the length is unknown) that measures the weights' integrated autocorrelation time
            ``tau`` (:class:`~thermo_lightning.pilot.CorrelationPilot`), then
            ``ceil(tau)`` for the rest of the run (the window is refilled once), so that
            consecutive snapshots are about ``e^-2`` correlated whatever the learning rate;
            capped so that a window fills within half of the steps left (and at
            ``max_stride``), with a warning.
        k: neighbour count(s) of the entropy; the first is ``thermo/S`` (the paper: 50); or
            ``"auto"``: ``N / 20`` within [3, 50].
        estimator: a registered estimator's name (``"knn_graph"``, the paper's, or
            ``"kozachenko_leonenko"``) or an
            :class:`~thermo_lightning.functional.entropy.EntropyEstimator`.
        schedule: ``"log"`` (201 points: steps 0..9, then log-spaced to ``max_steps``), an
            int ``n`` (every ``n`` steps) or a callable ``step -> bool``.
        snr: how the gradient SNR is measured at a logging point (:meth:`snr_plan`):
            ``"auto"`` (default): ``"exact"`` when a pass over the whole training set takes
            at most ``K / 2`` batches and the model has no BatchNorm in training mode (then
            the noise uses ``K / 2`` mini-batches), else ``"unbiased"``; ``"unbiased"``: ``K``
            mini-batches and the pairwise unbiased estimate of ``||g||^2`` (NaN, not 0, where
            it is not positive); ``"exact"``: the full-data gradient plus ``K`` mini-batches
            (the paper's definition); ``None``: off.
        snr_batches: ``K >= 2`` gradients per SNR measurement.
        conf_temperature: also measure the configurational temperature's terms at each
            logging point from ``K`` mini-batches (their gradients and one Hutchinson
            Hessian-vector probe each: about ``2 K`` extra backward passes;
            :meth:`configurational`), logged as ``thermo/conf_grad_sq``,
            ``thermo/conf_laplacian`` and ``thermo/T_conf``. Off by default.
        lag: half-width ``h`` of ``thermo/T_local``: ``dU/dS`` from the slopes of ``U`` and
            ``S`` over ``2 h + 1`` logging points, logged only where both slopes are
            significant (:func:`~thermo_lightning.functional.trend_temperature`; the paper's
            finite difference had ``h = 2``).
        n_directions: random directions for the effective sample size.
        max_stride: upper bound of ``stride="auto"``.
        sketch_dim: keep a CountSketch of ``m`` numbers per snapshot (memory ``N*m*4``);
            it adds error to ``T`` (worst 6.5% at ``m = 256``, 3.9% at 1024, 1.5% at 4096
            on thinned windows), with a warning.
        memory_budget: bytes the window may take (default a quarter of available memory).
        backend: k-NN backend, ``"auto"``, ``"torch"`` or ``"faiss"``.
        temperature: a temperature ``T`` (e.g. from a sweep) to log ``thermo/F = U - T S``.
        save_window: put the window itself in :meth:`state_dict` (it can be gigabytes);
            without it a resumed run refills the window before measuring entropy again.
        seed: seed of the sketch and the ESS directions.
        buffer_device: where the window lives; default the parameters' device.
        pin_memory: pinned host memory for a window on ``"cpu"``.
        warn: how warnings are emitted (once per kind); Lightning passes its rank-zero warning.
        inform: how the choices made for ``"auto"`` are said (default: not at all); Lightning
            passes its rank-zero info.
    """

    def __init__(
        self,
        window: int | str = "auto",
        stride: int | str = "auto",
        k: int | Sequence[int] | str = "auto",
        estimator: str | EntropyEstimator = "knn_graph",
        schedule: str | int | Schedule = "log",
        *,
        snr: str | None = "auto",
        snr_batches: int = 16,
        conf_temperature: bool = False,
        lag: int = 4,
        n_directions: int = 8,
        max_stride: int = 10_000,
        sketch_dim: int | None = None,
        memory_budget: int | None = None,
        backend: str = "auto",
        temperature: float | None = None,
        save_window: bool = False,
        seed: int = 0,
        buffer_device: str | torch.device | None = None,
        pin_memory: bool = False,
        warn: Callable[[str], Any] = user_warn,
        inform: Callable[[str], Any] | None = None,
    ) -> None:
        self.window_arg: int | str
        self.k_arg: tuple[int, ...] | str
        self.window_arg, self.k_arg = check_window_arguments(window, k)
        # resolved at setup when "auto" (they depend on the run's length)
        self.window, self.ks = resolve_window(self.window_arg, self.k_arg, None)
        self.stride_spec: int | str = check_stride(stride)
        self.estimator = get_estimator(estimator)
        self.schedule_spec = check_schedule(schedule)
        self.snr_mode, self.snr_batches = check_snr(snr, snr_batches)
        self.conf_temperature = flag(conf_temperature, "conf_temperature")
        self.lag = positive_int(lag, "lag")
        self.n_directions = positive_int(n_directions, "n_directions")
        self.max_stride = positive_int(max_stride, "max_stride")
        self.sketch_dim = None if sketch_dim is None else positive_int(sketch_dim, "sketch_dim")
        self.memory_budget = (None if memory_budget is None
                              else positive_int(memory_budget, "memory_budget"))
        if backend not in ("auto", "torch", "faiss"):
            raise ValueError(f"`backend` must be 'auto', 'torch' or 'faiss', got {backend!r}.")
        self.backend = backend
        self.temperature = (None if temperature is None
                            else positive_number(temperature, "temperature"))
        self.save_window = flag(save_window, "save_window")
        self.pin_memory = flag(pin_memory, "pin_memory")
        self.seed = integer(seed, "seed")
        if buffer_device is not None:
            try:
                torch.device(buffer_device)
            except (RuntimeError, TypeError) as err:
                raise ValueError(
                    f"`buffer_device` must be a torch device such as 'cpu' or 'cuda:0', got "
                    f"{buffer_device!r}."
                ) from err
        self.buffer_device = buffer_device
        self._warn_fn = warn
        self._inform_fn = inform
        self.pilot: CorrelationPilot | None = None
        self._spheres: list[list[Tensor]] = []
        self._warned: set[str] = set()
        self._loaded: dict[str, Any] | None = None
        self.buffer: TrajectoryBuffer | None = None
        self.spec: WindowSpec | None = None
        self._reduce: ReduceFn | None = None
        self._hooks: list[Any] = []
        self._running = False  # set up and not yet detached (pickling continues the run)
        self._params: list[Tensor] = []
        #: ``(mode, mini-batches for the noise)`` of this run's SNR (:meth:`snr_plan`)
        self._snr_plan: tuple[str, int] | None = None
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self._history: list[dict[str, float]] = []
        self._last_step = -1
        self.measurements = 0
        self._skipped: set[int] = set()
        self._steps_taken = 0
        self.stride = 1 if self.stride_spec == "auto" else int(self.stride_spec)
        self.correlation_time = math.nan  #: the pilot's autocorrelation time (steps; nan before)
        self._stride_chosen = self.stride_spec != "auto"
        self._low_streak = 0  # consecutive full windows with a low ESS
        #: the loss of random SI weights (:meth:`measure_random_loss`; ``None`` until then,
        #: kept across a resume by :meth:`state_dict`)
        self.random_loss: float | None = None

    @property
    def history(self) -> pd.DataFrame:
        """Every logging point so far: a ``step`` column and one column per metric key."""
        return pd.DataFrame(self._history)

    def _inform(self, message: str) -> None:
        if self._inform_fn is not None:
            self._inform_fn(message)

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self._warn_fn(message)

    # ------------------------------------------------------------------ set-up
    def setup(
        self,
        parameters: Sequence[tuple[str, Tensor]] | Sequence[Tensor],
        *,
        radius: float | None = 1.0,
        n_spheres: int = 1,
        optimizers: Sequence[torch.optim.Optimizer] = (),
        max_steps: int | None = None,
        shard: tuple[int, int] | None = None,
        reduce_fn: ReduceFn | None = None,
    ) -> WindowSpec:
        """Prepare a run: the window for ``parameters``, the schedule, the reductions.

        Args:
            parameters: the weights to snapshot (or ``(name, parameter)`` pairs).
            radius: the sphere's radius; ``None`` when the weights are not on a sphere (the
                entropy then uses ``dim = D``).
            n_spheres: spheres the group lies on (``dim = D - n_spheres``; per-tensor
                projection puts each tensor on its own).
            optimizers: those that update ``parameters`` (for ``thermo/elr``).
            max_steps: the run's length (needed by ``schedule="log"``).
            shard: ``(rank, world_size)``: keep this process's slice of the coordinates.
            reduce_fn: sums a tensor over processes (DDP all-reduce); ``None``: one process.

        A fresh meter (or one reused for another run) starts an empty history; one that
        loaded a state continues it.
        """
        if self._loaded is None:
            self._reset()
        self._running = True
        self.window, self.ks = resolve_window(self.window_arg, self.k_arg, max_steps)
        self._max_steps = max_steps
        tensors = [p[1] if isinstance(p, tuple) else p for p in parameters]
        if not tensors:
            raise ValueError("`parameters` is empty: nothing to measure.")
        self._params = tensors
        self._radius = 1.0 if radius is None else float(radius)
        #: the spheres of the configurational temperature (one per tensor, or the joint one;
        #: none off the sphere)
        self._spheres = ([] if radius is None else [[t] for t in tensors]
                         if n_spheres == len(tensors) > 1 else [list(tensors)])
        self._snr_plan = None  # snr="auto" decides again for this run
        self._snr_batch_statistics = False  # ... and says again why
        self._optimizers = list(optimizers)
        num = sum(t.numel() for t in tensors)
        dim = max(1, num - (n_spheres if radius is not None else 0))
        device = torch.device(self.buffer_device) if self.buffer_device else tensors[0].device
        sharded = shard is not None and shard[1] > 1
        if sharded and self.sketch_dim is not None:
            raise ValueError("use either `sketch_dim` or sharding, not both.")
        sketch_dim = self.sketch_dim
        if sketch_dim is not None and sketch_dim >= num:
            sketch_dim = None  # a sketch no smaller than the weights: the exact window
            self._warn_once("sketch", (
                f"ThermoMeter: sketch_dim={self.sketch_dim} is not smaller than the {num} "
                "weights; the window keeps the weights themselves (exact, and no more memory "
                "than the sketch)."))
        if sketch_dim is not None:
            self._warn_once("sketch", (
                f"ThermoMeter: sketch_dim={self.sketch_dim} keeps a CountSketch of the {num} "
                "weights: T comes from entropy differences between adjacent learning rates, "
                "and a sketch adds error to them (benchmarks/sketch_temperature.py, "
                f"thinned windows: {_SKETCH_T_ERROR}; more for correlated "
                "windows or a distribution whose shape changes with the LR). For "
                "temperatures keep the exact window, or shard=True under DDP."))
        self.buffer = TrajectoryBuffer(
            num, self.window, device=device, pin_memory=self.pin_memory,
            sketch_dim=sketch_dim, sketch_seed=self.seed,
            shard=shard if sharded else None, memory_budget=self.memory_budget)
        # NaN: a slot whose interval has no loss yet is left out of U, never counted as 0
        self._losses = torch.full((self.window,), math.nan, dtype=torch.float64, device=device)
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self._loss_n = 0
        self._pending: list[int] = []
        if self._loaded is not None:
            self._restore_window(self._loaded)
        self.pilot = None
        if not self._stride_chosen:
            length = pilot_length(max_steps)
            self._stride_cap = stride_cap(max_steps, length, self.window, self.max_stride)
            self.pilot = CorrelationPilot(num, length, n_directions=self.n_directions,
                                          seed=self.seed)
            if self._loaded is not None and "pilot" in self._loaded:
                self.pilot.load_state_dict(self._loaded["pilot"])
        self._loaded = None  # consumed: a later setup without a state starts afresh
        self._schedule = as_schedule(self.schedule_spec, max_steps)
        if self.conf_temperature and self.schedule_spec == "log":  # T_conf: the later half
            self._schedule = DenseTail(self._schedule, max_steps or 1)
        if self.buffer.window * self.stride > (max_steps or math.inf):
            self._warn_once("fill", f"ThermoMeter: a window of {self.window} snapshots at stride "
                            f"{self.stride} needs {self.window * self.stride} steps, more than "
                            f"the run's {max_steps}: no entropy will be measured. Pass a "
                            "smaller `window` or stride, or train longer.")
        self._reduce = reduce_fn
        self.spec = WindowSpec(self.window, num, dim, self.ks, self.stride_spec, radius,
                               self.estimator.name, sketch_dim, shard[1] if sharded else 1)
        return self.spec

    @property
    def in_pilot(self) -> bool:
        """Whether ``stride="auto"``'s pilot is still measuring the correlation time (its
        stride-1 windows are not the run's)."""
        return self.pilot is not None and not self._stride_chosen

    @property
    def parameters(self) -> tuple[Tensor, ...]:
        """The weights the meter snapshots (those given to :meth:`setup`)."""
        return tuple(self._params)

    def attach(self, optimizer: torch.optim.Optimizer) -> Callable[[], None]:
        """Take a snapshot after every ``optimizer.step()`` that really runs (not one that
        AMP skips); returns a function that removes the hook."""
        handle = optimizer.register_step_post_hook(lambda opt, args, kwargs: self.snapshot())
        self._hooks.append(handle.remove)
        return handle.remove

    def detach(self) -> None:
        """End the run's ties to its process: remove the hooks :meth:`attach` added and
        forget ``reduce_fn`` (which may hold a trainer or a process group)."""
        for remove in self._hooks:
            remove()
        self._hooks = []
        self._reduce = None
        self._running = False  # the run is over: a pickled copy starts afresh

    # ------------------------------------------------------------------ every step
    def snapshot(self, step: int | None = None) -> None:
        """After an optimiser step actually taken: store the weights when the step falls on
        the stride. ``step`` labels the snapshot (default: steps taken so far)."""
        self._steps_taken += 1
        if self.pilot is not None and not self._stride_chosen:
            self.pilot.record(self._params)
            if self.pilot.done:
                self._choose_stride()
        if self.buffer is None or self._steps_taken % self.stride != 0:
            return
        slot = self.buffer.count % self.window
        self.buffer.add(self._params, self._steps_taken if step is None else step)
        self._pending.append(slot)  # its loss arrives with this batch's update()

    def _choose_stride(self) -> None:
        """End of the pilot: stride ``ceil(tau)`` (capped), said once; the window of stride-1
        snapshots is emptied when the stride changes."""
        assert self.pilot is not None and self.buffer is not None, "set up before the pilot ends"
        self._stride_chosen = True
        tau = self.pilot.correlation_time()
        self.correlation_time = tau
        if not math.isfinite(tau):
            self._warn_once("pilot", "ThermoMeter: the correlation time could not be measured "
                            "(the weights were not finite during the pilot); the stride stays "
                            "1.")
            return
        stride, capped = auto_stride(tau, self._stride_cap)
        if capped:
            self._warn_once("cap", (
                f"ThermoMeter: the weights' correlation time is {self.pilot.describe(tau)}, "
                f"but a window of {self.window} snapshots that far apart would not fill within "
                f"half of the {self._max_steps} - {self.pilot.length} steps left after the "
                f"pilot; the stride is capped at {stride}, so windows are correlated and S "
                f"(hence T) is biased low. "
                f"{capped_advice(tau, self.window, self._max_steps, self.pilot.length)}"))
        if stride != self.stride:
            self.stride = stride
            self.buffer.clear()
            self._pending = []
        self._inform(
            f"ThermoMeter: correlation time {self.pilot.describe(tau)} (pilot of "
            f"{self.pilot.length} steps); stride {self.stride}, window {self.window} snapshots "
            f"(fills in {self.window * self.stride} steps), k = {list(self.ks)}.")

    def update(self, loss: Tensor | float | None) -> None:
        """The loss of the batch just trained on (as the training step returned it). Snapshots
        taken since the last update get the mean loss of the batches since the previous
        snapshot (several snapshots in one batch share it); ``None`` adds no loss."""
        if self.buffer is None:
            raise RuntimeError("ThermoMeter.update called before setup(): call "
                               "meter.setup(parameters, ...) before the training loop.")
        if loss is not None:
            value = loss.detach() if isinstance(loss, Tensor) else torch.tensor(float(loss))
            if value.numel() != 1:
                raise ValueError(
                    f"ThermoMeter.update takes the batch's loss, one number; got a tensor of "
                    f"shape {tuple(value.shape)} (per-sample losses?). Pass their mean, e.g. "
                    "meter.update(loss.mean()), the loss the optimiser minimised.")
            self._loss_sum.add_(value.reshape(()).to(self._loss_sum))
            self._loss_n += 1
        if self._pending:
            index = torch.tensor(self._pending, device=self._losses.device)
            self._losses[index] = (self._loss_sum / self._loss_n if self._loss_n
                                   else self._loss_sum.new_tensor(math.nan))
            self._pending = []
            self._loss_sum.zero_()
            self._loss_n = 0

    def should_measure(self, step: int) -> bool:
        """Whether ``step`` is a logging point not measured yet."""
        return step != self._last_step and self._schedule is not None and self._schedule(step)

    # ------------------------------------------------------------------ reductions
    def _sum_over_processes(self, *tensors: Tensor) -> list[Tensor]:
        """The declared reduction: every tensor summed over processes, in one call."""
        if self._reduce is None:
            return list(tensors)
        flat = torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])
        flat = self._reduce(flat)
        out, offset = [], 0
        for t in tensors:
            out.append(flat[offset: offset + t.numel()].reshape(t.shape))
            offset += t.numel()
        return out

    def _sum_one(self, tensor: Tensor) -> Tensor:
        return self._sum_over_processes(tensor)[0]

    # ------------------------------------------------------------------ measurement
    def measure(self, step: int, extra: Mapping[str, float] | None = None
                ) -> list[tuple[int, dict[str, float]]]:
        """Measure at ``step``: weight norm, effective LR, window fill and stride, ``U``
        (summed over processes, then averaged), ESS (and the auto stride), ``S`` for every
        ``k``, duplicates, ``F`` and ``T_local``. ``extra`` (SNR, a full-data energy) joins
        the row. Returns ``[(step, metrics), ...]`` to log: the row, and ``T_local`` at the
        step it belongs to once its later neighbours exist."""
        if self.buffer is None:
            raise RuntimeError("ThermoMeter.measure called before setup().")
        self._last_step = step
        buffer = self.buffer
        norm = float(joint_norm(self._params))
        metrics: dict[str, float] = {keys.WEIGHT_NORM: norm, keys.ELR: self._elr(norm),
                                     keys.STRIDE: float(self.stride),
                                     keys.WINDOW_FILL: buffer.fill_fraction}
        if math.isfinite(self.correlation_time):
            metrics[keys.CORRELATION_TIME] = self.correlation_time
        rows, slots, bad_steps = buffer.snapshots()
        if bad_steps:
            self._skipped.update(bad_steps)
            self._warn_once("nan", f"ThermoMeter: snapshots with NaN/Inf weights were left out of "
                            f"the window (steps {bad_steps[:5]}); counted in {keys.SKIPPED}.")
        metrics[keys.SKIPPED] = float(len(self._skipped))
        if slots:
            metrics.update(self._energy(slots, step))
        if buffer.full and len(slots) > max(self.ks):
            proj = buffer.projections(rows, slots, self.n_directions, self.seed,
                                      reduce=self._sum_one)
            ess = float(effective_sample_size(proj, pooled=True))
            low = ess < LOW_ESS_FRACTION * len(slots)
            metrics[keys.ESS] = ess
            if self._stride_chosen:  # the pilot's stride-1 windows are correlated by design
                metrics[keys.LOW_ESS] = float(low)
                if math.isfinite(chi2 := half_window_chi2(proj)):  # nan: N < 8
                    metrics[keys.HALVES] = chi2
            # the stride-1 windows of a pilot are correlated by design: no warning for them;
            # one low window can be the ESS estimate's noise: warn on two in a row
            self._low_streak = self._low_streak + 1 if low and self._stride_chosen else 0
            if self._low_streak >= 2:
                self._warn_once("ess", low_ess_advice(step, ess, len(slots),
                                                      self.stride_spec == "auto"))
            metrics.update(self._entropy_metrics(rows, step))
        metrics.update(extra or {})
        if keys.ENTROPY in metrics and keys.ENERGY in metrics:  # a full window
            metrics[keys.ENERGY_WINDOW] = metrics[keys.ENERGY]
        if self.temperature is not None and keys.ENTROPY in metrics and keys.ENERGY in metrics:
            metrics[keys.FREE_ENERGY] = free_energy(metrics[keys.ENERGY],
                                                    metrics[keys.ENTROPY], self.temperature)
        self.measurements += 1
        self._history.append({"step": float(step), **metrics})
        return [(step, metrics), *self._local_temperature()]

    def _elr(self, norm: float) -> float:
        ids = {id(p) for p in self._params}
        for opt in self._optimizers:
            for group in opt.param_groups:
                if norm > 0 and any(id(p) in ids for p in group["params"]):
                    return float(group["lr"]) / norm**2
        return math.nan

    def _energy(self, slots: list[int], step: int) -> dict[str, float]:
        losses = self._losses[slots] if len(slots) < self.window else self._losses
        finite = torch.isfinite(losses)
        bad = int((~finite).sum())
        if bad:
            self._warn_once("nanloss", f"ThermoMeter: {bad} intervals between snapshots had a "
                            f"non-finite or no training loss (seen at step {step}); they are "
                            f"left out of {keys.ENERGY}.")
        total, count = self._sum_over_processes(torch.where(finite, losses, 0.0).sum(),
                                                finite.sum().to(torch.float64))
        return {keys.ENERGY: float(total / count) if float(count) > 0 else math.nan}

    def _entropy_metrics(self, rows: Tensor, step: int) -> dict[str, float]:
        assert self.spec is not None and self.buffer is not None, "set up before measuring"
        est = self.buffer.entropy(rows, self.ks, self.estimator, self.spec.dim, self.backend,
                                  reduce=self._sum_one)
        out = {keys.entropy_key(kk): value for kk, value in est.entropy.items()}
        out[keys.ENTROPY] = est.entropy[self.ks[0]]
        out[keys.DUPLICATES] = float(est.n_duplicate_points)
        if est.n_duplicate_points:
            self._warn_once("dup", f"ThermoMeter: {est.n_duplicate_points} snapshots in the window "
                            f"at step {step} have an identical twin (the weights did not move); "
                            f"they bias S downwards. Counted in {keys.DUPLICATES}.")
        return out

    def _local_temperature(self) -> list[tuple[int, dict[str, float]]]:
        # only windows of the current stride: S jumps where the stride changes (windows of
        # the pilot's stride 1 are far more correlated), and a fit across it is meaningless
        rows = [r for r in self._history if keys.ENERGY in r and keys.ENTROPY in r
                and r.get(keys.STRIDE) == float(self.stride)]
        if len(rows) <= 2 * self.lag:
            return []
        recent = rows[-(2 * self.lag + 1):]
        t = float(trend_temperature([r["step"] for r in recent],
                                    [r[keys.ENERGY] for r in recent],
                                    [r[keys.ENTROPY] for r in recent],
                                    half_width=self.lag)[self.lag])
        target = rows[-(self.lag + 1)]
        if keys.T_LOCAL in target or not math.isfinite(t):
            return []
        target[keys.T_LOCAL] = t
        return [(int(target["step"]), {keys.T_LOCAL: t})]
