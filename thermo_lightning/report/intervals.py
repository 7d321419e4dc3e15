"""Confidence intervals of ``U``, ``S``, ``T(eta)`` and the power-law exponent.

Two sources of spread, each followed through the whole bracket construction:

- **Seeds** (:func:`seed_intervals`), used when a learning rate has runs of 2 or more seeds.
- **Within one run** (:func:`tail_bootstrap`, :func:`bootstrap_intervals`) for one-seed
  sweeps: a moving-block bootstrap of the run's tail logging points.

Seeds
-----
A sweep run with several seeds is several independent sweeps. Each seed's runs give their
own ``T(eta)`` (the same bracket construction as the report's averaged rows) and their own
power law; the spread of those over the seeds is the uncertainty of the result.

For a learning rate measured by ``n_i >= 2`` seeds (each ``T`` from that seed's own sweep),
the interval is Student's ``t`` on ``ln T`` with the spread pooled over the learning rates
(:func:`pooled_log_intervals`; the report then places it about its own seed-averaged ``T``
with the same relative extent); the exponent's is Student's ``t`` over the seeds' own
exponents (:func:`t_interval`). On the known-temperature problem
(``benchmarks/ci_coverage.py``: 10 sweeps of 3 seeds, 5 LRs, 20,000 steps per run, the meter's
defaults) the 95% interval held ``T = eta sigma^2 / 2`` for 27 of 30 interior rows and the
discrete chain's exact ``dU/dS`` for 29 of 30, median width 11% of ``T`` (7.7-18%). Per-row
``t`` intervals on the same runs held ``T`` as often (27 of 30) but were wider and erratic
(median 16%, from 3.5% where 3 seeds agreed by chance to 37%). Neither has a term for the
construction's own bias.

Within one run
--------------
The report averages ``U`` and ``S`` over a run's tail logging points. Those points are
correlated: consecutive entropies come from overlapping windows (a window spans
``window * stride`` steps) and the dynamics relax slowly. The moving-block bootstrap
(Kunsch 1989) resamples blocks of ``L`` consecutive tail points, with ``L`` the larger of the
number of points one window spans and ``2 tau`` (``tau`` the corrected integrated
autocorrelation time of the tail's ``U`` and ``S``), so that blocks are close to
independent. Each of ``draws`` resamples gives a pair of tail means per run; the whole
``T(eta)`` construction (and the power-law fit) is re-run on every draw, and the interval is
the draws' central ``level`` quantiles. A tail with fewer than :data:`MIN_BLOCKS` blocks gives
no interval (it holds too few independent windows: train longer or raise ``--tail``). With a
handful of blocks the bootstrap underestimates the spread (it sees ``B`` blocks, not the
process), so prefer seeds when the runs are affordable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "MIN_BLOCKS",
    "SeedIntervals",
    "TailBootstrap",
    "bootstrap_intervals",
    "pooled_log_intervals",
    "seed_intervals",
    "t_interval",
    "tail_block_length",
    "tail_bootstrap",
]

#: fewest blocks of the tail for a within-run bootstrap interval
MIN_BLOCKS = 3
#: a learning rate's bootstrap interval needs a valid T in at least this share of the draws
MIN_VALID_DRAWS = 0.5


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


def pooled_log_intervals(per_seed: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Intervals of ``T`` per learning rate from the seeds' values, on ``ln T`` with the
    spread pooled over the learning rates.

    For learning rate ``i`` with ``n_i >= 2`` valid seed temperatures, ``m_i`` the mean of
    their logarithms and ``s_p`` the pooled standard deviation of ``ln T`` about the
    ``m_i`` (``nu = sum_i (n_i - 1)`` degrees of freedom),

    .. math::  \\exp\\left(m_i \\pm t_{1 - \\alpha/2,\\, \\nu} \\, s_p / \\sqrt{n_i}\\right).

    Pooling assumes the relative spread of ``T`` over seeds is about the same at every
    learning rate (on the known-temperature problem it is: the entropy estimator's noise is
    the same at every scale). With 3 seeds a per-row standard deviation has 2 degrees of
    freedom, and rows where the seeds agree by chance get intervals far too narrow; the
    pooled one does not.

    Args:
        per_seed: ``seed, lr, T, valid`` rows.

    Returns:
        one row per learning rate: ``lr, n_seeds, T_seed_mean`` (geometric mean),
        ``T_ci_lo, T_ci_hi`` (``NaN`` where fewer than 2 seeds are valid).
    """
    from scipy.stats import t as student_t

    if not 0 < level < 1:
        raise ValueError(f"`level` must be in (0, 1), got {level!r}.")
    ok = per_seed[per_seed["valid"] & (per_seed["T"] > 0)]
    logs = {float(lr): np.log(g["T"].to_numpy(float)) for lr, g in ok.groupby("lr")}
    spread = [v - v.mean() for v in logs.values() if len(v) >= 2]
    dof = sum(len(v) - 1 for v in spread)
    half = math.nan
    if dof >= 1:
        s_pooled = math.sqrt(sum(float((v**2).sum()) for v in spread) / dof)
        half = float(student_t.ppf(0.5 + level / 2, dof)) * s_pooled
    out = []
    for lr in sorted(per_seed["lr"].unique()):
        v = logs.get(float(lr), np.array([]))
        mean = float(np.exp(v.mean())) if len(v) else math.nan
        lo = hi = math.nan
        if len(v) >= 2 and math.isfinite(half):
            lo, hi = mean * math.exp(-half / math.sqrt(len(v))), mean * math.exp(
                half / math.sqrt(len(v)))
        out.append({"lr": float(lr), "n_seeds": len(v), "T_seed_mean": mean, "T_ci_lo": lo,
                    "T_ci_hi": hi})
    return pd.DataFrame(out, columns=["lr", "n_seeds", "T_seed_mean", "T_ci_lo", "T_ci_hi"])


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
    temperature = pooled_log_intervals(per_seed, level)
    a_ci = t_interval(np.array(list(exponents.values())), level)
    return SeedIntervals(per_seed, temperature, exponents, a_ci)


# ------------------------------------------------------------------------- within a run
def tail_block_length(steps: np.ndarray, values: np.ndarray, span: float | None = None) -> int:
    """Block length ``L`` (in logging points) for the moving-block bootstrap of a run's tail.

    ``L = max(ceil(span / spacing), ceil(2 tau))``: ``spacing`` is the median distance in steps
    between the tail points, ``span`` the steps one entropy window covers (``window * stride``;
    ``None``: not known) and ``tau`` the largest corrected integrated autocorrelation time of
    the columns of ``values`` (``(n,)`` or ``(n, m)``).
    """
    from thermo_lightning.functional.stationarity import corrected_autocorrelation_time

    steps = np.asarray(steps, dtype=float)
    v = np.asarray(values, dtype=float).reshape(len(steps), -1)
    length = 1
    if span is not None and len(steps) >= 2:
        spacing = float(np.median(np.diff(steps)))
        if spacing > 0:
            length = max(length, math.ceil(span / spacing))
    if len(steps) >= 4:
        taus = [float(corrected_autocorrelation_time(v[:, j])) for j in range(v.shape[1])
                if np.ptp(v[:, j]) > 0]
        if taus:
            length = max(length, math.ceil(2 * max(taus)))
    return length


@dataclass(frozen=True)
class TailBootstrap:
    """A run's tail resampled by blocks.

    Attributes:
        block: the block length ``L`` in logging points.
        blocks: how many whole blocks the tail holds (``n // L``).
        means: ``(draws, m)`` resampled means of the columns (``None`` when ``blocks`` is
            below :data:`MIN_BLOCKS`).
    """

    block: int
    blocks: int
    means: np.ndarray | None

    @property
    def se(self) -> np.ndarray | None:
        """Standard error of each column's tail mean (the draws' standard deviation)."""
        return None if self.means is None else self.means.std(axis=0, ddof=1)


def tail_bootstrap(
    steps: np.ndarray,
    values: np.ndarray,
    *,
    span: float | None = None,
    draws: int = 200,
    rng: np.random.Generator | None = None,
) -> TailBootstrap:
    """Moving-block bootstrap of the tail means of ``values`` (``(n, m)``, one row per
    logging point at ``steps``): ``draws`` resamples, each ``ceil(n / L)`` blocks of ``L``
    consecutive points (start uniform in ``[0, n - L]``) cut to ``n`` points.

    ``L`` is :func:`tail_block_length`; fewer than :data:`MIN_BLOCKS` blocks: no resamples.
    """
    v = np.asarray(values, dtype=float)
    v = v.reshape(len(v), -1)
    n = len(v)
    length = tail_block_length(steps, v, span)
    blocks = n // length
    if blocks < MIN_BLOCKS:
        return TailBootstrap(length, blocks, None)
    rng = np.random.default_rng(0) if rng is None else rng
    per_draw = math.ceil(n / length)
    starts = rng.integers(0, n - length + 1, size=(draws, per_draw))
    index = (starts[:, :, None] + np.arange(length)).reshape(draws, -1)[:, :n]
    return TailBootstrap(length, blocks, v[index].mean(axis=1))


def _quantiles(values: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_intervals(
    runs: pd.DataFrame,
    means: dict[str, np.ndarray],
    infer: Callable[[pd.DataFrame], pd.DataFrame],
    fit: Callable[[pd.DataFrame], tuple[float, float] | None],
    level: float = 0.95,
) -> SeedIntervals:
    """Intervals of ``T(eta)`` and of the exponent from the runs' tail bootstraps.

    Args:
        runs: the runs that enter ``T(eta)`` (``run, lr``); runs sharing a learning rate are
            averaged, as in the report.
        means: ``run -> (draws, 2)`` resampled tail means of ``U`` and ``S``
            (:attr:`TailBootstrap.means`); every run of ``runs`` needs one, all with the same
            number of draws.
        infer, fit: as for :func:`seed_intervals`.
        level: confidence level.

    Returns:
        :class:`SeedIntervals` with ``per_seed`` holding one row per (draw, lr) (its ``seed``
        column is the draw) and ``exponents`` one entry per draw with a power law. A learning
        rate whose ``T`` is valid in fewer than half the draws gets no interval.
    """
    if not 0 < level < 1:
        raise ValueError(f"`level` must be in (0, 1), got {level!r}.")
    lrs = np.sort(runs["lr"].unique())
    stacks = []
    for lr in lrs:
        names = runs.loc[runs["lr"] == lr, "run"]
        stacks.append(np.mean([means[name] for name in names], axis=0))
    draws = np.stack(stacks, axis=1)  # (draws, lrs, 2)
    exponents = {}
    temps = np.empty(draws.shape[:2])
    valid = np.empty(draws.shape[:2], dtype=bool)
    for d in range(draws.shape[0]):
        table = infer(pd.DataFrame({"lr": lrs, "U": draws[d, :, 0], "S": draws[d, :, 1]}))
        temps[d], valid[d] = table["T"].to_numpy(float), table["valid"].to_numpy(bool)
        law = fit(table)
        if law is not None:
            exponents[d] = float(law[1])
    n_draws = draws.shape[0]
    per_draw = pd.DataFrame({"seed": np.repeat(np.arange(n_draws), len(lrs)),
                             "lr": np.tile(np.asarray(table["lr"], float), n_draws),
                             "T": temps.reshape(-1), "valid": valid.reshape(-1)})
    out = []
    for lr, group in per_draw.groupby("lr"):
        values = group.loc[group["valid"], "T"].to_numpy(float)
        lo, hi = (_quantiles(values, level) if len(values) >= MIN_VALID_DRAWS * len(group)
                  else (math.nan, math.nan))
        out.append({"lr": float(lr), "n_seeds": 1,
                    "T_seed_mean": float(values.mean()) if len(values) else math.nan,
                    "T_ci_lo": lo, "T_ci_hi": hi})
    temperature = pd.DataFrame(out, columns=["lr", "n_seeds", "T_seed_mean", "T_ci_lo",
                                             "T_ci_hi"])
    a = np.array(list(exponents.values()))
    a_ci = (_quantiles(a, level) if len(a) >= MIN_VALID_DRAWS * draws.shape[0]
            else (math.nan, math.nan))
    return SeedIntervals(per_draw, temperature, exponents, a_ci)
