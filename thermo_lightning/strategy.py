"""Lightning strategies that keep the scale-invariant (SI) weights on a sphere.

Thin adapters over :class:`~thermo_lightning.projector.SphereProjector`: at set-up the
projector resolves the SI group, puts it on ``||w|| = radius`` and hooks the optimisers, so
that every optimiser step actually taken is followed by a projection (none for a step that
AMP skips, at accumulation boundaries only, after each ``opt.step()`` under manual
optimisation); on the first training batch it checks the scale invariance.

Registered names: ``Trainer(strategy="sphere_projection")`` (one device, taken from the
accelerator) and ``Trainer(strategy="ddp_sphere_projection")`` (DDP; every rank projects its
identical copy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy, StrategyRegistry
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from typing_extensions import override

from thermo_lightning._warnings import rank_zero_user_warn
from thermo_lightning.projector import SphereProjector
from thermo_lightning.scale_invariance import ParameterSpec

__all__ = ["DDPSphereProjectionStrategy", "SphereProjectionStrategy", "SphereProjector"]

_ARGS_DOC = """
    Args:
        radius: the sphere's radius (the paper: 1).
        parameters: the SI group: ``None`` detects it from the model's structure (a module
            without ``forward`` through its children); or a list of parameters, a list of
            names, or a predicate ``(name, parameter) -> bool``.
        per_tensor: one norm per tensor instead of the joint norm.
        verify: check on the first training batch that scaling the group leaves the outputs
            (without ``forward``: the training loss) unchanged; raises
            :class:`~thermo_lightning.scale_invariance.ScaleInvarianceError` naming the tensors
            that break it.
        verify_forward: ``(module, batch) -> output`` for that check.
"""


class _SphereMixin:
    """What both strategies add to their Lightning base: a projector, wired to the hooks."""

    def _make_projector(self, radius: float, parameters: ParameterSpec, per_tensor: bool,
                        verify: bool, verify_forward: Callable[[nn.Module, Any], Any] | None
                        ) -> None:
        self.projector = SphereProjector(radius, parameters, per_tensor, verify, verify_forward,
                                         warn=rank_zero_user_warn, info=rank_zero_info)

    @override
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

    @override
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        super().on_train_batch_start(batch, batch_idx)  # type: ignore[misc]
        self.projector.maybe_verify(self.lightning_module, batch)  # type: ignore[attr-defined]

    @override
    def teardown(self) -> None:
        self.projector.detach()
        super().teardown()  # type: ignore[misc]


class SphereProjectionStrategy(_SphereMixin, SingleDeviceStrategy):
    """Single-device training with the scale-invariant weights kept on a sphere.
    {args}
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
        super().__init__(device=device if device is not None else "cpu", accelerator=accelerator,
                         checkpoint_io=checkpoint_io, precision_plugin=precision_plugin)
        self._device_given = device is not None
        self._parallel_devices: list[torch.device] = []
        self._make_projector(radius, parameters, per_tensor, verify, verify_forward)

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
        self._parallel_devices = [torch.device(d) for d in devices]

    @property
    @override
    def root_device(self) -> torch.device:
        if self._device_given or not self._parallel_devices:
            return self._root_device
        return self._parallel_devices[0]


class DDPSphereProjectionStrategy(_SphereMixin, DDPStrategy):
    """DDP training with the scale-invariant weights kept on a sphere on every rank.

    DDP averages gradients, so every rank takes the same step and projects the same weights.
    {args}
        ddp_kwargs: any ``DDPStrategy`` argument.
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
        self._make_projector(radius, parameters, per_tensor, verify, verify_forward)


for _cls in (SphereProjectionStrategy, DDPSphereProjectionStrategy):
    _cls.__doc__ = (_cls.__doc__ or "").replace("    {args}", _ARGS_DOC.rstrip("\n"))


def register() -> None:
    """Add the registry names (idempotent; runs at ``import thermo_lightning``)."""
    for cls in (SphereProjectionStrategy, DDPSphereProjectionStrategy):
        if cls.strategy_name not in StrategyRegistry:
            cls.register_strategies(StrategyRegistry)


register()
