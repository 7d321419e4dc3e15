"""Models: the known-temperature problem (and, later, the paper's networks)."""

from thermo_lightning.models.langevin import LangevinSamples, LangevinSphere

__all__ = ["LangevinSamples", "LangevinSphere"]
