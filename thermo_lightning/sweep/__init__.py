"""Sweeps: one training run per point of a grid (learning rates x other axes x seeds), each
in its own folder, resumable, run through a launcher.

- :mod:`.config`: :class:`SweepConfig` (the settings, checked when made) and the grid;
- :mod:`.recipes`: what the sweep knows about each model (one registry entry per model);
- :mod:`.plan`: ``sweep.json`` and ``plan.json``, the runs and their commands;
- :mod:`.runner`: one run (lock, signals, fit, its record) and :func:`run_sweep`;
- :mod:`.errors`: the sweep's errors.

Only the runner imports torch and Lightning; its names load on first use, so that the
settings, the plan and the errors are importable without them (the command line's
``--help``).
"""

from __future__ import annotations

from thermo_lightning._lazy import lazy_exports
from thermo_lightning.launch.local import stop_with_parent
from thermo_lightning.runs.layout import RunSpec, run_dir_name
from thermo_lightning.sweep.config import SweepConfig, lr_grid
from thermo_lightning.sweep.errors import RunLockedError, SweepSettingsError
from thermo_lightning.sweep.recipes import Recipe, langevin_noise_std, register_recipe

_RUNNER = ("RunProgress", "check_factories", "plan_sweep", "run_one", "run_spec", "run_sweep",
           "thermo_callback")

__all__ = [
    "Recipe",
    "RunLockedError",
    "RunProgress",
    "RunSpec",
    "SweepConfig",
    "SweepSettingsError",
    "check_factories",
    "langevin_noise_std",
    "lr_grid",
    "plan_sweep",
    "register_recipe",
    "run_dir_name",
    "run_one",
    "run_spec",
    "run_sweep",
    "stop_with_parent",
    "thermo_callback",
]


__getattr__, __dir__ = lazy_exports(
    __name__, dict.fromkeys(_RUNNER, "thermo_lightning.sweep.runner"), globals())
