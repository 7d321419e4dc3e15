"""Moved to :mod:`thermo_lightning.report.tensorboard_view` (this path stays one release)."""
from thermo_lightning.report.tensorboard_view import *  # noqa: F403
