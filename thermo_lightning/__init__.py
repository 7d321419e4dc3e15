"""thermo_lightning: the thermodynamics of neural-network training, measured from Lightning.

Loss ``U``, weight entropy ``S``, effective temperature ``T(eta)``, free energy
``F = U - T S`` and gradient SNR, following Sadrtdinov et al., "SGD as Free Energy
Minimization" (2025). The measurement itself (:mod:`thermo_lightning.meter`,
:mod:`thermo_lightning.functional`) needs no Lightning; the Lightning adapters
(:class:`ThermoCallback`, the strategies) load on first use. ``import thermo_lightning``
registers the strategy names ``"sphere_projection"`` and ``"ddp_sphere_projection"`` when
Lightning is installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from thermo_lightning._version import __version__
from thermo_lightning.functional import (
    fit_power_law,
    free_energy_curves,
    gradient_snr,
    infer_temperature,
    knn_entropy,
    local_temperature,
)
from thermo_lightning.meter import ThermoMeter, WindowSpec
from thermo_lightning.scale_invariance import (
    ScaleInvarianceError,
    find_scale_invariant_parameters,
    verify_scale_invariance,
)

_ADAPTERS = {
    "ThermoCallback": "thermo_lightning.callback",
    "SphereProjectionStrategy": "thermo_lightning.strategy",
    "DDPSphereProjectionStrategy": "thermo_lightning.strategy",
}

__all__ = [
    "DDPSphereProjectionStrategy",
    "ScaleInvarianceError",
    "SphereProjectionStrategy",
    "ThermoCallback",
    "ThermoMeter",
    "WindowSpec",
    "__version__",
    "find_scale_invariant_parameters",
    "fit_power_law",
    "free_energy_curves",
    "gradient_snr",
    "infer_temperature",
    "knn_entropy",
    "local_temperature",
    "verify_scale_invariance",
]


def __getattr__(name: str) -> Any:
    if name in _ADAPTERS:
        return getattr(importlib.import_module(_ADAPTERS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register_strategies() -> None:
    """``Trainer(strategy="sphere_projection")`` must work right after ``import
    thermo_lightning``: register the names when Lightning is there (skipped without it)."""
    try:
        importlib.import_module("lightning.pytorch")
    except ImportError:  # no Lightning: the meter and the functions still work
        return
    importlib.import_module("thermo_lightning.strategy")


_register_strategies()
