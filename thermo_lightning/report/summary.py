"""One run's summary: its tail means, trend, regime and, once the report has chosen the runs
of ``T(eta)``, whether it is among them and why not.

For each run: ``U`` and ``S`` averaged over the last part of the run (at its final stride), a
trend test, and its :class:`Regime`: ``converging`` (``U`` and ``S`` still falling while the
net fits the data: over-parameterised nets at low LR), ``relaxing`` (still falling, but not
fitting the data: an under-parameterised net on its way to equilibrium), ``stationary``, or
``saturated`` (``S`` near the level of uniform points on the sphere, the maximum-entropy
reference computed with the same estimator at the same ``(N, D, k)``, and ``U`` near the loss
of random SI weights when the sweep recorded it); or, for a run that cannot be classified,
``unfinished`` (its ``run.json`` says interrupted, failed or running, or its log marks no
end of its fit), ``incomplete``,
``invalid`` or ``unmeasured``. A run left out of ``T(eta)`` has an
:class:`Exclusion`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from thermo_lightning import keys
from thermo_lightning._validation import finite_number as number
from thermo_lightning.report.configurational import run_conf_temperature
from thermo_lightning.report.intervals import MIN_BLOCKS, TailBootstrap, tail_bootstrap
from thermo_lightning.runs.read import RunData
from thermo_lightning.spec import LOW_ESS_FRACTION, WindowSpec

__all__ = [
    "REGIMES",
    "Exclusion",
    "Regime",
    "RunSummary",
    "classify_regime",
    "final_stride_points",
    "summarize_run",
    "t_critical",
    "tail_bootstrap_of",
    "trend",
    "window_spec",
]

U, S, SNR = keys.ENERGY, keys.ENTROPY, keys.SNR
_MAX_UNRESOLVED = 0.1  # a run's tail SNR needs at least 90% of its points resolved


class Regime(str, Enum):
    """Where a run is at its tail (its value is what ``runs.csv`` says)."""

    CONVERGING = "converging"
    RELAXING = "relaxing"
    STATIONARY = "stationary"
    SATURATED = "saturated"
    INCOMPLETE = "incomplete"  #: its files were cut
    UNFINISHED = "unfinished"  #: its record says it did not finish
    INVALID = "invalid"  #: U or S is NaN/Inf
    UNMEASURED = "unmeasured"  #: too few logging points to measure the tail

    @property
    def reason(self) -> str:
        """Why a run of this regime is not in ``T(eta)`` (``runs.csv``'s ``reason``; empty
        for ``stationary``)."""
        return _REGIME_REASONS.get(self, "")


#: the regimes :func:`classify_regime` tells apart
REGIMES = tuple(r.value for r in (Regime.CONVERGING, Regime.RELAXING, Regime.STATIONARY,
                                  Regime.SATURATED))

_REGIME_REASONS = {
    Regime.CONVERGING: "converging: U and S still falling while the net fits the data",
    Regime.RELAXING: "relaxing: U and S still falling, the net not fitting the data (not yet "
                     "stationary)",
    Regime.SATURATED: "saturated: S at the uniform-sphere level",
    Regime.INCOMPLETE: "incomplete: its files were cut",
    Regime.UNFINISHED: "unfinished: interrupted, failed or still running (a sweep's run.json "
                       "status not done; a Lightning log without thermo/fit_end)",
    Regime.INVALID: "U or S is NaN/Inf",
    Regime.UNMEASURED: "too few logging points with U and S",
}


class Exclusion(Enum):
    """Why a run is not in ``T(eta)``."""

    REGIME = "regime"  #: its regime (:attr:`Regime.reason`)
    LOW_ESS = "low ESS"  #: a stationary run whose window is too correlated
    #: a stationary run whose stride was capped below half the weights' correlation time
    CAPPED_STRIDE = "capped stride"
    OUTSIDE_RANGE = "outside --lr-range"  #: a stationary run outside ``--lr-range``
    COPY = "copy"  #: the same ``U`` and ``S`` to the last digit as another run: counted once

    @classmethod
    def of(cls, summary: RunSummary, used: bool) -> Exclusion | None:
        """Why ``summary``'s run is left out (``None``: ``used``, it is in ``T(eta)``)."""
        if used:
            return None
        if summary.regime is Regime.STATIONARY and summary.low_ess:
            return cls.LOW_ESS
        if summary.regime is Regime.STATIONARY and summary.stride_capped:
            return cls.CAPPED_STRIDE
        if summary.regime is None or summary.regime is Regime.STATIONARY:
            return cls.OUTSIDE_RANGE
        return cls.REGIME


@dataclass(frozen=True)
class RunSummary:
    """One row of ``runs.csv`` (``None``: not measured, not written). The columns appear in
    this order, the run's grid axes after ``seed``."""

    run: str
    lr: float | None
    seed: int | None = None
    axes: Mapping[str, Any] = field(default_factory=dict)
    T_true: float | None = None
    problem: str | None = None  #: why the tail could not be measured
    U: float | None = None
    S: float | None = None
    U_std: float | None = None
    S_std: float | None = None
    tail_points: int | None = None
    #: logging points inside the tail's span with ``U`` but no ``S``: the run was resumed
    #: without its window (``save_window=False``), which refilled there (``None``: none)
    tail_without_S: int | None = None
    #: independent windows among the tail's points (points a window span apart)
    trend_points: int | None = None
    first_tail_step: float | None = None
    last_step: float | None = None
    stoch_grad_norm: float | None = None
    ess: float | None = None
    #: the mean of ``thermo/halves_chi2`` over the trend test's points: how far its windows'
    #: two halves disagree (about 1 where a window samples its law; :mod:`.halves`)
    halves_chi2: float | None = None
    snr_unresolved: float | None = None
    snr: float | None = None
    grad_norm: float | None = None
    U_slope: float | None = None
    U_slope_t: float | None = None
    S_slope: float | None = None
    S_slope_t: float | None = None
    train_acc: float | None = None  #: the record's final accuracy, else the tail's mean
    U_random: float | None = None
    regime: Regime | None = None
    window: int | None = None
    low_ess: bool | None = None
    #: some window of the run had a low ESS (``thermo/low_ess``: the callback warned); not a
    #: runs.csv column (``low_ess`` is the tail's)
    low_ess_seen: bool | None = None
    #: the final stride is below half the correlation time the pilot measured
    #: (stride="auto" capped it so that a window fills): windows correlated beyond what the
    #: ESS shows (:data:`CAPPED_STRIDE_SHARE`)
    stride_capped: bool | None = None
    blocks: int | None = None
    tail_for_bootstrap: float | None = None
    U_se: float | None = None
    S_se: float | None = None
    #: the configurational temperature over the stationary stretch (:mod:`.configurational`)
    T_conf: float | None = None
    T_conf_se: float | None = None
    conf_points: int | None = None
    fdr: float | None = None  #: the fluctuation-dissipation ratio (1 at stationarity)
    fdr_se: float | None = None  #: its standard error
    path: str | None = None
    copy_of: str | None = None  #: the run it repeats to the last digit (:attr:`Exclusion.COPY`)
    #: why the run is not in ``T(eta)`` (``None``: it is, or the report has not chosen yet)
    exclusion: Exclusion | None = None

    @property
    def measured(self) -> bool:
        return self.U is not None

    @property
    def reason(self) -> str:
        """``runs.csv``'s ``reason``: empty for a run in ``T(eta)``."""
        if self.exclusion is None:
            return ""
        if self.exclusion is Exclusion.LOW_ESS:
            return ("low ESS: its window is too correlated for S to be trusted (include it "
                    "with --include-low-ess)")
        if self.exclusion is Exclusion.CAPPED_STRIDE:
            return ("capped stride: its snapshots are closer than half the weights' correlation "
                    "time, so S is biased low (include it with --include-low-ess)")
        if self.exclusion is Exclusion.COPY:
            return f"a copy of {self.copy_of} (the same U and S to the last digit): counted once"
        if self.exclusion is Exclusion.REGIME and self.regime is not None:
            return self.regime.reason
        return Exclusion.OUTSIDE_RANGE.value

    @property
    def in_t_eta(self) -> str:
        """``yes``, or ``no (why)`` (the hparams table's ``in_T_eta``)."""
        return "yes" if not self.reason else f"no ({self.reason.split(':')[0]})"

    def row(self) -> dict[str, Any]:
        """The ``runs.csv`` row (its measured columns; ``reason`` is added by the report)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "axes":
                out.update(value)
            elif f.name == "regime" and value is not None:
                out["regime"] = value.value
            elif f.name not in ("exclusion", "copy_of", "low_ess_seen") and value is not None:
                out[f.name] = value
        return out


# ------------------------------------------------------------------------------ trend
def trend(steps: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Slope of ``values`` against ``ln(step)`` and its t-statistic (least squares,
    ``scipy.stats.linregress``)."""
    from scipy.stats import linregress

    x = np.log(np.maximum(steps, 1.0))
    if len(x) < 3 or np.ptp(x) == 0:
        return 0.0, 0.0
    fit = linregress(x, values)
    a, se = float(fit.slope), float(fit.stderr)
    scale = max(float(np.abs(values).max()), 1e-300)
    if se <= 1e-12 * scale:  # an exact line: no noise to compare the slope with
        return a, 0.0 if abs(a) <= 1e-12 * scale else math.copysign(math.inf, a)
    return a, a / se


#: window spans at the end of a run that its trend test covers (at least the tail)
TREND_WINDOWS = 5


def independent_windows(steps: np.ndarray, span: float | None) -> int:
    """How many of the logging points at ``steps`` (ascending) are at least one window
    ``span`` (steps) apart, counted from the last one: the independent measurements among
    them (all of them when ``span`` is unknown)."""
    if span is None or not span > 0 or len(steps) < 2:
        return len(steps)
    count, last = 1, float(steps[-1])
    for step in steps[-2::-1]:
        if last - float(step) >= span:
            count, last = count + 1, float(step)
    return count


def t_critical(points: int) -> float:
    """Two-sided 1% critical value of Student's t with ``points - 2`` degrees of freedom
    (``inf`` below 3 points)."""
    from scipy.stats import t

    dof = points - 2
    return math.inf if dof < 1 else float(t.ppf(0.995, dof))


def classify_regime(
    u_slope_t: float,
    s_slope_t: float,
    s_mean: float,
    s_uniform: float | None,
    dim: int | None,
    *,
    u_mean: float | None = None,
    u_random: float | None = None,
    points: int = 100,
    saturation_tol: float = 0.15,
    train_acc: float | None = None,
) -> str:
    """The regime of one run from its tail (a :data:`REGIMES` value).

    - ``saturated``: ``S`` within ``saturation_tol * dim`` of the uniform-sphere reference
      (the mean k-NN distance within about ``saturation_tol`` of the uniform one) and, when the
      loss of random SI weights ``u_random`` is known, ``U >= 0.9 u_random``;
    - ``U`` and ``S`` both fall against ``ln(step)``, each with a t-statistic beyond the
      two-sided 1% critical value for ``points`` points: ``converging`` when the net fits
      the data (training accuracy ``>= 0.99``, or without one ``U <= 0.1 u_random``; either
      unknown: assumed), else ``relaxing`` (an under-parameterised net still on its way to
      equilibrium);
    - ``stationary``: otherwise.
    """
    if s_uniform is not None and dim and s_mean >= s_uniform - saturation_tol * dim and (
        u_random is None or u_mean is None or u_mean >= 0.9 * u_random
    ):
        return Regime.SATURATED.value
    t_crit = t_critical(points)
    if u_slope_t < -t_crit and s_slope_t < -t_crit:
        if train_acc is not None:
            fits = train_acc >= 0.99
        elif u_random is not None and u_mean is not None:
            fits = u_mean <= 0.1 * u_random
        else:
            fits = True
        return (Regime.CONVERGING if fits else Regime.RELAXING).value
    return Regime.STATIONARY.value


# ------------------------------------------------------------------------------ the tail
@dataclass(frozen=True)
class _TooShort:
    """Why a run's tail cannot be measured."""

    why: str


def _tail(run: RunData, tail: float, min_points: int) -> pd.DataFrame | _TooShort:
    """The run's last ``tail`` of the logging points with ``U`` and ``S`` at its final
    stride (at least ``min_points``), or why there are too few."""
    good = run.history.dropna(subset=[U, S])
    if keys.STRIDE in run.history and run.history[keys.STRIDE].notna().any():
        # the stride the run ended at (a window of the pilot's stride is not one of it)
        final = run.history[keys.STRIDE].dropna().iloc[-1]
        good = good[good[keys.STRIDE] == final]
        if good.empty:
            return _TooShort(f"no logging point with S at its final stride {final:g}: its log "
                             "ends while the window refilled after the pilot")
    if len(good) < min_points:
        return _TooShort(f"only {len(good)} logging points with U and S (at the final stride)")
    return good.iloc[-max(min_points, round(tail * len(good))):]


def final_stride_points(run: RunData) -> pd.DataFrame:
    """The run's logging points with ``U`` and ``S`` at its final stride: the part after the
    pilot and the stride changes, the tail is the last share of (empty when none)."""
    if run.history.empty or not {U, S} <= set(run.history):
        return pd.DataFrame(columns=["step", U, S])
    part = _tail(run, 1.0, 1)
    return part if isinstance(part, pd.DataFrame) else pd.DataFrame(columns=["step", U, S])


def window_spec(run: RunData) -> WindowSpec | None:
    """The run's :class:`~thermo_lightning.spec.WindowSpec` as the callback wrote it (in
    ``run.json``'s ``window_spec`` or Lightning's ``hparams.yaml``), or ``None``."""
    return run.window_spec


def _window_span(run: RunData, part: pd.DataFrame) -> float | None:
    """Steps one entropy window covers at the tail, ``window * stride`` (``None``: unknown)."""
    spec = run.window_spec
    if spec is None:
        return None
    stride = (float(part[keys.STRIDE].iloc[-1]) if keys.STRIDE in part
              and part[keys.STRIDE].notna().any() else number(spec.stride))
    return None if stride is None else spec.window * stride


#: a stride capped below this share of the correlation time leaves a run out of T(eta):
#: consecutive snapshots then correlate above exp(-1/2) = 0.61. (The known-temperature test at
#: the defaults, strides 0.8 tau, stays within 15% of the truth; the CLI's --steps 2000 capped
#: strides at 0.3-0.9 tau and its T came out 21-23% low.)
CAPPED_STRIDE_SHARE = 0.5


def _stride_capped(part: pd.DataFrame) -> bool | None:
    """Whether the tail's stride is below :data:`CAPPED_STRIDE_SHARE` of ``tau``, the
    correlation time the pilot measured (``None``: a run without them, e.g. a fixed
    stride)."""
    if keys.CORRELATION_TIME not in part or keys.STRIDE not in part:
        return None
    tau, stride = part[keys.CORRELATION_TIME].dropna(), part[keys.STRIDE].dropna()
    if tau.empty or stride.empty or not math.isfinite(float(tau.iloc[-1])):
        return None
    return float(stride.iloc[-1]) < CAPPED_STRIDE_SHARE * float(tau.iloc[-1])


def _trend_stretch(run: RunData, part: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The points the trend test fits and how many independent windows they hold.

    Consecutive logging points whose windows overlap share snapshots: their ``U`` and ``S``
    are not independent, and a least-squares t-statistic over them counts one window's noise
    several times (a stationary run's tail a window long looks like a trend). So the test
    covers the last :data:`TREND_WINDOWS` window spans at the final stride (at least the
    tail), its t-statistics are deflated by ``sqrt(n_eff / n)`` (the variance inflation of
    ``n`` points ``n / n_eff`` to a window) and compared with the critical value for the
    ``n_eff`` independent windows (:func:`independent_windows`)."""
    span = _window_span(run, part)
    if span is None or not span > 0:
        return part, len(part)
    final = final_stride_points(run)
    start = min(float(part["step"].iloc[0]), float(final["step"].iloc[-1]) - TREND_WINDOWS * span)
    stretch = final[final["step"] >= start]
    return stretch, independent_windows(stretch["step"].to_numpy(float), span)


def tail_bootstrap_of(run: RunData, tail: float = 0.15, min_points: int = 5, *,
                      draws: int = 200, seed: int = 0) -> TailBootstrap | None:
    """The moving-block bootstrap of the run's tail means of ``U`` and ``S``
    (:func:`~thermo_lightning.report.intervals.tail_bootstrap`; blocks at least one entropy
    window long), or ``None`` when the run has too few points."""
    if run.history.empty or U not in run.history or S not in run.history:
        return None
    part = _tail(run, tail, min_points)
    if isinstance(part, _TooShort):
        return None
    return tail_bootstrap(part["step"].to_numpy(float), part[[U, S]].to_numpy(float),
                          span=_window_span(run, part), draws=draws,
                          rng=np.random.default_rng(seed))


def summarize_run(run: RunData, tail: float = 0.15, min_points: int = 5) -> RunSummary:
    """``U``, ``S`` (and SNR, gradient norms, accuracy) averaged over the last ``tail`` of the
    logging points that have an entropy, measured with the run's final stride (windows of an
    earlier, shorter stride are more correlated and give a lower ``S``); trend statistics over
    the same points. The regime is left to :func:`classify` (it needs the sweep's uniform
    reference)."""
    h = run.history
    base = RunSummary(run=run.name, lr=run.lr, seed=run.seed,
                      axes={a: v for a, v in run.axes.items() if a not in ("lr", "seed")},
                      T_true=run.known_temperature, path=str(run.path))
    if h.empty or U not in h or S not in h:
        return base
    part = _tail(run, tail, min_points)
    if isinstance(part, _TooShort):
        return replace(base, problem=part.why)
    n_tail = len(part)
    steps = part["step"].to_numpy(float)
    gap = int((h[U].notna() & h[S].isna() & (h["step"] > steps[0])).sum())
    values: dict[str, Any] = {
        "U": part[U].mean(), "S": part[S].mean(), "U_std": part[U].std(ddof=1),
        "S_std": part[S].std(ddof=1), "tail_points": n_tail, "first_tail_step": steps[0],
        "last_step": float(h["step"].max()), "tail_without_S": gap or None}
    for key, name in ((keys.STOCH_GRAD_NORM, "stoch_grad_norm"), (keys.ESS, "ess"),
                      (keys.TRAIN_ACC, "train_acc")):
        if key in h and h[key].notna().any():
            values[name] = float(h[key].dropna().iloc[-n_tail:].mean())
    if SNR in h and keys.STOCH_GRAD_NORM in h and h[keys.STOCH_GRAD_NORM].notna().any():
        # the points where the SNR was measured; NaN among them: the unbiased estimate did
        # not resolve the signal there. Averaging only the resolved ones would bias the mean
        # up, so beyond a tenth of the points the run's SNR is NaN
        measured = h[h[keys.STOCH_GRAD_NORM].notna()].iloc[-n_tail:]
        unresolved = float(measured[SNR].isna().mean())
        values["snr_unresolved"] = unresolved
        for key, name in ((SNR, "snr"), (keys.GRAD_NORM, "grad_norm")):
            if key in measured:
                values[name] = (float(measured[key].mean()) if unresolved <= _MAX_UNRESOLVED
                                else math.nan)
    capped = _stride_capped(part)
    if capped is not None:
        values["stride_capped"] = capped
    stretch, independent = _trend_stretch(run, part)
    values["trend_points"] = independent
    if keys.LOW_ESS in h:
        values["low_ess_seen"] = bool((h[keys.LOW_ESS] > 0).any())
    if keys.HALVES in stretch and stretch[keys.HALVES].notna().any():  # the tail is ~1 window
        values["halves_chi2"] = float(stretch[keys.HALVES].mean())
    values.update(run_conf_temperature(h, float(stretch["step"].iloc[0])))
    deflate = math.sqrt(independent / len(stretch))
    for name, key in (("U", U), ("S", S)):
        slope, t_stat = trend(stretch["step"].to_numpy(float), stretch[key].to_numpy(float))
        values[f"{name}_slope"], values[f"{name}_slope_t"] = slope, t_stat * deflate
    record = run.record
    if record is not None and record.train_acc is not None:
        values["train_acc"] = record.train_acc
    if record is not None and record.random_loss is not None:
        values["U_random"] = record.random_loss
    return replace(base, **values)


def classify(summary: RunSummary, run: RunData, reference: tuple[float | None, int | None],
             *, tail: float, include_low_ess: bool, messages: list[str]
             ) -> tuple[RunSummary, np.ndarray | None]:
    """The run's regime, its low-ESS flag and its tail bootstrap (standard errors of ``U``
    and ``S``, and the bootstrap means the intervals resample: returned, ``None`` without
    them). What a user should know goes to ``messages``."""
    if summary.problem is not None and not run.unfinished:  # that is said when it is read
        messages.append(f"{run.name}: {summary.problem}")
    s_uniform, dim = reference
    values: dict[str, Any] = {}
    if run.unfinished:
        values["regime"] = Regime.UNFINISHED
    elif not summary.measured:  # too few logged points to measure the tail
        values["regime"] = Regime.UNMEASURED
    elif not (math.isfinite(summary.U) and math.isfinite(summary.S)):
        messages.append(f"{run.name}: U or S is NaN/Inf; left out of T(eta)")
        values["regime"] = Regime.INVALID
    elif run.incomplete:
        values["regime"] = Regime.INCOMPLETE
    else:
        values["regime"] = Regime(classify_regime(
            summary.U_slope_t, summary.S_slope_t, summary.S, s_uniform, dim,
            u_mean=summary.U, u_random=summary.U_random,
            points=summary.trend_points or summary.tail_points, train_acc=summary.train_acc))
    spec = run.window_spec
    if spec is not None and summary.ess is not None:
        values["window"] = spec.window
        values["low_ess"] = bool(summary.ess < LOW_ESS_FRACTION * spec.window)
        if values["low_ess"] and not run.unfinished:
            fate = ("kept in T(eta) (--include-low-ess)" if include_low_ess else
                    "left out of T(eta) unless --include-low-ess")
            messages.append(f"{run.name}: low ESS ({summary.ess:.0f} of {spec.window}); the "
                            "window is too correlated for S to be trusted (S biased low); "
                            f"{fate}. Train longer, or use a smaller window (fewer "
                            "snapshots, farther apart; with stride='auto')")
    means = None
    if summary.measured and values["regime"] is not Regime.INVALID:
        boot = tail_bootstrap_of(run, tail)
        if boot is not None:
            values["blocks"] = boot.blocks
            # the --tail that would hold MIN_BLOCKS blocks of this length
            values["tail_for_bootstrap"] = (MIN_BLOCKS * boot.block * tail
                                            / max(1, summary.tail_points))
            if boot.means is not None:
                values["U_se"], values["S_se"] = (float(v) for v in boot.se)
                means = boot.means
    return replace(summary, **values), means
