"""Confidence intervals over seeds: ``T(eta)`` and the power-law exponent.

A sweep run with several seeds is several independent sweeps. Each seed's runs give their
own ``T(eta)`` (the same bracket construction as the report's averaged rows) and their own
power law; the spread of those over the seeds is the uncertainty of the result.

For a learning rate measured by ``n >= 2`` seeds with temperatures ``T_1..T_n`` (each from
that seed's own sweep), the interval at level ``1 - alpha`` is Student's

.. math::  \\bar T \\pm t_{1 - \\alpha/2,\\, n - 1} \\, s / \\sqrt{n}

(``s`` the sample standard deviation), and the same for the exponent ``a`` of the seeds'
power laws. On the known-temperature problem (benchmarks/ci_coverage.py: groups of 3 seeds, 5
LRs, 20,000 steps per run, the meter's defaults) the 95% interval held ``T_true`` for 9 and 12
of 12 interior rows in two runs of 4 groups, with median widths of 15% and 18% of ``T``; it
has no term for the construction's own bias (a few percent), so when the seeds agree closely
it can miss.

One seed gives no interval here (``NaN``): a within-run bootstrap is not part of this yet.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SeedIntervals", "seed_intervals", "t_interval"]


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Student's ``t`` interval of the mean of ``values`` (finite ones); ``(nan, nan)`` for
    fewer than 2."""
    from scipy.stats import t as student_t

    if not 0 < level < 1:
        raise ValueError(f"`level` must be in (0, 1), got {level!r}.")
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return math.nan, math.nan
    half = float(student_t.ppf(0.5 + level / 2, len(v) - 1)) * float(v.std(ddof=1)) / math.sqrt(
        len(v))
    return float(v.mean()) - half, float(v.mean()) + half


@dataclass(frozen=True)
class SeedIntervals:
    """What :func:`seed_intervals` found.

    Attributes:
        per_seed: one row per (seed, lr): ``seed, lr, T, valid`` from each seed's own sweep.
        temperature: one row per lr: ``lr, n_seeds, T_seed_mean, T_ci_lo, T_ci_hi``.
        exponents: the power-law exponent ``a`` of each seed that could be fitted.
        a_ci: the interval of ``a`` (``nan`` when fewer than 2 seeds were fitted).
    """

    per_seed: pd.DataFrame
    temperature: pd.DataFrame
    exponents: dict[int, float]
    a_ci: tuple[float, float]


def seed_intervals(
    chosen: pd.DataFrame,
    infer: Callable[[pd.DataFrame], pd.DataFrame],
    fit: Callable[[pd.DataFrame], tuple[float, float] | None],
    level: float = 0.95,
) -> SeedIntervals:
    """Intervals of ``T(eta)`` and of the exponent over the seeds of ``chosen``.

    Args:
        chosen: the runs that enter ``T(eta)``, one row each, with ``seed, lr, U, S``.
        infer: ``rows -> temperature table`` (``lr, T, valid, T_lo, T_hi``) for one seed's
            runs (the report's bracket construction).
        fit: ``temperature table -> (b, a)`` or ``None`` (the report's power-law fit).
        level: confidence level.
    """
    rows, exponents = [], {}
    # one seed: no spread (and its T(eta) is the report's own)
    if "seed" in chosen and chosen["seed"].nunique() >= 2:
        for seed, runs in chosen.dropna(subset=["seed"]).groupby("seed"):
            runs = runs.drop_duplicates("lr")
            if len(runs) < 3:
                continue
            table = infer(runs)
            rows += [{"seed": int(seed), "lr": float(r["lr"]), "T": float(r["T"]),
                      "valid": bool(r["valid"])} for _, r in table.iterrows()]
            law = fit(table)
            if law is not None:
                exponents[int(seed)] = float(law[1])
    per_seed = pd.DataFrame(rows, columns=["seed", "lr", "T", "valid"])
    out = []
    for lr, group in per_seed.groupby("lr"):
        values = group.loc[group["valid"], "T"].to_numpy(float)
        lo, hi = t_interval(values, level)
        out.append({"lr": float(lr), "n_seeds": len(values),
                    "T_seed_mean": float(values.mean()) if len(values) else math.nan,
                    "T_ci_lo": lo, "T_ci_hi": hi})
    temperature = pd.DataFrame(out, columns=["lr", "n_seeds", "T_seed_mean", "T_ci_lo",
                                             "T_ci_hi"])
    a_ci = t_interval(np.array(list(exponents.values())), level)
    return SeedIntervals(per_seed, temperature, exponents, a_ci)
