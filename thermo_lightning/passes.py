"""ThermoMeter's passes beyond the training step, and the policies around them: the gradient
SNR at a logging point (and how this run measures it, :meth:`ExtraPasses.snr_plan`), the
loss over the whole training set, and the loss of random weights with the check that a run
learned something.

:class:`ExtraPasses` is a part of :class:`~thermo_lightning.meter.ThermoMeter` (its base
class), kept in its own module: it uses the meter's weights (``_params``), its cross-process
reduction (``_reduce``, ``_sum_over_processes``), its warnings (``_warn_fn``,
``_warn_once``, ``_inform``), its ``seed``, ``_radius`` and ``history``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from thermo_lightning import keys
from thermo_lightning.functional.snr import GradientSNRAccumulator
from thermo_lightning.probes import (
    configurational_terms_from_batches,
    full_gradient_and_loss,
    preserved_state,
    random_weight_loss,
    snr_from_batches,
)

__all__ = ["ExtraPasses"]

LossFn = Callable[[nn.Module, Any], Tensor]
_NOT_LEARNING = 0.8  # a final U above this share of the random-weights loss is warned about
#: random points of the sphere the random-weights loss averages: 4 gave 0.10-0.12 for the
#: Langevin problem's 0.67-0.69 (its loss is noisy), so "has not learned" fired spuriously
RANDOM_DRAWS = 16


class ExtraPasses:
    """The SNR, full-data energy and random-weights passes of a :class:`~thermo_lightning.
    meter.ThermoMeter` (module docstring)."""

    snr_mode: str | None
    snr_batches: int
    conf_temperature: bool
    measurements: int
    _spheres: list[list[Tensor]]
    _optimizers: list[Any]
    random_loss: float | None
    seed: int
    _snr_plan: tuple[str, int] | None
    #: why snr="auto" took the unbiased estimate: the model's BatchNorm (the advice differs)
    _snr_batch_statistics: bool = False
    _params: list[Tensor]
    _radius: float
    _reduce: Any
    _warn_fn: Callable[[str], Any]
    history: Any
    _warn_once: Callable[[str, str], None]
    _inform: Callable[[str], None]
    _sum_over_processes: Callable[..., list[Tensor]]

    def snr_plan(self, count_full_batches: Callable[[int], int | None] | None = None,
                 batch_statistics: bool = False) -> tuple[str, int] | None:
        """How this run measures the SNR: ``(mode, mini-batches for the noise)``, ``None``
        when ``snr`` is off. ``snr="auto"`` decides once per run (at its first call after
        :meth:`setup`, said through ``inform``): ``count_full_batches(limit)`` tells how many
        batches the whole training set takes, counted up to ``limit`` (``None``: no full
        training set to be had); at most ``K / 2`` gives ``("exact", K / 2)`` (its full
        gradient plus ``K / 2`` mini-batches cost at most the ``K`` gradients of the unbiased
        estimate), else ``("unbiased", K)``. ``batch_statistics``: the model normalises with
        each batch's own statistics (BatchNorm in training mode), so a gradient depends on
        which examples share its batch and a full pass's gradient on how the set is cut: its
        signal is not the mean mini-batch gradient the unbiased estimate measures (near
        convergence they differed by 1.8x). ``"auto"`` then always takes ``"unbiased"``: one
        definition of the signal, ``E_B[g_B]``, whatever the data set's size."""
        if self.snr_mode is None:
            return None
        if self.snr_mode != "auto":
            return str(self.snr_mode), self.snr_batches
        if self._snr_plan is None:
            k, budget = self.snr_batches, self.snr_batches // 2
            count = (count_full_batches(budget + 1) if count_full_batches is not None
                     and not batch_statistics else None)
            if count is not None and 1 <= count <= budget:  # budget >= 1: K >= 2
                self._snr_plan = ("exact", budget)
                self._inform(f"ThermoMeter: snr='auto' measures the exact SNR (the training set "
                             f"is {count} batch(es): its full gradient, plus {budget} "
                             "mini-batches for the noise).")
            else:
                self._snr_plan = ("unbiased", k)
                self._snr_batch_statistics = batch_statistics
                why = ("the model's BatchNorm makes a full pass's gradient depend on how the "
                       "set is cut into batches" if batch_statistics else
                       "no full training set (full_data=, or full_batches() on the data "
                       "module or module)" if count is None else
                       f"the training set takes more than {budget} batches")
                self._inform(f"ThermoMeter: snr='auto' uses the unbiased estimate from {k} "
                             f"mini-batches ({why}).")
        return self._snr_plan

    def measure_random_loss(self, module: nn.Module, loss: Callable[[], float]) -> float | None:
        """The mean of ``loss()`` at :data:`RANDOM_DRAWS` random points of the sphere for the
        meter's weights (the level of a network that learned nothing, which
        :meth:`check_learned` compares the final ``U`` with); weights, buffers and RNG are
        restored. Kept as :attr:`random_loss` (``None`` when it is not finite)."""
        self.random_loss = random_weight_loss(module, self.parameters, loss, draws=RANDOM_DRAWS,
                                              radius=self._radius, seed=self.seed)
        if not math.isfinite(self.random_loss):
            self.random_loss = None
        return self.random_loss

    def check_learned(self) -> bool:
        """Whether the last ``U`` is clearly below the random-weights loss; warns when it is
        at or near it (the saturated regime of a too-high learning rate). ``True`` when
        either is unknown."""
        history = self.history
        if self.random_loss is None or history.empty or keys.ENERGY not in history:
            return True
        energies = history[keys.ENERGY].dropna()
        if len(energies) and energies.iloc[-1] >= _NOT_LEARNING * self.random_loss:
            self._warn_fn(
                f"ThermoMeter: the training loss U = {energies.iloc[-1]:.4g} at the end is "
                f"at or near the loss of random weights ({self.random_loss:.4g}): the network "
                "has not learned (the saturated regime of a too-high learning rate). If you "
                "meant to train it, lower the learning rate or train longer.")
            return False
        return True

    # ------------------------------------------------------------------ extra passes
    def snr(self, module: nn.Module, loss_fn: LossFn, batches: Iterable[Any], *,
            full_batches: Iterable[Any] | None = None) -> dict[str, float]:
        """Gradient SNR at the current weights from mini-batch gradients of ``batches``
        (with ``full_batches``: the exact full-data gradient, the paper's definition); the
        sums of every process's batches are reduced before the one ratio. BatchNorm
        statistics and the RNG are left as they were."""
        with preserved_state(module):
            full_grad = None
            if full_batches is not None:
                full_grad, _ = full_gradient_and_loss(module, loss_fn, full_batches,
                                                      self._params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # autograd.grad on unused params
                res = snr_from_batches(module, loss_fn, batches, self._params, full_grad,
                                       reduce_fn=self._reduce)
        return self._snr_metrics(res, exact=full_grad is not None)

    def _snr_metrics(self, res: dict[str, float], exact: bool) -> dict[str, float]:
        """The logged SNR keys of :func:`~thermo_lightning.functional.gradient_snr`'s result
        (warned about once when the unbiased signal is not resolved)."""
        if not exact and not res["full_grad_sq_unbiased"] > 0:
            self._warn_once("snr", (
                f"ThermoMeter: at a logging point the gradient signal is below what "
                f"{int(res['num_batches'])} mini-batches resolve (the unbiased estimate of "
                f"||g||^2 is {res['full_grad_sq_unbiased']:.3g}): {keys.SNR} is NaN there, not "
                "0. " + ("Raise snr_batches (the model's BatchNorm leaves no full gradient "
                         "that does not depend on how the set is cut into batches, so "
                         "snr='exact' would measure another quantity)."
                         if self._snr_batch_statistics else
                         "Pass snr='exact' for the exact SNR (it takes the full training set: "
                         "full_data=, full_batches() on the data module or module, or a "
                         "DataLoader over a map-style dataset), or raise snr_batches.")))
        return {keys.SNR: res["snr"], keys.GRAD_NORM: res["full_grad_norm"],
                keys.STOCH_GRAD_NORM: res["mean_stoch_grad_norm"],
                keys.NOISE_SCALE: res["noise_scale"]}

    def full_energy(self, module: nn.Module, loss_fn: LossFn, batches: Iterable[Any]) -> float:
        """The loss over ``batches`` (the whole training set; train mode as it is), averaged
        over processes; state and RNG left as they were."""
        with preserved_state(module):
            _, loss = full_gradient_and_loss(module, loss_fn, batches, None)
        total, count = self._sum_over_processes(torch.tensor(loss, dtype=torch.float64),
                                                torch.tensor(1.0, dtype=torch.float64))
        return float(total / count)

    def configurational(self, module: nn.Module, loss_fn: LossFn, batches: Iterable[Any],
                        *, with_snr: bool = False) -> dict[str, float]:
        """The configurational temperature's terms at the current weights from ``batches``
        (:func:`~thermo_lightning.probes.configurational_terms_from_batches`: their gradients,
        one Hutchinson probe each, sums reduced over processes), and ``thermo/T_conf``: the
        ratio of their means over the logging points in the later half of the run so far
        (this one included; :func:`~thermo_lightning.functional.configurational_temperature`
        gives it with its standard error over a chosen tail). Empty when the weights are not
        on a sphere. ``with_snr``: also the unbiased gradient SNR of the same batches (the keys
        of :meth:`snr`), from the gradients this pass computes anyway. State and RNG left as
        they were."""
        if not self._spheres:
            self._warn_once("conf", "ThermoMeter: conf_temperature needs the weights on a "
                            "sphere (SphereProjectionStrategy, or setup(radius=...)); it is "
                            "not measured.")
            return {}
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.measurements)
        acc = GradientSNRAccumulator(None, sync_on_compute=False) if with_snr else None
        with preserved_state(module), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # autograd.grad on unused params
            terms = configurational_terms_from_batches(
                module, loss_fn, batches, self._spheres, generator=gen, reduce_fn=self._reduce,
                snr=acc)
        out = {keys.CONF_GRAD_SQ: terms.grad_sq, keys.CONF_LAPLACIAN: terms.laplacian,
               keys.CONF_GHG: terms.gHg}
        later = self._later_half(out)
        running = _ratio_of_means(later, keys.CONF_GRAD_SQ, keys.CONF_LAPLACIAN)
        if running is not None:
            out[keys.T_CONF] = running
        lr = self._plain_sgd_lr()
        balance = _ratio_of_means(later, keys.CONF_GRAD_SQ, keys.CONF_GHG)
        if lr is not None and balance is not None:
            out[keys.FDR] = balance / (lr / 2)
        if acc is not None:
            if self._reduce is not None:
                acc.reduce_with(self._reduce)
            out.update(self._snr_metrics(acc.compute(), exact=False))
        return out

    def _plain_sgd_lr(self) -> float | None:
        """The learning rate of the weights' optimizer when it is plain SGD (no momentum, no
        weight decay: the fluctuation-dissipation relation's setting), else ``None``."""
        ids = {id(p) for p in self._params}
        for opt in self._optimizers:
            for group in opt.param_groups:
                if any(id(p) in ids for p in group["params"]):
                    plain = (isinstance(opt, torch.optim.SGD) and not group.get("momentum")
                             and not group.get("weight_decay"))
                    return float(group["lr"]) if plain else None
        return None

    def _later_half(self, now: dict[str, float]) -> pd.DataFrame:
        """The history's points at or after half of the current step, and ``now``."""
        step = float(getattr(self, "_last_step", 0))
        history = self.history
        later = history[history["step"] >= step / 2] if not history.empty else history
        return pd.concat([later, pd.DataFrame([now])], ignore_index=True)


def _ratio_of_means(frame: pd.DataFrame, top: str, bottom: str) -> float | None:
    """``mean(top) / mean(bottom)`` over the rows where both are finite (``None`` when none
    are, or the mean of ``bottom`` is not positive)."""
    pairs = frame[[top, bottom]].astype(float)
    pairs = pairs[np.isfinite(pairs).all(axis=1)]
    if pairs.empty:
        return None
    mean_b = float(pairs[bottom].mean())
    return float(pairs[top].mean()) / mean_b if mean_b > 0 else None
