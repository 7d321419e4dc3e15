"""thermo_lightning: the thermodynamics of neural-network training, measured from Lightning.

Loss ``U``, weight entropy ``S``, effective temperature ``T(eta)``, free energy
``F = U - T S`` and gradient SNR, following Sadrtdinov et al., "SGD as Free Energy
Minimization" (2025). Importing the package registers the strategy names
``"sphere_projection"`` and ``"ddp_sphere_projection"``.
"""

from thermo_lightning.callback import ThermoCallback
from thermo_lightning.functional import (
    fit_power_law,
    free_energy_curves,
    gradient_snr,
    infer_temperature,
    knn_entropy,
    local_temperature,
)
from thermo_lightning.scale_invariance import (
    ScaleInvarianceError,
    find_scale_invariant_parameters,
    verify_scale_invariance,
)
from thermo_lightning.strategy import DDPSphereProjectionStrategy, SphereProjectionStrategy

__version__ = "0.1.0.dev0"

__all__ = [
    "DDPSphereProjectionStrategy",
    "ScaleInvarianceError",
    "SphereProjectionStrategy",
    "ThermoCallback",
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
