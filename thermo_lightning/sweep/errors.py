"""The sweep's errors, importable without torch or Lightning (the command line catches them
for every command)."""

from __future__ import annotations

from thermo_lightning.launch.base import RunSkipped

__all__ = ["RunLockedError", "SweepSettingsError"]


class SweepSettingsError(ValueError):
    """A sweep folder already holds runs made with other measurement settings."""


class RunLockedError(RunSkipped):
    """Another process is training this run right now (a launcher leaves the run to it)."""
