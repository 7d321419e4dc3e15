"""thermo_lightning: the thermodynamics of neural-network training, measured from Lightning.

Loss ``U``, weight entropy ``S``, effective temperature ``T(eta)``, free energy
``F = U - T S`` and gradient SNR, following Sadrtdinov et al., "SGD as Free Energy
Minimization" (2025).
"""

from thermo_lightning.functional import (
    fit_power_law,
    free_energy_curves,
    gradient_snr,
    infer_temperature,
    knn_entropy,
    local_temperature,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "__version__",
    "fit_power_law",
    "free_energy_curves",
    "gradient_snr",
    "infer_temperature",
    "knn_entropy",
    "local_temperature",
]
