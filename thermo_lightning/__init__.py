"""thermo_lightning: the thermodynamics of neural-network training, measured from Lightning.

Loss ``U``, weight entropy ``S``, effective temperature ``T(eta)``, free energy
``F = U - T S`` and gradient SNR, following Sadrtdinov et al., "SGD as Free Energy
Minimization" (2025). The measurement itself (:mod:`thermo_lightning.meter`,
:mod:`thermo_lightning.functional`) needs no Lightning; the Lightning adapters
(:class:`ThermoCallback`, the strategies) load on first use: ``import thermo_lightning``
imports neither torch nor Lightning. The strategy names ``"sphere_projection"`` and
``"ddp_sphere_projection"`` are registered as soon as ``lightning.pytorch`` is imported
(before or after this package), so ``Trainer(strategy="sphere_projection")`` works.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from typing import Any

from thermo_lightning._lazy import lazy_exports
from thermo_lightning._version import __version__

# every public name loads on first use: `import thermo_lightning` (and the command line's
# `--help`) import neither torch nor Lightning
_LAZY = {
    "ThermoCallback": "thermo_lightning.callback",
    "SphereProjectionStrategy": "thermo_lightning.strategy",
    "DDPSphereProjectionStrategy": "thermo_lightning.strategy",
    "ThermoMeter": "thermo_lightning.meter",
    "ThermoWarning": "thermo_lightning._warnings",
    "WindowSpec": "thermo_lightning.spec",
    "ScaleInvarianceError": "thermo_lightning.scale_invariance",
    "find_scale_invariant_parameters": "thermo_lightning.scale_invariance",
    "verify_scale_invariance": "thermo_lightning.scale_invariance",
    **dict.fromkeys(("fit_power_law", "free_energy_curves", "gradient_snr",
                     "infer_temperature", "knn_entropy", "local_temperature"),
                    "thermo_lightning.functional"),
}

__all__ = [
    "DDPSphereProjectionStrategy",
    "ScaleInvarianceError",
    "SphereProjectionStrategy",
    "ThermoCallback",
    "ThermoMeter",
    "ThermoWarning",
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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


def _register_strategies() -> None:
    importlib.import_module("thermo_lightning.strategy")  # registers the names on import


class _RegisterWithLightning(importlib.abc.MetaPathFinder):
    """``Trainer(strategy="sphere_projection")`` must work after ``import thermo_lightning``
    without that import loading Lightning (seconds): the strategy names are registered the
    moment ``lightning.pytorch`` has finished importing, whoever imports it."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != "lightning.pytorch":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            _register_strategies()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if "lightning.pytorch" in sys.modules:
    _register_strategies()
elif not any(isinstance(f, _RegisterWithLightning) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWithLightning())
