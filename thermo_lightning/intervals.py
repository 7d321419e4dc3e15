"""Moved to :mod:`thermo_lightning.report.intervals` (this path stays one release)."""
from thermo_lightning.report.intervals import *  # noqa: F403
