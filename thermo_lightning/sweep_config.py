"""Moved to :mod:`thermo_lightning.sweep.config` (this path stays one release)."""
from thermo_lightning.sweep.config import *  # noqa: F403
