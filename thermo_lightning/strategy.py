"""Lightning strategies that keep the scale-invariant (SI) weights on a sphere.

After the weights are set up and after every optimiser step that was actually taken, the SI
group ``w`` is rescaled to ``||w|| = radius`` (one joint norm, as the paper; METHOD.md
section 2). The projection runs in a ``torch.optim.Optimizer`` step post-hook, so:

- a step that AMP's grad scaler skips (non-finite gradients) projects nothing;
- with gradient accumulation it runs only at the accumulation boundaries;
- under manual optimisation it runs after each ``opt.step()`` the user calls.

Registered names: ``Trainer(strategy="sphere_projection")`` (one device, taken from the
accelerator) and ``Trainer(strategy="ddp_sphere_projection")`` (DDP; every rank projects its
identical copy).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy, StrategyRegistry
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor, nn
from torch.optim import Optimizer

from thermo_lightning.functional.sphere import _fast_joint_norm, joint_norm, project_to_sphere_
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

__all__ = ["DDPSphereProjectionStrategy", "SphereProjectionStrategy", "SphereProjector"]

StepListener = Callable[[Optimizer], None]


class SphereProjector:
    """The Lightning-free core of the strategies: owns the SI group and the projection.

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
    """

    def __init__(
        self,
        radius: float = 1.0,
        parameters: ParameterSpec = None,
        per_tensor: bool = False,
        verify: bool = True,
        verify_forward: Callable[[nn.Module, Any], Any] | None = None,
        verify_rtol: float = 1e-4,
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
        self.named_parameters: list[tuple[str, nn.Parameter]] = []
        self.projection_count = 0
        self.check_every = 50
        self._last_norm: torch.Tensor | None = None
        self._params: list[nn.Parameter] = []
        self._fast = False
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
        self._fast = (not self.per_tensor
                      and len({(p.dtype, p.device) for p in self._params}) == 1
                      and self._params[0].dtype in (torch.float32, torch.float64))
        summary = parameter_summary(module, self.named_parameters)
        rank_zero_info(
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
            rank_zero_warn(message)

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
        # set-up (force=False) checks at once; per-step projections check every check_every
        if force and self._fast:
            self._last_norm = self._project_fast()
        else:
            self._last_norm = project_to_sphere_(self.parameters, self.radius,
                                                 per_tensor=self.per_tensor, check=not force)
        self.projection_count += 1
        if force and self.projection_count % self.check_every == 0:
            self.check_norm()

    @torch.no_grad()
    def _project_fast(self) -> torch.Tensor:
        """The per-step projection for float32/float64 tensors of one dtype on one device,
        joint norm. On a GPU: three kernels and no host synchronisation (the scale stays a
        device tensor). On the CPU, where reading a number costs nothing, the scale is a Python
        float, which is the faster kernel."""
        params = self._params
        norm = _fast_joint_norm(params)
        if params[0].device.type == "cpu":
            value = float(norm)
            if not (math.isfinite(value) and value > 0):
                self._last_norm = norm
                self.check_norm()
            torch._foreach_mul_(params, self.radius / value)
        else:
            torch._foreach_mul_(params, self.radius / norm)
        return norm

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
                f"strategy chose its group (step {self.projection_count}); they are not "
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
        if self._steps_seen == 1 or self._steps_seen % self.check_every == 0:
            self.check_parameters()
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
                "strategy, or `verify=False`."
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
        return apply_to_collection(batch, Tensor, lambda t: t.float() if t.dtype in low else t)

    try:
        yield cast
    finally:
        with torch.no_grad():
            for t, dtype in zip(tensors, dtypes, strict=True):
                t.data = t.data.to(dtype)


class _SphereMixin:
    """What both strategies add to their Lightning base."""

    projector: SphereProjector

    def setup(self, trainer: pl.Trainer) -> None:
        super().setup(trainer)  # type: ignore[misc]
        if trainer.state.fn == TrainerFn.FITTING:
            self.projector.attach(self.lightning_module, self.optimizers)  # type: ignore[attr-defined]

    @classmethod
    def register_strategies(cls, strategy_registry: Any) -> None:
        name = cls.strategy_name  # type: ignore[attr-defined]
        strategy_registry.register(name, cls, description=(cls.__doc__ or name).splitlines()[0])

    @property
    def radius(self) -> float:
        return self.projector.radius

    @property
    def scale_invariant_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """``[(name, parameter)]`` of the SI group (after set-up)."""
        return self.projector.named_parameters

    @property
    def effective_lr(self) -> float | None:
        """``lr / radius^2`` (``None`` before set-up)."""
        return self.projector.effective_lr()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_start(batch, batch_idx)  # type: ignore[misc]
        self.projector.maybe_verify(self.lightning_module, batch)  # type: ignore[attr-defined]

    def teardown(self) -> None:
        self.projector.detach()
        super().teardown()  # type: ignore[misc]


class SphereProjectionStrategy(_SphereMixin, SingleDeviceStrategy):
    """Single-device training with the scale-invariant weights kept on a sphere.

    Args:
        radius: the sphere's radius (the paper: 1).
        parameters: the SI group: ``None`` detects it from the model's structure; or a list
            of parameters, a list of names, or a predicate ``(name, parameter) -> bool``.
        per_tensor: one norm per tensor instead of the joint norm.
        verify: check on the first training batch that scaling the group leaves the outputs
            unchanged; raises :class:`~thermo_lightning.scale_invariance.ScaleInvarianceError`
            naming the tensors that break it.
        verify_forward: ``(module, batch) -> output`` for that check.
        device: the device; default: the Trainer's accelerator decides (so
            ``Trainer(strategy="sphere_projection")`` runs on CPU and GPU alike).

    Example::

        trainer = Trainer(strategy=SphereProjectionStrategy(radius=1.0), max_steps=1000)
    """

    strategy_name = "sphere_projection"

    def __init__(
        self,
        radius: float = 1.0,
        parameters: ParameterSpec = None,
        per_tensor: bool = False,
        verify: bool = True,
        verify_forward: Callable[[nn.Module, Any], Any] | None = None,
        device: torch.device | str | int | None = None,
        accelerator: pl.accelerators.Accelerator | None = None,
        checkpoint_io: Any = None,
        precision_plugin: Any = None,
    ) -> None:
        super().__init__(
            device=device if device is not None else "cpu",
            accelerator=accelerator,
            checkpoint_io=checkpoint_io,
            precision_plugin=precision_plugin,
        )
        self._device_given = device is not None
        self._parallel_devices: list[torch.device] = []
        self.projector = SphereProjector(radius, parameters, per_tensor, verify, verify_forward)

    @property
    def parallel_devices(self) -> list[torch.device]:
        """The devices the Trainer resolved from its accelerator (one)."""
        return self._parallel_devices

    @parallel_devices.setter
    def parallel_devices(self, devices: list[torch.device] | None) -> None:
        devices = list(devices or [])
        if len(devices) > 1:
            raise ValueError(
                f"SphereProjectionStrategy runs on one device, but the Trainer asks for "
                f"{len(devices)}; use strategy='ddp_sphere_projection' for several."
            )
        self._parallel_devices = [torch.device(d) if not isinstance(d, torch.device) else d
                                  for d in devices]

    @property
    def root_device(self) -> torch.device:
        if self._device_given or not self._parallel_devices:
            return self._root_device
        return self._parallel_devices[0]


class DDPSphereProjectionStrategy(_SphereMixin, DDPStrategy):
    """DDP training with the scale-invariant weights kept on a sphere on every rank.

    DDP averages gradients, so every rank takes the same step and projects the same weights.
    Takes the :class:`SphereProjectionStrategy` arguments (``radius``, ``parameters``,
    ``per_tensor``, ``verify``, ``verify_forward``) and any ``DDPStrategy`` argument.
    """

    strategy_name = "ddp_sphere_projection"

    def __init__(
        self,
        radius: float = 1.0,
        parameters: ParameterSpec = None,
        per_tensor: bool = False,
        verify: bool = True,
        verify_forward: Callable[[nn.Module, Any], Any] | None = None,
        **ddp_kwargs: Any,
    ) -> None:
        super().__init__(**ddp_kwargs)
        self.projector = SphereProjector(radius, parameters, per_tensor, verify, verify_forward)


def register() -> None:
    """Add the registry names (idempotent; runs at ``import thermo_lightning``)."""
    for cls in (SphereProjectionStrategy, DDPSphereProjectionStrategy):
        if cls.strategy_name not in StrategyRegistry:
            cls.register_strategies(StrategyRegistry)


register()
