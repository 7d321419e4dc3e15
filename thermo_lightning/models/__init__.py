"""Models: the paper's scale-invariant networks, the toy sphere problems and the
known-temperature problem."""

from thermo_lightning.models.convnet import ScaleInvariantConvNet
from thermo_lightning.models.heads import frozen_linear_head
from thermo_lightning.models.langevin import LangevinSamples, LangevinSphere
from thermo_lightning.models.resnet import ScaleInvariantResNet18
from thermo_lightning.models.toy import ToyTrajectory, simulate_toy, toy_gradient_stats, toy_objects

__all__ = [
    "ClassificationTask",
    "GaussianNoiseLoader",
    "LangevinSamples",
    "LangevinSphere",
    "LangevinSphereModule",
    "ScaleInvariantConvNet",
    "ScaleInvariantResNet18",
    "ToySphereModule",
    "ToyTrajectory",
    "frozen_linear_head",
    "simulate_toy",
    "toy_gradient_stats",
    "toy_objects",
]


def __getattr__(name: str):  # LightningModules load lightning only when asked for
    if name in ("ClassificationTask", "GaussianNoiseLoader", "LangevinSphereModule",
                "ToySphereModule"):
        from thermo_lightning.models import lightning_modules

        return getattr(lightning_modules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
