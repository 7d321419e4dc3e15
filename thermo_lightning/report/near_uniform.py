"""Rows of ``T(eta)`` near the uniform sphere, where the k-NN entropy's differences read large.

A run's distance from the uniform sphere is ``uniform_gap = (S_uniform - S) / d`` (a runs.csv
column): the gap between its ``S`` and what the same estimator gives for uniform points at
its own ``(N, D, k)`` and radius, per intrinsic dimension (about ``ln`` of the ratio of the
uniform points' mean neighbour distance to the run's). Near the uniform sphere the law's
density changes across a neighbourhood, and the estimator's differences of ``S`` between
adjacent laws come out larger than the true ones, so ``T = dU/dS`` reads low.

Measured against von Mises-Fisher laws, whose entropies are exact
(``python benchmarks/near_uniform_bias.py``: the default estimator, ``k = N / 20``, 3 draws
per concentration, ``d = 30, 50, 200``, ``N = 100`` and 1000, adjacent concentrations a
factor 1.5 apart), the ratio of estimated to true differences, by the ``uniform_gap`` of the
pair's law nearer uniform: 1.04-1.12 (``N = 1000``) where it is 0.05-0.15, and more, drowned
in noise, closer in; 1.01-1.04 (``N = 1000``; 1.03-1.13 at ``N = 100``) at 0.15-0.3;
0.98-1.03 (0.93-1.12) above.

Below a gap of :data:`NEAR_UNIFORM` (the level of the ``saturated`` regime) a run is left out
as saturated when its loss is near random weights'; one whose loss is still lower (a network
whose few directions that matter for the loss hold while the bulk of its weights spread)
stays stationary. Its row, and the row below it (whose upper chord ends at its ``S``), are
marked ``near_uniform`` and not valid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from thermo_lightning.report.halves import mark_rows

__all__ = ["NEAR_UNIFORM", "mark_near_uniform"]

#: rows whose runs' mean ``uniform_gap`` is below this are marked: the ``saturated`` level
#: (``classify_regime``'s ``saturation_tol``)
NEAR_UNIFORM = 0.15


def mark_near_uniform(temperature: pd.DataFrame, runs: pd.DataFrame, along: str,
                      messages: list[str]) -> None:
    """Add the ``near_uniform`` column to ``temperature`` (one row per value of ``lr``, in
    order) from the ``uniform_gap`` of ``runs`` (those rows' runs); marked rows become not
    valid, with their ``reason``, and one note goes to ``messages``. ``along`` names the swept
    column in the note."""
    temperature["near_uniform"] = False
    if "uniform_gap" not in runs or runs["uniform_gap"].isna().all():
        return  # no uniform reference (no sphere, a sketch): nothing to compare with
    gap = runs.groupby("lr")["uniform_gap"].mean()
    values = temperature["lr"].to_numpy(float)
    near = {i: float(gap[v]) for i, v in enumerate(values)
            if v in gap.index and gap[v] < NEAR_UNIFORM}
    if not near:
        return
    marked = np.zeros(len(values), dtype=bool)
    reasons = [""] * len(values)
    for i, g in near.items():  # its own reason first, then the row below's
        marked[i] = True
        reasons[i] = (f"S near the uniform sphere's (uniform_gap {g:.3f}, below "
                      f"{NEAR_UNIFORM:g}): the entropy's differences read large here")
    for i in near:
        if i > 0 and not reasons[i - 1]:
            marked[i - 1] = True
            reasons[i - 1] = (f"below {along}={values[i]:.3g}, whose S is near the uniform "
                              "sphere's: its upper chord uses that S")
    mark_rows(temperature, "near_uniform", marked, reasons)
    messages.append(
        f"{', '.join(f'{along}={values[i]:.3g} (gap {g:.3f})' for i, g in near.items())}: "
        f"S within {NEAR_UNIFORM:g} d of the uniform sphere's (runs.csv's uniform_gap), with "
        "a loss below random weights' (so not saturated). There the k-NN entropy's "
        "differences read 4-12% larger than the true ones, and more closer in (measured on "
        "laws of known entropy), so T reads low: those rows and the rows below them are "
        "marked near_uniform and not valid")
