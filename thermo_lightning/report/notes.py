"""The report's notes about groups of runs: one line each for the runs whose trend cannot be
tested, whose window refilled in the tail, whose stride was capped, and for every run left out
of ``T(eta)``. Each names its runs (:func:`name_list`) and the column of ``runs.csv`` that
holds the detail."""

from __future__ import annotations

import math
from collections.abc import Sequence

from thermo_lightning.report.summary import Exclusion, Regime, RunSummary

__all__ = ["about_runs", "left_out", "name_list", "refilled_windows", "unbalanced_energy",
           "untested_trends"]


def name_list(names: Sequence[str], shown: int = 3) -> str:
    """``a, b, c and 4 more``: the first ``shown`` of ``names`` for a one-line message."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def refilled_windows(summaries: Sequence[RunSummary]) -> str | None:
    """One message for the runs whose tail has logging points without ``S`` (resumed without
    their window, which refilled inside the tail), ``None`` when none."""
    gaps = [s.run for s in summaries if s.tail_without_S]
    if not gaps:
        return None
    return (f"{len(gaps)} run(s) ({name_list(gaps)}) were resumed without their window, which "
            "refilled inside the tail: U and S there average only the points with an entropy "
            "(runs.csv: tail_points, and tail_without_S for the points without). "
            "ThermoCallback(save_window=True) keeps the window across a resume")


def untested_trends(summaries: Sequence[RunSummary]) -> str | None:
    """One message for the stationary runs whose final stride holds fewer than 3 windows that
    do not overlap (no trend test has the power to call them converging), ``None`` when
    none."""
    few = [s.run for s in summaries
           if s.regime is Regime.STATIONARY and s.trend_points is not None and s.trend_points < 3]
    if not few:
        return None
    return (f"{len(few)} run(s) ({name_list(few)}) are taken as stationary, but their steps at the "
            "final stride hold fewer than 3 windows that do not overlap (runs.csv: "
            "trend_points): too few to test for a trend. Train longer, or use a smaller window")


def capped_strides(summaries: Sequence[RunSummary], include_low_ess: bool) -> str | None:
    """One message for the stationary runs whose stride was capped below half the weights'
    correlation time, and what the report did with them; ``None`` when none."""
    capped = [s.run for s in summaries if s.regime is Regime.STATIONARY and s.stride_capped]
    if not capped:
        return None
    fate = ("kept in T(eta) (--include-low-ess)" if include_low_ess else
            "left out of T(eta) unless --include-low-ess")
    return (f"{len(capped)} run(s) ({name_list(capped)}) had their stride "
            "capped below half the weights' correlation time (so that a window "
            "fills in the run): their windows are correlated and S is biased low, even where "
            f"the ESS looks fine; {fate}. Train longer, or use a smaller window")


def warned_but_used(summaries: Sequence[RunSummary], include_low_ess: bool) -> str | None:
    """One message for the stationary runs that had windows with a low ESS during training
    (the callback warned), but whose tail's ESS is above the bar: used, and why."""
    runs = [s for s in summaries if s.regime is Regime.STATIONARY and s.low_ess_seen
            and s.low_ess is False and (include_low_ess or not s.stride_capped)]
    if not runs:
        return None
    lo, hi = (f"{f(s.ess for s in runs if s.ess is not None):.0f}" for f in (min, max))
    return (f"{len(runs)} run(s) ({name_list([s.run for s in runs], shown=4)}) had windows "
            "with a low ESS during training (thermo/low_ess; the callback warns of them), but "
            f"over the tail the report averages their ESS is {lo if lo == hi else f'{lo}-{hi}'}"
            f" of {runs[0].window} snapshots, above a quarter: used in T(eta) (runs.csv: ess)")


#: how far from 1 a run's ``fdr`` must be (besides beyond its interval) to be said: on the
#: known-temperature problem, stationary and Gibbs, single 3000-step runs read 0.89-1.09
#: (3 at the callback's defaults, 3 at K = 64; docs/configurational.md); a network still
#: converging 0.36
FDR_TOLERANCE = 0.2


def unbalanced_energy(summaries: Sequence[RunSummary], level: float = 0.95) -> str | None:
    """One message for the runs whose fluctuation-dissipation ratio ``fdr`` is away from 1
    beyond its interval at ``level`` (``fdr +- z fdr_se``) and by more than
    :data:`FDR_TOLERANCE` (a test at 95% alone would name one run in twenty that is
    fine), ``None`` when none: the one-run balance ``||grad U||^2 = (lr/2) E[g^T H g]`` of
    stationary plain SGD does not close there."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))  # as the T_conf intervals (report.configurational)
    off = [s for s in summaries if s.fdr is not None and s.fdr_se is not None
           and math.isfinite(s.fdr) and math.isfinite(s.fdr_se)
           and abs(s.fdr - 1) > max(z * s.fdr_se, FDR_TOLERANCE)]
    if not off:
        return None
    lo, hi = min(s.fdr for s in off), max(s.fdr for s in off)
    return (f"{len(off)} run(s) ({name_list([s.run for s in off])}) have a "
            f"fluctuation-dissipation ratio fdr of {lo:.2f}{'' if lo == hi else f'-{hi:.2f}'}, "
            f"away from 1 beyond its {level:.0%} interval and by more than "
            f"{FDR_TOLERANCE:.0%} (runs.csv: fdr, fdr_se): the energy "
            "balance ||grad U||^2 = (lr/2) E[g^T H g] of stationary plain SGD does not close "
            "there (a run still drifting, a step too large for the second-order balance), so "
            "their T_conf is not the temperature of a stationary Gibbs-like law "
            "(docs/configurational.md)")


def about_runs(summaries: Sequence[RunSummary], include_low_ess: bool,
               level: float = 0.95) -> list[str]:
    """The notes on the runs once they are classified, in the order the report prints them
    (``level``: of the intervals the notes test against)."""
    found = (untested_trends(summaries), refilled_windows(summaries),
             capped_strides(summaries, include_low_ess),
             warned_but_used(summaries, include_low_ess), unbalanced_energy(summaries, level))
    return [message for message in found if message is not None]


def left_out(summaries: Sequence[RunSummary]) -> list[str]:
    """One line per run left out of ``T(eta)`` for its regime (those left out for a low ESS
    or a capped stride, and unfinished ones, said when read, have theirs already), and one
    for the runs outside ``--lr-range``: a table that drops a row says why."""
    lines = [f"{s.run}: left out of T(eta) ({s.reason})" for s in summaries
             if s.exclusion is Exclusion.REGIME and s.regime is not Regime.UNFINISHED]
    outside = [s.run for s in summaries if s.exclusion is Exclusion.OUTSIDE_RANGE]
    if outside:
        lines.append(f"{len(outside)} stationary run(s) outside --lr-range left out of T(eta)"
                     f" ({name_list(outside)})")
    return lines
