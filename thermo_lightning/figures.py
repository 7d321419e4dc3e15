"""Moved to :mod:`thermo_lightning.report.figures` (this path stays one release)."""
from thermo_lightning.report.figures import *  # noqa: F403
