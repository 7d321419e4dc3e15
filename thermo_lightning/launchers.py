"""Moved to :mod:`thermo_lightning.launch` (this path stays one release)."""
from thermo_lightning.launch import *  # noqa: F403
