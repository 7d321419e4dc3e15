"""Warnings that point at the user's code: the line of the user's script that led to them
(``trainer.fit(...)``, ``ThermoMeter(...)``), not a line of this package or of Lightning or
PyTorch, which the user cannot act on."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

__all__ = ["ThermoWarning", "rank_zero_user_warn", "user_stacklevel", "warn"]


class ThermoWarning(UserWarning):
    """The package's warnings (a measurement that may be biased, a setting that is ignored):
    ``warnings.filterwarnings("error", category=ThermoWarning)`` turns them into errors."""


#: the libraries whose frames are skipped (installed ones), besides this package's own
_LIBRARIES = ("lightning", "lightning_fabric", "pytorch_lightning", "torch")
_PACKAGE = Path(__file__).resolve().parent


def _skipped(filename: str) -> bool:
    if filename.startswith("<frozen"):  # the import machinery
        return True
    path = Path(filename)
    if path.resolve().is_relative_to(_PACKAGE):
        return True
    for marker in ("site-packages", "dist-packages"):
        if marker in path.parts:
            i = path.parts.index(marker)
            return i + 1 < len(path.parts) and path.parts[i + 1] in _LIBRARIES
    return False


def user_stacklevel() -> int:
    """The ``stacklevel`` for :func:`warnings.warn`, called from the function that calls this
    one, that names the first frame outside the skipped packages (``2``: that function's
    caller, when every frame is skipped)."""
    frame = sys._getframe(1)  # the function that warns
    level = 1
    while frame is not None:
        if not _skipped(frame.f_code.co_filename):
            return level
        frame = frame.f_back
        level += 1
    return 2


def warn(message: str, category: type[Warning] = ThermoWarning) -> None:
    """:func:`warnings.warn` pointing at the user's line (:func:`user_stacklevel`)."""
    warnings.warn(message, category, stacklevel=user_stacklevel())


def rank_zero_user_warn(message: str) -> None:
    """:func:`warn` on the process of global rank 0 only: the rank Lightning sets on its
    ``rank_zero_only`` (read where Lightning has loaded it; this module imports no
    Lightning)."""
    module = sys.modules.get("lightning_utilities.core.rank_zero")
    if getattr(getattr(module, "rank_zero_only", None), "rank", 0) == 0:
        warn(message)  # (this frame is the package's: the level still names the user's line)
