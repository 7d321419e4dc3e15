"""Rows of ``T(eta)`` that windows which do not sample their law make untrustworthy.

Each full window's two halves are compared (``thermo/halves_chi2``,
:func:`~thermo_lightning.functional.stationarity.half_window_chi2`: about 1 when both halves
are draws of one law). A law with two modes that the trajectory hops between more slowly than
a window spans (the known-temperature problem at high noise) gives windows that hold one mode,
or both in shares that change from window to window: their ``S`` falls short of the law's by
up to ``ln 2``, and by how much changes with the learning rate. The chords from such a run to
its neighbours then carry that jump, and ``T`` reads low (0.72-0.74 of the chain's at three
learning rates, ``sigma = 1.5`` in ``R^8``, 3 seeds) while every other check passes.

A network's windows disagree too (its weights drift along slow directions: ``halves_chi2`` of
1.2-5.7, median 3.0, over the demo's 21 network runs). A shortfall common to the whole sweep
cancels in the differences of ``S`` that ``T`` is made of; what biases ``T`` is a run whose
windows disagree far more than its neighbours'. So, in a sweep whose runs' median
``halves_chi2`` is at most :data:`HALVES_LIMIT` (its windows otherwise sample their laws), a
learning rate is marked when its runs' largest ``halves_chi2`` exceeds both
:data:`HALVES_LIMIT` and :data:`HALVES_RATIO` times that median; its row and the rows next to
it (whose chords use its ``S``) are not valid, and the table's ``halves`` column says so. In a
sweep whose median is above the limit (a network's) no run can stand out as missing modes: a
note says so and nothing is marked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["HALVES_LIMIT", "HALVES_RATIO", "mark_disagreeing_windows", "mark_rows"]

#: a learning rate is never marked below this mean ``halves_chi2`` (one law: ~1), nor in a
#: sweep whose runs' median is above it
HALVES_LIMIT = 2.0
#: ... nor below this many times the median over the sweep's runs
HALVES_RATIO = 2.0


def mark_rows(temperature: pd.DataFrame, column: str, marked: np.ndarray,
              reasons: list[str]) -> None:
    """Set ``temperature[column]`` to ``marked`` and make those rows not valid; a row valid
    until now gets its entry of ``reasons`` (one that was already not valid keeps its own)."""
    newly = marked & temperature["valid"].to_numpy(bool)
    temperature[column] = marked
    temperature["reason"] = temperature["reason"].astype(object)
    temperature.loc[newly, "reason"] = [r for r, n in zip(reasons, newly, strict=True) if n]
    temperature["valid"] = temperature["valid"] & ~marked


def mark_disagreeing_windows(temperature: pd.DataFrame, runs: pd.DataFrame, along: str,
                             messages: list[str]) -> None:
    """Add the ``halves`` column to ``temperature`` (one row per value of ``lr``, in order)
    from the ``halves_chi2`` of ``runs`` (those rows' runs, seeds included); marked rows
    become not valid, with their ``reason``, and one note goes to ``messages``. ``along``
    names the swept column in the note."""
    temperature["halves"] = False
    if "halves_chi2" not in runs or runs["halves_chi2"].isna().all():
        return  # runs logged before the statistic existed: nothing to say
    per_value = runs.groupby("lr")["halves_chi2"].max().dropna()
    level = float(runs["halves_chi2"].median())  # of the runs: a seed's own level
    if level > HALVES_LIMIT:  # no run samples its law: none can stand out as missing modes
        messages.append(
            f"the two halves of the windows disagree at every {along} (halves_chi2: median "
            f"{level:.2g} over the runs, about 1 where a window samples its law): the "
            "weights drift along directions slower than a window spans, and every run's S "
            "falls short of its law's; T, made of differences of S, is unaffected as far as the "
            "shortfall is the same at every learning rate. "
            "Runs whose windows miss modes cannot be singled out here; nothing is marked")
        return
    limit = max(HALVES_LIMIT, HALVES_RATIO * level)
    odd = per_value[per_value > limit]
    if odd.empty:
        return
    values = temperature["lr"].to_numpy(float)
    marked = np.zeros(len(values), dtype=bool)
    reasons = [""] * len(values)
    rows = {int(np.argmin(np.abs(values - float(v)))): chi2 for v, chi2 in odd.items()}
    for i, chi2 in rows.items():  # its own reason first, then its neighbours'
        marked[i] = True
        reasons[i] = (f"its windows' halves disagree (halves_chi2 {chi2:.2g}, the runs' "
                      f"median {level:.2g}): a mode or drift its windows miss")
    for i, chi2 in rows.items():
        for j in (i - 1, i + 1):
            if 0 <= j < len(values) and not reasons[j]:
                marked[j] = True
                reasons[j] = (f"next to {along}={values[i]:.3g}, whose windows' halves "
                              f"disagree (halves_chi2 {chi2:.2g}): its chord uses that S")
    mark_rows(temperature, "halves", marked, reasons)
    messages.append(
        f"{', '.join(f'{along}={v:.3g}' for v in odd.index)}: the two halves of the windows "
        f"disagree far beyond their noise (halves_chi2 {', '.join(f'{c:.2g}' for c in odd)}; "
        f"the runs' median {level:.2g}, about 1 where a window samples its law): the "
        "trajectory hops between modes, or drifts, more slowly than a window spans, so S "
        "falls short of the law's by an amount that changes with the learning rate. Those "
        "rows and their neighbours are marked `halves` and not valid. A window that spans "
        "many hops (a larger stride, or more snapshots: train longer) holds the modes in "
        "their shares")
