"""Pure torch/numpy math of the method; never imports lightning.

Its public names are a contract (docs/architecture.md, "Public contract").
"""

from thermo_lightning.functional.configurational import (
    ConfigurationalTemperature,
    configurational_temperature,
    sphere_gradient_sq,
    sphere_laplacian,
)
from thermo_lightning.functional.convex_temperature import convex_temperature
from thermo_lightning.functional.entropy import (
    ESTIMATORS,
    DuplicatePointsWarning,
    EntropyEstimate,
    entropy_from_knn_distances,
    gaussian_entropy,
    knn_entropy,
    knn_entropy_estimate,
    uniform_sphere_entropy,
    uniform_sphere_knn_entropy,
)
from thermo_lightning.functional.snr import GradientSNRAccumulator, gradient_snr
from thermo_lightning.functional.sphere import (
    effective_lr,
    joint_norm,
    project_to_sphere_,
    sphere_distance_to_radius,
    tangent_projection,
)
from thermo_lightning.functional.stationarity import (
    StationarityResult,
    autocorrelation,
    corrected_autocorrelation_time,
    effective_sample_size,
    half_window_chi2,
    integrated_autocorrelation_time,
    stationarity_test,
    window_autocorrelation_time,
    window_effective_sample_size,
    window_projections,
)
from thermo_lightning.functional.temperature import (
    FreeEnergyCurves,
    fit_power_law,
    free_energy,
    free_energy_curves,
    infer_temperature,
    local_temperature,
    smooth_across_lrs,
    smoothing_weights,
    trend_temperature,
)

__all__ = [
    "ESTIMATORS",
    "ConfigurationalTemperature",
    "DuplicatePointsWarning",
    "EntropyEstimate",
    "FreeEnergyCurves",
    "GradientSNRAccumulator",
    "StationarityResult",
    "autocorrelation",
    "configurational_temperature",
    "convex_temperature",
    "corrected_autocorrelation_time",
    "effective_lr",
    "effective_sample_size",
    "entropy_from_knn_distances",
    "fit_power_law",
    "free_energy",
    "free_energy_curves",
    "gaussian_entropy",
    "gradient_snr",
    "half_window_chi2",
    "infer_temperature",
    "integrated_autocorrelation_time",
    "joint_norm",
    "knn_entropy",
    "knn_entropy_estimate",
    "local_temperature",
    "project_to_sphere_",
    "smooth_across_lrs",
    "smoothing_weights",
    "sphere_distance_to_radius",
    "sphere_gradient_sq",
    "sphere_laplacian",
    "stationarity_test",
    "tangent_projection",
    "trend_temperature",
    "uniform_sphere_entropy",
    "uniform_sphere_knn_entropy",
    "window_autocorrelation_time",
    "window_effective_sample_size",
    "window_projections",
]
