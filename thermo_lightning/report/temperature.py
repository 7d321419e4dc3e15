"""The temperature construction of a report: each group of runs' ``T`` along the sweep axis
(seeds averaged per value, the bracket construction, the power law, the intervals), the
batch-size collapse, and ``F = U - T S`` along every run.

Pure numerics on the report's tables (pandas, numpy, scipy); no torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from thermo_lightning import keys
from thermo_lightning._validation import finite_number as number
from thermo_lightning.functional.convex_temperature import convex_temperature
from thermo_lightning.functional.temperature import fit_power_law, free_energy, infer_temperature
from thermo_lightning.report import notes
from thermo_lightning.report.configurational import add_conf_columns
from thermo_lightning.report.halves import mark_disagreeing_windows
from thermo_lightning.report.intervals import (
    MIN_BLOCKS,
    SeedIntervals,
    bootstrap_intervals,
    seed_intervals,
)
from thermo_lightning.report.near_uniform import mark_near_uniform
from thermo_lightning.runs.read import RunData, planned_runs

__all__ = ["CONSTRUCTIONS", "MIN_FIT_ROWS", "Construction", "batch_size_collapse", "copies_of",
           "fit_rows",
           "free_energy_along_runs", "power_law_of", "power_law_or_none", "temperatures"]

U, S = keys.ENERGY, keys.ENTROPY
MIN_FIT_ROWS = 3  #: interior rows (both bracket bounds) the power law needs
#: the temperature constructions a report can use: ``convex`` (the most likely convex free
#: energy given the points' standard errors, the default) and ``bracket`` (the paper's)
CONSTRUCTIONS = ("convex", "bracket")
END_REASON = "end row: one chord, a biased slope (kept out of the fit)"


@dataclass(frozen=True)
class Construction:
    """How a report turns a sweep's ``(lr, U, S)`` into ``T``: ``kind`` is ``"convex"``
    (:func:`~thermo_lightning.functional.convex_temperature`, using the standard errors of
    ``U`` and ``S``; a row is invalid only where the points reject convexity by more than
    ``reject`` standard errors) or ``"bracket"`` (the paper's construction,
    :func:`~thermo_lightning.functional.infer_temperature` with ``eps`` and ``smoothing``).
    Either way the end rows (one chord) are marked ``end`` and are not ``valid``."""

    kind: str = "convex"
    eps: float = 0.0
    smoothing: float | None = 0.3
    reject: float = 3.0

    def __post_init__(self) -> None:
        if self.kind not in CONSTRUCTIONS:
            raise ValueError(f"`construction` (--construction) must be one of "
                             f"{list(CONSTRUCTIONS)}, got {self.kind!r}.")

    def table(self, rows: pd.DataFrame, se: pd.DataFrame | None = None) -> pd.DataFrame:
        """``T`` for ``rows`` (``lr, U, S``, distinct ``lr``): ``lr, U, S, T, T_lo, T_hi,
        valid, reason, end`` (and ``F``; the convex one adds ``U_fit, S_fit, distance``).
        ``se``: ``U_se``, ``S_se`` by ``lr`` (convex only; ``None`` or missing: equal
        weights)."""
        if self.kind == "bracket":
            table = infer_temperature(rows["lr"], rows["U"], rows["S"], eps=self.eps,
                                      smoothing=self.smoothing)
        else:
            lrs = rows["lr"].to_numpy(float)
            u_se = s_se = None
            if se is not None and not se.empty:
                u_se = se["U_se"].reindex(lrs).to_numpy(float)
                s_se = se["S_se"].reindex(lrs).to_numpy(float)
            # the curve rises along the axis where S does (the learning rate); along an axis
            # where S falls (the batch size), it is fitted in the axis's reverse order
            flip = bool(np.polyfit(np.log(lrs), rows["S"].to_numpy(float), 1)[0] < 0)
            table = convex_temperature(1 / lrs if flip else lrs, rows["U"], rows["S"], u_se,
                                       s_se, reject=self.reject)
            if flip:  # back in the axis's order, with its exact values
                table = table.iloc[::-1].reset_index(drop=True)
                table["lr"] = np.sort(lrs)
            table["F"] = table["U"] - table["T"] * table["S"]
        end = (table["T_lo"].isna() | table["T_hi"].isna()).to_numpy()
        table["end"] = end
        table.loc[end & table["valid"].to_numpy(), "reason"] = END_REASON
        table["valid"] = table["valid"] & ~end
        return table


def copies_of(chosen: pd.DataFrame, axes: Sequence[str], messages: list[str]) -> dict[str, str]:
    """The runs of ``chosen`` that repeat another one's ``U`` and ``S`` to the last digit at
    the same values of ``axes`` (learning rate, seed or none, grid axes), each mapped to the
    run it repeats: one training read twice (a folder copied, the same fit logged into two
    ``version_N``), not two draws, whose spread of 0 would give a standard error of 0. The
    report counts each once; a message says so."""
    key = [a for a in ("lr", *axes) if a in chosen] + ["U", "S"]
    if chosen.empty or not {"U", "S"} <= set(chosen):
        return {}
    # the original first: a run its own sweep's plan.json lists, over a copy elsewhere
    if "path" in chosen:
        folders = [Path(str(p)) for p in chosen["path"]]
        plans = {f.parent: planned_runs(f.parent) or set() for f in folders}  # each read once
        stray = [f.name not in plans[f.parent] for f in folders]
        chosen = chosen.assign(_stray=stray).sort_values("_stray", kind="stable")
    copies = chosen.duplicated(subset=key, keep="first")
    found: dict[str, str] = {}
    for _, first in chosen[~copies].iterrows():
        same = (chosen.loc[copies, key].fillna(-1) == first[key].fillna(-1)).all(axis=1)
        repeated = chosen.loc[copies].loc[same, "run"].tolist()
        if repeated:
            found.update(dict.fromkeys(repeated, first["run"]))
            seeded = "seed" in chosen and pd.notna(first.get("seed"))
            messages.append(
                f"lr={first['lr']:.3g}: {notes.name_list(repeated)} "
                f"{'repeats' if len(repeated) == 1 else 'repeat'} {first['run']} to the last "
                f"digit (the same U and S{'' if seeded else ', no seed'}): one training read "
                "twice (a copied folder, or the same fit logged into two folders), counted "
                "once")
    return found


def _one_row_per_lr(chosen: pd.DataFrame, messages: list[str]) -> pd.DataFrame:
    """Runs that share a learning rate (seeds, or repeats without a seed) averaged into one
    row (``U``, ``S`` means; ``n_runs`` counts them): the temperature construction needs
    distinct learning rates."""
    if chosen.empty:
        return chosen.assign(n_runs=pd.Series(dtype=int))
    counts = chosen.groupby("lr")["run"].count()
    several = counts[counts > 1]

    def what(lrs: Iterable[float]) -> str:
        part = chosen[chosen["lr"].isin(list(lrs))]
        seeded = "seed" in part and part["seed"].notna().all() and all(
            g["seed"].is_unique for _, g in part.groupby("lr"))
        return "runs (seeds)" if seeded else "runs (repeats without seeds)"

    if len(several) and several.nunique() == 1 and len(several) == len(counts):
        messages.append(f"every learning rate: {several.iloc[0]} {what(several.index)} "
                        "averaged into one T(eta) row")
    else:
        for lr, n in several.items():
            messages.append(f"lr={lr:.3g}: {n} {what([lr])} averaged into one T(eta) row")
    grouped = chosen.groupby("lr", as_index=False).agg(
        U=("U", "mean"), S=("S", "mean"), regime=("regime", "first"), n_runs=("run", "count"))
    return grouped.sort_values("lr").reset_index(drop=True)


def fit_rows(temperature: pd.DataFrame) -> pd.DataFrame:
    """The rows the power law is fitted to: valid, with both bracket bounds (the end rows
    have a one-sided bracket, a chord slope, biased)."""
    return temperature[temperature["valid"] & temperature["T_lo"].notna()
                       & temperature["T_hi"].notna()]


def power_law_of(temperature: pd.DataFrame, name: str = "learning rates"
                 ) -> tuple[tuple[float, float] | None, str]:
    """The power law ``(b, a)`` over :func:`fit_rows`, or ``None`` and why not."""
    ok = fit_rows(temperature)
    if len(ok) < MIN_FIT_ROWS:
        return None, (f"power law: not fitted; it uses the valid rows with both bracket bounds "
                      f"(the interior {name}; the end rows are one-sided chords), found "
                      f"{len(ok)}, needs {MIN_FIT_ROWS}")
    try:
        return fit_power_law(ok["lr"], ok["T"]), ""
    except ValueError as err:
        return None, f"power law: {err}"


def power_law_or_none(temperature: pd.DataFrame) -> tuple[float, float] | None:
    """:func:`power_law_of`'s fit, ``None`` without one (what the intervals re-run)."""
    return power_law_of(temperature)[0]


def _intervals(chosen_runs: pd.DataFrame, resampled: dict[str, np.ndarray],
               construction: Construction, se: pd.DataFrame, level: float,
               messages: list[str]) -> tuple[SeedIntervals | None, str | None]:
    """The intervals of ``T(eta)`` and the exponent: over seeds where the runs have 2 or
    more, else from the runs' tail bootstraps; ``(None, None)`` (said in ``messages``) when
    neither is possible. ``se``: the standard errors of the seed-averaged ``U`` and ``S``
    by ``lr`` (a single seed's are ``sqrt(n_runs)`` times larger)."""
    one_seed = se[["U_se", "S_se"]].mul(np.sqrt(se["n_runs"]), axis=0)

    def infer(rows: pd.DataFrame) -> pd.DataFrame:
        return construction.table(rows, one_seed)

    if "seed" in chosen_runs and chosen_runs["seed"].nunique() >= 2:
        spread = chosen_runs.groupby("lr")[["U", "S"]].agg(np.ptp)
        several = chosen_runs.groupby("lr")["run"].count() >= 2
        if several.any() and (spread[several] == 0).all().all():
            seeds = sorted(chosen_runs["seed"].unique())
            messages.append(
                f"T_ci_lo/T_ci_hi: no interval. The seeds {', '.join(map(str, seeds))} gave "
                "identical runs at every learning rate (the same U and S to the last digit): "
                "the model or data does not depend on the seed (a factory that ignores its "
                "`seed` argument?), so they are one run repeated, not a spread")
            return None, None
        spread = seed_intervals(chosen_runs, infer, power_law_or_none, level=level)
        _say_missing_seed_intervals(chosen_runs, spread, messages)
        return spread, "seeds"
    short = [name for name in chosen_runs["run"] if name not in resampled]
    if short:
        which = ("no run's tail holds that many" if len(short) == len(chosen_runs)
                 else f"{', '.join(short)} hold fewer")
        need = (chosen_runs["tail_for_bootstrap"].max() if "tail_for_bootstrap" in chosen_runs
                else math.nan)
        hint = (f"; --tail {min(1.0, math.ceil(need * 100) / 100):.2f} would give every run "
                "enough at the block length measured on today's tail (an estimate: a longer "
                "tail reaches back into a less stationary part, where the correlation time, "
                "so the block, can be longer; check runs.csv's blocks after)"
                if math.isfinite(need) and need <= 1 else
                "; for some runs not even the whole run at its final stride holds that many "
                "(runs.csv: tail_for_bootstrap above 1)" if math.isfinite(need) else "")
        messages.append(
            "T_ci_lo/T_ci_hi: no interval. One seed: the within-run bootstrap needs at least "
            f"{MIN_BLOCKS} independent blocks (entropy windows) in each run's tail, and "
            f"{which} (runs.csv: blocks){hint}. Run seeds for intervals (--seeds 0 1 2): at "
            "the default window a run's tail spans about one window, whatever its length")
        return None, None
    return bootstrap_intervals(chosen_runs, resampled, infer, power_law_or_none,
                               level=level), "bootstrap"


def _say_missing_seed_intervals(chosen_runs: pd.DataFrame, spread: SeedIntervals,
                                messages: list[str]) -> None:
    """Say where the seeds give no interval: each seed's own ``T(eta)`` needs 3 of its runs
    in it, an interval at a learning rate needs 2 seeds with a valid ``T`` there, and the
    exponent's needs 2 seeds with their own power law (runs left out of ``T(eta)`` thin the
    seeds' sweeps)."""
    per_seed = chosen_runs.groupby("seed")["lr"].nunique()
    short = [str(int(s)) for s, n in per_seed.items() if n < 3]
    why = (f" (seed(s) {', '.join(short)} have fewer than 3 runs in T(eta), so no T(eta) of "
           "their own)" if short else "")
    thin = spread.temperature[spread.temperature["n_seeds"] < 2]["lr"]
    if len(thin):
        messages.append(f"T_ci_lo/T_ci_hi: no interval at lr={', '.join(f'{x:.3g}' for x in thin)}"
                        f": fewer than 2 seeds have a valid T there{why}")
    if len(spread.exponents) < 2:
        messages.append(f"the exponent's interval: none, {len(spread.exponents)} seed(s) have "
                        f"a power law of their own (it needs 2){why}")


def _standard_errors(chosen_runs: pd.DataFrame, lrs: pd.Series) -> tuple[list[float],
                                                                          list[float]]:
    """Standard errors of each learning rate's ``U`` and ``S``: over its runs (seeds:
    ``std / sqrt(n)``) where there are 2 or more, else the run's tail bootstrap (``NaN``
    without one)."""
    out: tuple[list[float], list[float]] = ([], [])
    for lr in lrs:
        group = chosen_runs[chosen_runs["lr"] == lr]
        for values, col in zip(out, ("U", "S"), strict=True):
            if len(group) >= 2:
                values.append(float(group[col].std(ddof=1)) / math.sqrt(len(group)))
            elif f"{col}_se" in group and len(group):
                values.append(float(group[f"{col}_se"].iloc[0]))
            else:
                values.append(math.nan)
    return out


def temperatures(
    chosen: pd.DataFrame,
    along: str,
    groups: list[str],
    resampled: dict[str, np.ndarray],
    *,
    construction: Construction,
    ci: float,
    messages: list[str],
) -> tuple[pd.DataFrame, tuple[float, float] | None, dict[str, Any] | None]:
    """``T`` along ``along`` for every group of the other axes (one group without them):
    the temperature table (group columns first), the power law and ``fit.json``'s content
    (with several groups: no single power law, and ``fit`` holds one entry per group)."""
    empty = pd.DataFrame(columns=[*groups, along, "U", "S", "T", "T_lo", "T_hi", "valid",
                                  "end", "regime"])
    if not groups:
        t, law, fit = _temperature_one(chosen, along, resampled, construction, ci, messages)
        return (empty if t is None else t), law, fit
    tables, fits = [], {}
    said: dict[str, list[str]] = {}  # message -> the groups that gave it
    for key, runs in chosen.groupby(groups, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        label = ",".join(f"{g}={_label_value(v)}" for g, v in zip(groups, key, strict=True))
        own: list[str] = []
        t, _, fit = _temperature_one(runs, along, resampled, construction, ci, own)
        for m in own:
            said.setdefault(m, []).append(label)
        if t is None:
            continue
        for g, v in reversed(list(zip(groups, key, strict=True))):
            t.insert(0, g, v)
        t.insert(0, "group", label)
        tables.append(t)
        if fit is not None:
            fits[label] = fit
    n_groups = chosen.groupby(groups).ngroups
    for m, labels in said.items():  # one line for what every group says
        messages.append(f"every group: {m}" if len(labels) == n_groups and n_groups > 1
                        else "; ".join(labels) + f": {m}")
    if not tables:
        return empty, None, None
    temperature = pd.concat(tables, ignore_index=True)
    return temperature, None, ({"along": along, "groups": fits} if fits else None)


def _label_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _temperature_one(
    runs: pd.DataFrame,
    along: str,
    resampled: dict[str, np.ndarray],
    construction: Construction,
    ci: float,
    messages: list[str],
) -> tuple[pd.DataFrame | None, tuple[float, float] | None, dict[str, Any] | None]:
    """``T`` along ``along`` over ``runs`` (one group): the construction on the runs
    averaged per value of ``along``, the power law, and the intervals."""
    chosen_runs = runs.copy()
    if chosen_runs.empty:  # no usable run (none with a learning rate, say): no columns
        chosen = chosen_runs
    else:
        if along != "lr":  # the construction orders and smooths by the column named lr
            chosen_runs = chosen_runs.drop(columns=["lr"]).rename(columns={along: "lr"})
        chosen_runs["lr"] = chosen_runs["lr"].astype(float)
        chosen = _one_row_per_lr(chosen_runs, messages)
    if len(chosen) < 3:
        what = ("T(eta) needs at least 3 learning rates" if along == "lr" else
                f"T({along}) needs at least 3 values of {along}")
        messages.append(
            f"{what} with runs in it (stationary, without a low ESS or a capped stride), found "
            f"{len(chosen)}; runs.csv and the per-run figures are still written (runs.csv "
            "says why each other run was left out; --lr-range uses runs of any regime, "
            "--include-low-ess keeps low-ESS and capped ones)")
        return None, None, None
    fit = None
    name = "learning rates" if along == "lr" else along
    u_se, s_se = _standard_errors(chosen_runs, chosen["lr"])
    se = pd.DataFrame({"U_se": u_se, "S_se": s_se, "n_runs": chosen["n_runs"].to_numpy()},
                      index=chosen["lr"].to_numpy(float))
    unchecked = construction.kind == "convex" and se[["U_se", "S_se"]].isna().all().all()
    temperature = construction.table(chosen, se)
    temperature["unchecked"] = False
    if unchecked:  # nothing to judge a row by: said on every row it could have been
        temperature["unchecked"] = ~temperature["end"]
        messages.append(
            "no standard errors of U and S (one seed, and tails too short for the "
            "bootstrap's blocks): the convex construction weighs every point alike and no row "
            "can be checked against its errors; the interior rows are marked unchecked (one "
            "seed's rows read 0.71-1.34 of the truth on the known-temperature problem, a "
            "2000-step sweep's 1.34 at a valid row). Run 3 seeds (--seeds 0 1 2), or longer "
            "runs whose tail holds the bootstrap's blocks (runs.csv: tail_for_bootstrap)")
    mark_disagreeing_windows(temperature, chosen_runs, along, messages)
    mark_near_uniform(temperature, chosen_runs, along, messages)
    temperature["regime"] = chosen["regime"].to_numpy()
    temperature["n_runs"] = chosen["n_runs"].to_numpy()
    if "T_true" in chosen_runs and chosen_runs["T_true"].notna().any():
        truth = chosen_runs.groupby("lr")["T_true"].mean()
        temperature["T_true"] = [float(truth.get(x, math.nan)) for x in temperature["lr"]]
    power_law, why_not = power_law_of(temperature, name)
    if why_not:
        messages.append(why_not)
    spread, ci_method = _intervals(chosen_runs, resampled, construction, se, ci, messages)
    temperature["T_ci_lo"], temperature["T_ci_hi"] = _around_own_point(
        temperature, spread.temperature if spread is not None else None)
    temperature["ci_method"] = ci_method or ""
    temperature["U_se"], temperature["S_se"] = u_se, s_se  # chosen and the table: by lr
    add_conf_columns(temperature, chosen_runs, ci, messages, along)
    if power_law is not None:
        a_ci = _exponent_around(power_law[1], spread)
        fit = {"b": power_law[0], "a": power_law[1], "a_ci_lo": a_ci[0], "a_ci_hi": a_ci[1],
               "level": ci, "ci_method": ci_method, "construction": construction.kind,
               "rows": [float(v) for v in fit_rows(temperature)["lr"]],
               "n_seeds": int(chosen["n_runs"].max()),
               "seed_exponents": ({str(k): v for k, v in spread.exponents.items()}
                                  if spread is not None and ci_method == "seeds" else {})}
        if along != "lr":
            fit["along"] = along
    ends = temperature[temperature["end"]]  # (one with a reason of its own: said below too)
    if len(ends):
        messages.append(f"the end rows ({', '.join(f'{along}={v:.3g}' for v in ends['lr'])}) "
                        "have one chord each, a biased slope: reported, marked end, not valid, "
                        "and kept out of the power law")
    for _, r in temperature[~temperature["valid"] & (temperature["reason"] != END_REASON)
                            ].iterrows():
        messages.append(f"{along}={r['lr']:.3g}: T not valid ({r['reason']})")
    if along != "lr":
        temperature = temperature.rename(columns={"lr": along})
        if pd.api.types.is_integer_dtype(runs[along]):  # batch sizes stay integers
            temperature[along] = temperature[along].round().astype(runs[along].dtype)
    return temperature, power_law, fit


def _exponent_around(a: float, spread: SeedIntervals | None) -> tuple[float, float]:
    """The exponent's interval about the fitted ``a`` (the seed-averaged rows' power law).

    The spread comes from the seeds' (or draws') own exponents, centred on their mean; the
    interval is shifted by ``a - mean`` so that it keeps its width and holds ``a``, as
    :func:`_around_own_point` does for ``T``."""
    lo, hi = spread.a_ci if spread is not None else (math.nan, math.nan)
    values = list(spread.exponents.values()) if spread is not None else []
    if not (values and math.isfinite(lo + hi + a)):
        return math.nan, math.nan
    shift = a - float(np.mean(values))
    return min(lo + shift, a), max(hi + shift, a)


def _around_own_point(temperature: pd.DataFrame, spread: pd.DataFrame | None
                      ) -> tuple[list[float], list[float]]:
    """``T_ci_lo``, ``T_ci_hi`` of each row of ``temperature`` around its own ``T``.

    The intervals' spread comes from the seeds' (or the bootstrap draws') own ``T(eta)``,
    centred on their mean ``T_seed_mean``, while the table's ``T`` comes from the seed-averaged
    ``U`` and ``S``: the two differ (the construction is not linear), and an interval about
    the one could exclude the other. Each interval keeps its relative extent,
    ``T * [lo, hi] / T_seed_mean``, so that it is an interval about the ``T`` it is printed
    with (and always holds it)."""
    n = len(temperature)
    if spread is None or spread.empty:
        return [math.nan] * n, [math.nan] * n
    by_lr = spread.set_index("lr")
    lows, highs = [], []
    for x, t in zip(temperature["lr"], temperature["T"], strict=True):
        center = float(by_lr["T_seed_mean"].get(float(x), math.nan))
        lo = float(by_lr["T_ci_lo"].get(float(x), math.nan))
        hi = float(by_lr["T_ci_hi"].get(float(x), math.nan))
        if not (math.isfinite(t) and t > 0 and center > 0 and math.isfinite(lo + hi)):
            lows.append(math.nan)
            highs.append(math.nan)
            continue
        lows.append(min(t * lo / center, t))
        highs.append(max(t * hi / center, t))
    return lows, highs


def batch_size_collapse(temperature: pd.DataFrame, level: float = 0.95
                        ) -> dict[str, Any] | None:
    """Whether ``T`` depends on the learning rate and batch size through ``eta / B`` alone.

    Takes the valid interior rows of every batch size's ``T(eta)`` (``temperature`` with
    ``batch_size`` and ``lr`` columns) and fits one power law ``T = b (eta/B)^a`` to all of
    them (least squares in logs; ``a``'s interval from its standard error, Student's ``t``
    with ``n - 2`` degrees of freedom). Each batch size's offset is the mean of its rows'
    log residuals; the groups' **spread** is the standard deviation of those offsets (a
    relative spread in ``T``), with a chi-square interval (``k - 1`` degrees of freedom for
    ``k`` groups). The same spread for one power law in ``eta`` alone is the reference: the
    groups collapse in ``eta / B`` when the upper end of the spread's interval lies below it.

    Returns ``None`` with fewer than 2 batch sizes or 3 rows, else a dict: ``variable``,
    ``b``, ``a``, ``a_ci_lo``, ``a_ci_hi``, ``level``, ``rows``, ``offsets`` (per batch
    size), ``spread``, ``spread_ci_lo``, ``spread_ci_hi``, ``spread_lr_only``,
    ``collapses`` and a one-line ``verdict``.
    """
    from scipy.stats import chi2, linregress
    from scipy.stats import t as student_t

    ok = fit_rows(temperature)
    ok = ok[ok["T"] > 0]
    sizes = sorted(ok["batch_size"].unique())
    if len(sizes) < 2 or len(ok) < 3:
        return None
    log_t = np.log(ok["T"].to_numpy(float))

    def spread_of(x: np.ndarray) -> tuple[Any, np.ndarray]:
        if np.ptp(np.log(x)) == 0:  # one value of x: the model is a constant
            resid = log_t - log_t.mean()
            fit = None
        else:
            fit = linregress(np.log(x), log_t)
            resid = log_t - (fit.intercept + fit.slope * np.log(x))
        offsets = np.array([resid[ok["batch_size"].to_numpy() == b].mean() for b in sizes])
        return fit, offsets

    x = ok["lr"].to_numpy(float) / ok["batch_size"].to_numpy(float)
    if np.ptp(np.log(x)) == 0:
        return None  # one value of lr / B: no power law in it
    fit, offsets = spread_of(x)
    _, offsets_lr = spread_of(ok["lr"].to_numpy(float))
    k, n = len(sizes), len(ok)
    spread = float(offsets.std(ddof=1))
    spread_lr = float(offsets_lr.std(ddof=1))
    lo = spread * math.sqrt((k - 1) / chi2.ppf(0.5 + level / 2, k - 1))
    hi = spread * math.sqrt((k - 1) / chi2.ppf(0.5 - level / 2, k - 1))
    half = (float(student_t.ppf(0.5 + level / 2, n - 2)) * float(fit.stderr) if n > 2
            else math.nan)
    collapses = bool(hi < spread_lr)
    verdict = (
        f"batch-size collapse: T = {math.exp(fit.intercept):.3g} (lr/B)^{fit.slope:.3f} "
        f"(a in [{fit.slope - half:.3f}, {fit.slope + half:.3f}]) over {k} batch sizes; the "
        f"groups lie {spread:.1%} apart in ln T (interval {lo:.1%}-{hi:.1%}) against "
        f"{spread_lr:.1%} in lr alone: "
        + ("they collapse onto one curve in lr/B" if collapses else
           "no collapse shown (the spread in lr/B is not clearly below that in lr)"))
    return {"variable": "lr/batch_size", "b": float(math.exp(fit.intercept)),
            "a": float(fit.slope), "a_ci_lo": float(fit.slope - half),
            "a_ci_hi": float(fit.slope + half), "level": level, "rows": n,
            "offsets": {str(b): float(o) for b, o in zip(sizes, offsets, strict=True)},
            "spread": spread, "spread_ci_lo": lo, "spread_ci_hi": hi,
            "spread_lr_only": spread_lr, "collapses": collapses, "verdict": verdict}


def free_energy_along_runs(runs: Sequence[RunData], table: pd.DataFrame) -> pd.DataFrame:
    """``F(t) = U(t) - T S(t)`` along every run that has a temperature (its row of
    ``T(eta)``, in ``table``'s ``T`` column), at the logging points with an entropy.

    Returns one row per (run, step): ``run, step, U, S, T, F`` (empty when no run has a
    ``T``). The paper's argument: ``F`` settles as the run reaches its stationary state.
    """
    frames = []
    if "T" not in table:
        return pd.DataFrame(columns=["run", "step", "U", "S", "T", "F"])
    temps = table.set_index("run")["T"]
    for run in runs:
        t = number(temps.get(run.name)) if run.name in temps.index else None
        h = run.history
        if t is None or h.empty or U not in h or S not in h:
            continue
        points = h.dropna(subset=[U, S])
        frames.append(pd.DataFrame({"run": run.name, "step": points["step"].to_numpy(),
                                    "U": points[U].to_numpy(), "S": points[S].to_numpy(),
                                    "T": t, "F": free_energy(points[U], points[S], t).to_numpy()}))
    if not frames:
        return pd.DataFrame(columns=["run", "step", "U", "S", "T", "F"])
    return pd.concat(frames, ignore_index=True)
