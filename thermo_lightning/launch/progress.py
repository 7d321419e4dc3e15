"""What a worker says about its run, written and read in this one place.

A run trained by a worker prints, about every 1% of its steps, one progress line::

    lr=0.01 batch_size=64 seed=1 step 1300/13000, window 40%

(its axes, the step, the run's length, and the window's fill after a stride change or a
resume; ``, stride pilot`` instead while ``stride="auto"`` measures the correlation time).
Launchers read the last such line of each running worker's log for their progress bar, and
the package's own warnings (``ThermoMeter: ...``) from a finished worker's log.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Progress",
    "format_progress",
    "last_progress",
    "parse_progress",
    "progress_summary",
    "throttled",
    "warnings_in",
]

_LINE = re.compile(r"^(?P<label>lr=\S+(?: \S+=\S+)*) step (?P<step>\d+)/(?P<total>\d+|\?)"
                   r"(?:, window (?P<fill>\d+)%|, (?P<pilot>stride pilot))?$")
#: a package warning as the command line shows it (``warning: ThermoMeter: ...``), or as
#: Python does (``/path/meter.py:12: UserWarning: ThermoMeter: ...``)
_WARNING_LINE = re.compile(r"(?:^warning: |\.py:\d+: (?:\w*Warning: )?)(Thermo\w*: .*)$")
_TAIL_BYTES = 4096  # a log's end read for its last progress line


@dataclass(frozen=True)
class Progress:
    """Where a run is: ``label`` (its axes, ``lr=0.01 seed=1``), ``step`` of ``total``
    (``None``: unknown) and the window's fill in percent (``None``: no window yet), or
    ``pilot``: the ``stride="auto"`` pilot is measuring (its windows are not the run's)."""

    label: str
    step: int
    total: int | None
    fill: int | None = None
    pilot: bool = False

    def line(self) -> str:
        fill = (", stride pilot" if self.pilot else
                "" if self.fill is None else f", window {self.fill}%")
        return f"{self.label} step {self.step}/{'?' if self.total is None else self.total}{fill}"


def format_progress(axes: Mapping[str, Any], step: int, total: int | None,
                    fill: float | None = None, pilot: bool = False) -> str:
    """The progress line of a run at ``axes`` (``lr`` first, as ``lr=0.01``; the others as
    they are): ``lr=0.01 seed=1 step 1300/13000, window 40%`` (``, stride pilot`` with
    ``pilot``)."""
    label = " ".join([f"lr={axes['lr']:g}",
                      *(f"{k}={v}" for k, v in axes.items() if k != "lr")])
    return Progress(label, step, total, None if fill is None or pilot else round(100 * fill),
                    pilot).line()


def parse_progress(line: str) -> Progress | None:
    """The :class:`Progress` a line says, ``None`` for any other line."""
    m = _LINE.match(line.strip())
    if m is None:
        return None
    total, fill = m.group("total"), m.group("fill")
    return Progress(m.group("label"), int(m.group("step")),
                    None if total == "?" else int(total), None if fill is None else int(fill),
                    m.group("pilot") is not None)


def last_progress(log: Path) -> str:
    """The last progress line a worker wrote to its log (empty when none yet)."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.path.getsize(log) - _TAIL_BYTES))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines()
                     if parse_progress(ln) is not None]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def progress_summary(logs: Sequence[Path]) -> str:
    """The running workers' last progress lines, joined (workers that said nothing yet are
    left out: no bare separators in the bar)."""
    return "; ".join(line for log in logs if (line := last_progress(log)))


def warnings_in(log: Path) -> list[str]:
    """The package's own warnings in a worker's log (``ThermoMeter: ...`` and the like), each
    once, in order."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    found = [m.group(1) for m in map(_WARNING_LINE.search, lines) if m]
    return list(dict.fromkeys(found))


def throttled(say: Callable[..., Any], seconds: float) -> Callable[..., None]:
    """``say`` for at most one line every ``seconds`` (the first always; ``0``: every
    line): a run's progress for a person at a terminal, not a parent that parses them."""
    last = [-math.inf]

    def each(line: str, **kwargs: Any) -> None:
        if time.monotonic() - last[0] >= seconds:
            last[0] = time.monotonic()
            say(line, **kwargs)

    return each
