"""The scale-invariant group and its projection onto the sphere, without Lightning.

:class:`SphereProjector` resolves the group (auto-detected, or given), puts it on the sphere
``||w|| = radius`` (one joint norm, docs/sphere.md) at :meth:`~SphereProjector.attach`
and after every ``optimizer.step()`` that really runs (a step post-hook: a step skipped by
AMP or inside gradient accumulation projects nothing), checks the scale invariance on a first
batch, and notices parameters created after the group was chosen. The projection itself is
:func:`thermo_lightning.functional.sphere.project_to_sphere_`. The Lightning strategies in
:mod:`thermo_lightning.strategy` are thin adapters over it.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from thermo_lightning._warnings import warn as user_warn
from thermo_lightning.functional.sphere import joint_norm, project_to_sphere_
from thermo_lightning.probes import training_step_loss
from thermo_lightning.scale_invariance import (
    ParameterSpec,
    ScaleInvarianceError,
    ScaleInvarianceReport,
    check_parameter_spec,
    has_own_forward,
    parameter_summary,
    resolve_parameters,
    verify_scale_invariance,
)

__all__ = ["SphereProjector"]

StepListener = Callable[[Optimizer], None]
_log = logging.getLogger(__name__)


class SphereProjector:
    """Owns the SI group and its projection onto the sphere; no Lightning needed (the
    strategies wire it to a Trainer, a plain loop calls :meth:`attach` itself).

    Args:
        radius: the sphere's radius ``rho > 0``.
        parameters: ``None`` (auto-detection), parameters, names, or a predicate
            ``(name, parameter) -> bool``.
        per_tensor: project every tensor to norm ``radius`` on its own instead of one joint
            norm.
        verify: check scale invariance numerically on the first training batch.
        verify_forward: ``(module, batch) -> output`` for that check (default: the module
            called on the batch's input).
        verify_rtol: tolerance of the check.
        warn: how warnings are emitted (the strategies pass Lightning's rank-zero warning).
        info: how the table of the group is reported.

    Example::

        projector = SphereProjector(radius=1.0)
        projector.attach(model, [optimizer])   # projects now, and after every optimizer.step()
    """

    def __init__(
        self,
        radius: float = 1.0,
        parameters: ParameterSpec = None,
        per_tensor: bool = False,
        verify: bool = True,
        verify_forward: Callable[[nn.Module, Any], Any] | None = None,
        verify_rtol: float = 1e-4,
        warn: Callable[[str], Any] = user_warn,
        info: Callable[[str], Any] = _log.info,
    ) -> None:
        if isinstance(radius, bool) or not isinstance(radius, int | float) or not radius > 0 \
                or not math.isfinite(radius):
            raise ValueError(f"`radius` must be a positive finite number, got {radius!r}.")
        if isinstance(verify_rtol, bool) or not isinstance(verify_rtol, int | float) \
                or not verify_rtol > 0:
            raise ValueError(f"`verify_rtol` must be a positive number, got {verify_rtol!r}.")
        for flag, value in (("per_tensor", per_tensor), ("verify", verify)):
            if not isinstance(value, bool):
                raise ValueError(f"`{flag}` must be True or False, got {value!r}.")
        if verify_forward is not None and not callable(verify_forward):
            raise ValueError(
                f"`verify_forward` must be a callable (module, batch) -> output, got "
                f"{verify_forward!r}."
            )
        check_parameter_spec(parameters)
        self.radius = float(radius)
        self.parameter_spec = parameters
        self.per_tensor = per_tensor
        self.verify = verify
        self.verify_forward = verify_forward
        self.verify_rtol = verify_rtol
        self._warn, self._info = warn, info
        self.named_parameters: list[tuple[str, nn.Parameter]] = []
        self.projection_count = 0
        self.check_every = 50
        self._last_norm: torch.Tensor | None = None
        self._params: list[nn.Parameter] = []
        self.verification: ScaleInvarianceReport | None = None
        self._optimizers: list[Optimizer] = []
        self._handles: list[Any] = []
        self._listeners: list[StepListener] = []
        self._warned: set[str] = set()
        self._module: nn.Module | None = None
        self._steps_seen = 0
        self._known_parameters: set[int] = set()

    # ---------------------------------------------------------------- set-up and teardown
    @property
    def parameters(self) -> list[nn.Parameter]:
        """The SI group (after :meth:`attach`)."""
        return [p for _, p in self.named_parameters]

    @property
    def num_parameters(self) -> int:
        """``D``: the number of scalars in the SI group."""
        return sum(p.numel() for p in self.parameters)

    def attach(self, module: nn.Module, optimizers: list[Optimizer]) -> None:
        """Resolve the group, project it, hook the optimisers that hold it, and warn about
        what makes the effective learning rate drift."""
        self.detach()
        self._module = module
        self._steps_seen = 0
        self._known_parameters = {id(p) for p in module.parameters()}
        self.named_parameters = resolve_parameters(module, self.parameter_spec)
        self._params = [p for _, p in self.named_parameters]
        summary = parameter_summary(module, self.named_parameters)
        self._info(
            f"Sphere projection: {len(self.named_parameters)} tensors, {self.num_parameters} "
            f"parameters kept at {'per-tensor' if self.per_tensor else 'joint'} norm "
            f"{self.radius:g}\n{summary.to_string(index=False)}"
        )
        others = summary[summary["group"] == "trainable"]["name"].tolist()
        if others:
            self._warn_once(
                "others",
                f"trainable parameters outside the sphere: {others}. They are not projected and "
                "not part of the measured weight distribution; freeze them, remove them "
                "(bias=False, affine=False) or include them with `parameters=`.",
            )
        self.project(force=False)
        si_ids = {id(p) for p in self.parameters}
        self._optimizers = [
            opt for opt in optimizers
            if any(id(p) in si_ids for g in opt.param_groups for p in g["params"])
        ]
        if not self._optimizers:
            raise ScaleInvarianceError(
                "no optimiser updates the scale-invariant parameters; check "
                "configure_optimizers (frozen parameters are not on the sphere)."
            )
        for opt in self._optimizers:
            self._handles.append(opt.register_step_post_hook(self._on_step))
            self._check_optimizer(opt, si_ids)

    def detach(self) -> None:
        """Remove the optimiser hooks (the group and the optimisers stay readable) and check
        the last norm."""
        if self._handles:
            self.check_norm()
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._warn(message)

    def _check_optimizer(self, opt: Optimizer, si_ids: set[int]) -> None:
        for group in opt.param_groups:
            if not any(id(p) in si_ids for p in group["params"]):
                continue
            if not isinstance(opt, torch.optim.SGD):
                self._warn_once(
                    "optimizer",
                    f"{type(opt).__name__} updates the scale-invariant weights: the method "
                    "assumes plain SGD, whose effective learning rate lr / radius^2 is fixed.",
                )
            if group.get("momentum", 0) or group.get("weight_decay", 0):
                self._warn_once(
                    "momentum",
                    f"the optimiser applies momentum={group.get('momentum', 0)} / weight_decay="
                    f"{group.get('weight_decay', 0)} to scale-invariant weights: the effective "
                    "learning rate is then not fixed (the paper uses neither).",
                )

    # ------------------------------------------------------------------------ projection
    def project(self, force: bool = True) -> None:
        """Put the group on the sphere. With ``force=False`` a group already within
        ``1e-6 * radius`` is left untouched (a resumed run then continues bit for bit).

        Per-step projections stay on the device (no host synchronisation); the norm is
        checked for zero/NaN/Inf every ``check_every`` projections, at set-up and at the end.
        """
        if not self.named_parameters:
            raise RuntimeError("SphereProjector.project called before attach().")
        if not force and not self.per_tensor:
            norm = float(joint_norm(self.parameters))
            if abs(norm - self.radius) <= 1e-6 * self.radius:
                self._last_norm = torch.tensor(norm)
                return
        # set-up (force=False) checks at once; per-step projections (no host synchronisation
        # on a GPU) every check_every, and on the CPU, where reading the norm is free, at once
        self._last_norm = project_to_sphere_(self._params, self.radius,
                                             per_tensor=self.per_tensor, check=not force)
        self.projection_count += 1
        if force and (self._params[0].device.type == "cpu"
                      or self.projection_count % self.check_every == 0):
            self.check_norm()

    def check_norm(self) -> None:
        """Raise if the last norm before projection was zero or not finite (one host read)."""
        if self._last_norm is None:
            return
        value = float(self._last_norm.max() if self._last_norm.ndim else self._last_norm)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"the scale-invariant weights had norm {value} before projection (step "
                f"{self.projection_count}): training diverged or produced NaN/Inf. Lower the "
                "learning rate or look for NaN/Inf losses."
            )

    def check_parameters(self) -> None:
        """Raise if trainable parameters appeared in the module after :meth:`attach` that the
        group's rule would select (auto-detection or a predicate): they would silently stay
        off the sphere. New parameters outside an explicit list only warn (once)."""
        if self._module is None:
            return
        new = [(n, p) for n, p in self._module.named_parameters()
               if id(p) not in self._known_parameters and p.requires_grad]
        if not new:
            return
        self._known_parameters.update(id(p) for _, p in new)
        names = [n for n, _ in new]
        spec = self.parameter_spec
        if spec is None or (callable(spec) and not isinstance(spec, nn.Parameter)):
            raise ScaleInvarianceError(
                f"trainable parameters {names} were added to the model after the sphere "
                f"strategy chose its group (seen after optimiser step {self._steps_seen}); "
                "they are not "
                "projected and the measured weights would miss them. Create every parameter "
                "before training (in __init__ or configure_model), or pass the group "
                "explicitly with `parameters=`."
            )
        self._warn_once(
            "added",
            f"trainable parameters {names} were added after set-up; they are outside the "
            "explicit `parameters=` group and are not projected.",
        )

    @property
    def last_norm_before_projection(self) -> float | None:
        """Norm of the group before the last projection (reads it from the device)."""
        return None if self._last_norm is None else float(self._last_norm.max())

    def _on_step(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        self._steps_seen += 1
        self.check_parameters()  # host-side bookkeeping (no device read): every step
        self.project()
        for listener in self._listeners:
            listener(optimizer)

    def add_step_listener(self, listener: StepListener) -> Callable[[], None]:
        """Call ``listener(optimizer)`` after each projection that follows a step; returns a
        function that removes it. (The callback takes its snapshots this way.)"""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # --------------------------------------------------------------------- verification
    def _verify_forward(self, module: nn.Module) -> Callable[[nn.Module, Any], Any] | None:
        """What the check compares: ``verify_forward``; else the module's outputs when it
        has a ``forward``; else its training loss (``training_step`` with logging off);
        ``None`` when none of them can run (manual optimisation without ``forward``)."""
        if self.verify_forward is not None:
            return self.verify_forward
        if has_own_forward(module):
            return None  # verify_scale_invariance's default: module(input)
        if getattr(module, "automatic_optimization", True) and callable(
                getattr(module, "training_step", None)):
            return training_step_loss
        return _NO_CHECK

    def maybe_verify(self, module: nn.Module, batch: Any) -> None:
        """Run the scale-invariance check once (on the first batch) when ``verify``.

        A module without ``forward`` (``training_step`` calls ``self.net(x)``) is checked on
        its training loss; one that has neither a ``forward`` nor automatic optimisation is
        not checked (a warning says so). Half-precision weights are checked in float32, so
        that rounding is not mistaken for a broken invariance.
        """
        if not self.verify or self.verification is not None:
            return
        forward = self._verify_forward(module)
        if forward is _NO_CHECK:
            self._warn_once(
                "noverify",
                f"{type(module).__name__} has no `forward` and uses manual optimisation, so "
                "the scale-invariance of the sphere's group was not checked; pass "
                "`verify_forward=` (a callable (module, batch) -> output) to check it.",
            )
            self.verification = ScaleInvarianceReport(passed=True, max_rel_change={})
            return
        try:
            with _at_least_float32(module, self.parameters) as cast:
                report = verify_scale_invariance(
                    module, self.named_parameters, cast(batch), rtol=self.verify_rtol,
                    forward=forward,
                )
        except TypeError as err:
            raise TypeError(
                f"could not run the scale-invariance check: {err} Pass `verify_forward=` to the "
                "strategy (or projector), or `verify=False`."
            ) from err
        self.verification = report
        if not report.passed:
            worst = max(report.max_rel_change.values())
            raise ScaleInvarianceError(
                "the parameters kept on the sphere are not jointly scale-invariant: scaling them "
                f"changes the outputs by up to {worst:.3g} (relative; tolerance "
                f"{self.verify_rtol:g}). Tensors that break it: {', '.join(report.culprits)}. "
                "Fix the model (bias=False on layers that feed no normalisation, BatchNorm/"
                "GroupNorm with affine=False, a frozen last layer via requires_grad_(False)), "
                "or leave those tensors out with `parameters=`, or pass `verify=False`."
            )

    # ---------------------------------------------------------------------- observables
    def effective_lr(self) -> float | None:
        """``lr / radius^2`` of the first parameter group holding SI weights (plain SGD on
        scale-invariant weights); ``None`` before set-up."""
        si_ids = {id(p) for p in self.parameters}
        for opt in self._optimizers:
            for group in opt.param_groups:
                if any(id(p) in si_ids for p in group["params"]):
                    return float(group["lr"]) / self.radius**2
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"radius": self.radius, "projection_count": self.projection_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.projection_count = int(state.get("projection_count", 0))


_NO_CHECK: Callable[[nn.Module, Any], Any] = lambda module, batch: None  # noqa: E731


@contextlib.contextmanager
def _at_least_float32(module: nn.Module, group: list[nn.Parameter]) -> Iterator[
        Callable[[Any], Any]]:
    """While active, a module whose group is float16/bfloat16 (``precision="16-true"`` or
    ``"bf16-true"``) holds float32 parameters and buffers (exact both ways), and the yielded
    function casts a batch's floating tensors to float32; otherwise nothing changes."""
    low = (torch.float16, torch.bfloat16)
    if not any(p.dtype in low for p in group):
        yield lambda batch: batch
        return
    tensors = [t for t in (*module.parameters(), *module.buffers()) if t.dtype in low]
    dtypes = [t.dtype for t in tensors]
    with torch.no_grad():
        for t in tensors:
            t.data = t.data.float()

    def cast(batch: Any) -> Any:
        if isinstance(batch, Tensor):
            return batch.float() if batch.dtype in low else batch
        if isinstance(batch, dict):
            return {k: cast(v) for k, v in batch.items()}
        if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a named tuple
            return type(batch)(*(cast(v) for v in batch))
        if isinstance(batch, list | tuple):
            return type(batch)(cast(v) for v in batch)
        return batch

    try:
        yield cast
    finally:
        with torch.no_grad():
            for t, dtype in zip(tensors, dtypes, strict=True):
                t.data = t.data.to(dtype)
