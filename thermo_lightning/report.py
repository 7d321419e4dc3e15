"""Turn a folder of runs (a learning-rate sweep) into the paper's results.

For each run: ``U`` and ``S`` averaged over the last part of the run, a trend test, and its
regime: ``converging`` (``U`` and ``S`` still falling while the net fits the data:
over-parameterised nets at low LR), ``relaxing`` (still falling, but not fitting the data:
an under-parameterised net on its way to equilibrium), ``stationary``, or ``saturated``
(``S`` near the level of uniform points on the sphere, the maximum-entropy reference computed
with the same estimator at the same ``(N, D, k)``, and ``U`` near the loss of random SI
weights when the sweep recorded it). Across
the stationary runs: ``T(eta)`` with its brackets and convexity check, the power-law fit, and
the free-energy curves; along converging runs: ``T(t) = dU/dS``.

Runs are read from ``history.csv`` (written by the sweep runner), else from TensorBoard event
files (only the scalar tags needed; images are never loaded), else from CSV logs. Lightning's
own ``lightning_logs/version_N`` folders are one run each. A run whose files end before the
step ``run.json`` says it logged last (cut mid-write) is marked ``incomplete`` and left out
of ``T(eta)``; several runs at one learning rate (seeds) are averaged there.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from thermo_lightning import keys
from thermo_lightning.functional.entropy import uniform_sphere_knn_entropy
from thermo_lightning.functional.temperature import (
    fit_power_law,
    infer_temperature,
    trend_temperature,
)
from thermo_lightning.intervals import (
    MIN_BLOCKS,
    SeedIntervals,
    TailBootstrap,
    bootstrap_intervals,
    seed_intervals,
    tail_bootstrap,
)
from thermo_lightning.meter import LOW_ESS_FRACTION, WindowSpec

__all__ = [
    "REGIMES",
    "ReportResult",
    "RunData",
    "classify_regime",
    "find_runs",
    "make_report",
    "read_run",
    "summarize_run",
    "tail_bootstrap_of",
]

U, S, SNR = keys.ENERGY, keys.ENTROPY, keys.SNR
_MAX_UNRESOLVED = 0.1  # a run's tail SNR needs at least 90% of its points resolved
NEEDED_TAGS = (U, S, SNR, keys.GRAD_NORM, keys.STOCH_GRAD_NORM, keys.T_LOCAL, keys.ESS,
               keys.WINDOW_FILL, keys.TRAIN_ACC)
REGIMES = ("converging", "relaxing", "stationary", "saturated")
MIN_FIT_ROWS = 3  #: interior rows (both bracket bounds) the power law needs
OUTPUTS = ("temperature.csv", "runs.csv")


@dataclass
class RunData:
    """One run read back: its name, folder, hyperparameters and history (a ``step`` column
    and one column per metric); ``problems`` lists what is missing."""

    name: str
    path: Path
    hparams: dict[str, Any]
    history: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def lr(self) -> float | None:
        """The learning rate, or ``None`` when it is missing or not a positive number."""
        lr = _number(self.hparams.get("lr"))
        return lr if lr is not None and lr > 0 else None


def _number(value: Any) -> float | None:
    """``value`` as a finite float, else ``None`` (hand-written YAML can hold anything)."""
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


# ------------------------------------------------------------------------------ reading
def find_runs(logdir: str | Path) -> list[Path]:
    """Run folders under ``logdir``: folders holding ``run.json``, ``history.csv``, a
    TensorBoard event file or a ``metrics.csv`` (the outermost such folder per run)."""
    root = Path(logdir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of runs.")
    marks = {"run.json", "history.csv", "metrics.csv"}
    found: set[Path] = set()
    for path in root.rglob("*"):
        if path.is_file() and (path.name in marks or path.name.startswith("events.out.tfevents")):
            run = path.parent
            # a sweep run's logger folders (lr=.../tensorboard, lr=.../csv/version_N) belong
            # to it; a Lightning version_N folder anywhere else is a run of its own
            if re.fullmatch(r"version_\d+", run.name) and run.parent.name == "csv" \
                    and run != root:
                run = run.parent
            while run.name in ("tensorboard", "csv") and run != root:
                run = run.parent
            found.add(run)
    # a report written inside the log folder (its own TensorBoard events) is not a run
    found = {p for p in found if not any(_is_report(q) for q in (p, *p.parents)
                                         if q == root or root in q.parents)}
    # keep the outermost folder of nested candidates
    runs = sorted(p for p in found if not any(q != p and q in p.parents for q in found))
    return runs


def _is_report(folder: Path) -> bool:
    return (folder / "runs.csv").is_file() and (folder / "temperature.csv").is_file()


def _read_tensorboard(folder: Path, tags: Sequence[str]) -> pd.DataFrame:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    wanted = set(tags)
    rows: dict[int, dict[str, float]] = {}
    for events in sorted(folder.rglob("events.out.tfevents*")):
        for event in EventFileLoader(str(events)).Load():
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                if value.tag not in wanted:
                    continue  # images, histograms and other tags are skipped unparsed
                if value.HasField("simple_value"):
                    v = float(value.simple_value)
                elif value.HasField("tensor"):
                    v = float(tensor_util.make_ndarray(value.tensor).reshape(-1)[0])
                else:
                    continue
                rows.setdefault(int(event.step), {})[value.tag] = v
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame.from_dict(rows, orient="index").sort_index()
    df.insert(0, "step", df.index.astype(float))
    return df.reset_index(drop=True)


def _read_csv(path: Path, problems: list[str]) -> pd.DataFrame:
    """A CSV file; a last line without its newline (cut while being written) is dropped and
    said."""
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        problems.append(f"{path.name} ends mid-line (cut while written?): its last row was "
                        "dropped")
    if not text.strip():
        return pd.DataFrame()
    import io

    return pd.read_csv(io.StringIO(text))


def _read_csv_logs(folder: Path, problems: list[str]) -> pd.DataFrame:
    frames = [_read_csv(p, problems) for p in sorted(folder.rglob("metrics.csv"))]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    if "step" not in df.columns:
        return pd.DataFrame()
    return df.groupby("step", as_index=False).first().sort_values("step")


def _lr_from_name(name: str) -> float | None:
    m = re.search(r"lr[=_]?([0-9.]+(?:e[-+]?[0-9]+)?)", name)
    return float(m.group(1)) if m else None


def read_run(folder: str | Path, tags: Sequence[str] = NEEDED_TAGS, *,
             name: str | None = None) -> RunData:
    """Read one run: ``run.json`` for its hyperparameters (else Lightning's ``hparams.yaml``,
    else an ``lr=...`` folder name), and its history from ``history.csv``, TensorBoard or CSV
    logs."""
    folder = Path(folder)
    info: dict[str, Any] = {}
    hparams: dict[str, Any] = {}
    problems: list[str] = []
    if (folder / "run.json").exists():
        info = json.loads((folder / "run.json").read_text())
        if not isinstance(info, dict):
            problems.append("run.json does not hold a mapping; ignored")
            info = {}
        hparams = dict(info.get("hparams", {}) or {})
    else:
        import yaml

        for hp in folder.rglob("hparams.yaml"):
            try:
                values = yaml.safe_load(hp.read_text()) or {}
            except yaml.YAMLError as err:
                problems.append(f"{hp.relative_to(folder)} is not valid YAML ({err}); ignored")
                continue
            if isinstance(values, dict):
                hparams.update(values)
            else:
                problems.append(f"{hp.relative_to(folder)} does not hold a mapping; ignored")
    if "lr" not in hparams and (lr := _lr_from_name(folder.name)) is not None:
        hparams["lr"] = lr
    if (folder / "history.csv").exists():
        history = _read_csv(folder / "history.csv", problems)
    else:
        history = _read_tensorboard(folder, tags)
        if history.empty:
            history = _read_csv_logs(folder, problems)
    if history.empty:
        problems.append("no thermo metrics found (no history.csv, TensorBoard or CSV log)")
    else:
        missing = [t for t in (U, S) if t not in history.columns]
        empty = [t for t in (U, S) if t in history.columns and history[t].isna().all()]
        if missing:
            problems.append(f"missing tags {missing}")
        if empty:
            problems.append(f"tags {empty} are all NaN")
    if "lr" not in hparams:
        problems.append("no learning rate (run.json, hparams.yaml or an lr=... folder name)")
    elif _number(hparams["lr"]) is None or _number(hparams["lr"]) <= 0:
        problems.append(f"learning rate {hparams['lr']!r} is not a positive number")
    if info.get("status") not in (None, "done"):
        problems.append(f"status {info.get('status')!r} (interrupted or failed)")
    expected = _expected_last_step(info)
    if expected is not None and not history.empty and "step" in history:
        last = float(history["step"].max())
        if last < expected:
            info["incomplete"] = True
            problems.append(
                f"its log ends at step {last:g} but the run logged up to step {expected:g} "
                "(run.json): a file was cut while written; the run is marked incomplete and "
                "left out of T(eta)"
            )
    return RunData(name or folder.name, folder, hparams, history, info, problems)


def _expected_last_step(info: dict[str, Any]) -> float | None:
    """The last logging step of a finished run, from ``run.json``: ``last_logged_step``, or
    (older sweeps) ``global_step`` on the ``"log"`` schedule (which logs the last step) or
    its last multiple on an every-``n`` schedule."""
    if info.get("status") != "done":
        return None
    last = _number(info.get("last_logged_step"))
    if last is not None:
        return last
    step = _number(info.get("global_step"))
    schedule = (info.get("hparams") or {}).get("schedule")
    if step is None:
        return None
    if schedule == "log":
        return step
    n = _number(schedule)
    return float(step // n * n) if n is not None and n >= 1 else None


# ------------------------------------------------------------------------------ per run
def _trend(steps: np.ndarray, values: np.ndarray) -> tuple[float, float]:
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


def _t_critical(points: int) -> float:
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
    """The regime of one run from its tail.

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
        return "saturated"
    t_crit = _t_critical(points)
    if u_slope_t < -t_crit and s_slope_t < -t_crit:
        if train_acc is not None:
            fits = train_acc >= 0.99
        elif u_random is not None and u_mean is not None:
            fits = u_mean <= 0.1 * u_random
        else:
            fits = True
        return "converging" if fits else "relaxing"
    return "stationary"


def _tail(run: RunData, tail: float, min_points: int) -> pd.DataFrame | str:
    """The run's last ``tail`` of the logging points with ``U`` and ``S`` at its final
    stride (at least ``min_points``), or why there are too few."""
    good = run.history.dropna(subset=[U, S])
    if keys.STRIDE in good and good[keys.STRIDE].notna().any():
        good = good[good[keys.STRIDE] == good[keys.STRIDE].dropna().iloc[-1]]
    if len(good) < min_points:
        return f"only {len(good)} logging points with U and S (at the final stride)"
    return good.iloc[-max(min_points, round(tail * len(good))):]


def _window_span(run: RunData, part: pd.DataFrame) -> float | None:
    """Steps one entropy window covers at the tail, ``window * stride`` (``None``: unknown)."""
    spec = window_spec(run)
    if spec is None:
        return None
    stride = (float(part[keys.STRIDE].iloc[-1]) if keys.STRIDE in part
              and part[keys.STRIDE].notna().any() else _number(spec.stride))
    return None if stride is None else spec.window * stride


def tail_bootstrap_of(run: RunData, tail: float = 0.15, min_points: int = 5, *,
                      draws: int = 400, seed: int = 0) -> TailBootstrap | None:
    """The moving-block bootstrap of the run's tail means of ``U`` and ``S``
    (:func:`~thermo_lightning.intervals.tail_bootstrap`; blocks at least one entropy window
    long), or ``None`` when the run has too few points."""
    if run.history.empty or U not in run.history or S not in run.history:
        return None
    part = _tail(run, tail, min_points)
    if isinstance(part, str):
        return None
    return tail_bootstrap(part["step"].to_numpy(float), part[[U, S]].to_numpy(float),
                          span=_window_span(run, part), draws=draws,
                          rng=np.random.default_rng(seed))


def summarize_run(run: RunData, tail: float = 0.15, min_points: int = 5) -> dict[str, Any]:
    """``U``, ``S`` (and SNR, gradient norms, accuracy) averaged over the last ``tail`` of the
    logging points that have an entropy, measured with the run's final stride (windows of an
    earlier, shorter stride are more correlated and give a lower ``S``); trend statistics over
    the same points."""
    h = run.history
    row: dict[str, Any] = {"run": run.name, "lr": run.lr}
    if _number(run.hparams.get("seed")) is not None:
        row["seed"] = int(run.hparams["seed"])
    if h.empty or U not in h or S not in h:
        return row
    part = _tail(run, tail, min_points)
    if isinstance(part, str):
        row["problem"] = part
        return row
    n_tail = len(part)
    steps = part["step"].to_numpy(float)
    row.update(U=part[U].mean(), S=part[S].mean(), U_std=part[U].std(ddof=1),
               S_std=part[S].std(ddof=1), tail_points=n_tail, first_tail_step=steps[0],
               last_step=float(h["step"].max()))
    for key, name in ((keys.STOCH_GRAD_NORM, "stoch_grad_norm"), (keys.ESS, "ess"),
                      (keys.TRAIN_ACC, "train_acc")):
        if key in h and h[key].notna().any():
            col = h[key].dropna()
            row[name] = float(col.iloc[-n_tail:].mean())
    if SNR in h and keys.STOCH_GRAD_NORM in h and h[keys.STOCH_GRAD_NORM].notna().any():
        # the points where the SNR was measured; NaN among them: the unbiased estimate did
        # not resolve the signal there. Averaging only the resolved ones would bias the mean
        # up, so beyond a tenth of the points the run's SNR is NaN
        measured = h[h[keys.STOCH_GRAD_NORM].notna()].iloc[-n_tail:]
        unresolved = float(measured[SNR].isna().mean())
        row["snr_unresolved"] = unresolved
        for key, name in ((SNR, "snr"), (keys.GRAD_NORM, "grad_norm")):
            if key in measured:
                row[name] = (float(measured[key].mean()) if unresolved <= _MAX_UNRESOLVED
                             else math.nan)
    (row["U_slope"], row["U_slope_t"]) = _trend(steps, part[U].to_numpy(float))
    (row["S_slope"], row["S_slope_t"]) = _trend(steps, part[S].to_numpy(float))
    if _number(run.info.get("train_acc")) is not None:
        row["train_acc"] = _number(run.info["train_acc"])
    if _number(run.info.get("random_loss")) is not None:
        row["U_random"] = _number(run.info["random_loss"])
    return row


# ------------------------------------------------------------------------------ report
def _check_report_arguments(tail: float, eps: float, smoothing: float | None,
                            lr_range: tuple[float, float] | None) -> None:
    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    if not (number(tail) and 0 < tail <= 1):
        raise ValueError(f"`tail` (--tail) must be a fraction in (0, 1], got {tail!r}.")
    if not (number(eps) and eps >= 0):
        raise ValueError(f"`eps` (--eps) must be a number >= 0, got {eps!r}.")
    if smoothing is not None and not (number(smoothing) and smoothing >= 0):
        raise ValueError(f"`smoothing` (--smoothing) must be >= 0 or None, got {smoothing!r}.")
    if lr_range is not None and not (
        len(lr_range) == 2 and all(number(v) and v > 0 for v in lr_range)
        and lr_range[0] <= lr_range[1]
    ):
        raise ValueError(
            f"`lr_range` (--lr-range) must be two positive numbers MIN <= MAX, got {lr_range!r}."
        )


_REGIME_REASONS = {
    "converging": "converging: U and S still falling while the net fits the data",
    "relaxing": "relaxing: U and S still falling, the net not fitting the data (not yet "
                "stationary)",
    "saturated": "saturated: S at the uniform-sphere level",
    "incomplete": "incomplete: its files were cut",
    "invalid": "U or S is NaN/Inf",
    "unmeasured": "too few logging points with U and S",
}


def _left_out_reason(row: pd.Series, used: set[str]) -> str:
    """Why a run is not in ``T(eta)`` (empty when it is)."""
    if row["run"] in used:
        return ""
    if row.get("regime") == "stationary" and row.get("low_ess") == True:  # noqa: E712
        return ("low ESS: its window is too correlated for S to be trusted (include it with "
                "--include-low-ess)")
    return _REGIME_REASONS.get(str(row.get("regime")), "outside --lr-range")


def _known_temperatures(runs: Iterable[RunData]) -> dict[float, float]:
    """``{lr: T}`` for runs of the known-temperature problem (``model: langevin`` with its
    ``noise_std`` in the hyperparameters): ``T = lr sigma^2 / 2``."""
    out = {}
    for run in runs:
        sigma = _number(run.hparams.get("noise_std"))
        if run.hparams.get("model") == "langevin" and sigma is not None and run.lr is not None:
            out[run.lr] = run.lr * sigma**2 / 2.0
    return out


def _one_row_per_lr(chosen: pd.DataFrame, messages: list[str]) -> pd.DataFrame:
    """Runs that share a learning rate (seeds) averaged into one row (``U``, ``S`` means;
    ``n_runs`` counts them): the temperature construction needs distinct learning rates."""
    if chosen.empty:
        return chosen.assign(n_runs=pd.Series(dtype=int))
    counts = chosen.groupby("lr")["run"].count()
    several = counts[counts > 1]
    if len(several) and several.nunique() == 1 and len(several) == len(counts):
        messages.append(f"every learning rate: {several.iloc[0]} runs (seeds) averaged into "
                        "one T(eta) row")
    else:
        for lr, n in several.items():
            messages.append(f"lr={lr:.3g}: {n} runs (seeds) averaged into one T(eta) row")
    grouped = chosen.groupby("lr", as_index=False).agg(
        U=("U", "mean"), S=("S", "mean"), regime=("regime", "first"), n_runs=("run", "count"))
    return grouped.sort_values("lr").reset_index(drop=True)


def _fit_rows(temperature: pd.DataFrame) -> pd.DataFrame:
    """The rows the power law is fitted to: valid, with both bracket bounds (the end rows
    have a one-sided bracket, a chord slope, biased)."""
    return temperature[temperature["valid"] & temperature["T_lo"].notna()
                       & temperature["T_hi"].notna()]


def _power_law_or_none(temperature: pd.DataFrame) -> tuple[float, float] | None:
    ok = _fit_rows(temperature)
    if len(ok) < MIN_FIT_ROWS:
        return None
    try:
        return fit_power_law(ok["lr"], ok["T"])
    except ValueError:
        return None


def _intervals(chosen_runs: pd.DataFrame, resampled: dict[str, np.ndarray], eps: float,
               smoothing: float | None, level: float, messages: list[str]
               ) -> tuple[SeedIntervals | None, str | None]:
    """The intervals of ``T(eta)`` and the exponent: over seeds where the runs have 2 or
    more, else from the runs' tail bootstraps; ``(None, None)`` (said in ``messages``) when
    neither is possible."""
    def infer(rows: pd.DataFrame) -> pd.DataFrame:
        return infer_temperature(rows["lr"], rows["U"], rows["S"], eps=eps, smoothing=smoothing)

    if "seed" in chosen_runs and chosen_runs["seed"].nunique() >= 2:
        return seed_intervals(chosen_runs, infer, _power_law_or_none, level=level), "seeds"
    short = [name for name in chosen_runs["run"] if name not in resampled]
    if short:
        which = ("no run's tail holds that many" if len(short) == len(chosen_runs)
                 else f"{', '.join(short)} hold fewer")
        messages.append(
            "T_ci_lo/T_ci_hi: no interval. One seed: the within-run bootstrap needs at least "
            f"{MIN_BLOCKS} independent blocks (entropy windows) in each run's tail, and "
            f"{which} (runs.csv: blocks). Run seeds (--seeds 0 1 2), train longer, or "
            "average a longer tail (--tail)")
        return None, None
    return bootstrap_intervals(chosen_runs, resampled, infer, _power_law_or_none,
                               level=level), "bootstrap"


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


@dataclass
class ReportResult:
    """What :func:`make_report` produced: the tables, the fit, the figure paths and a
    message per problem."""

    runs: pd.DataFrame
    temperature: pd.DataFrame
    power_law: tuple[float, float] | None
    figures: list[Path]
    messages: list[str]
    #: what ``fit.json`` holds: ``b, a, a_ci_lo, a_ci_hi, level, rows, n_seeds`` (``None``
    #: without a power law)
    fit: dict[str, Any] | None = None


def window_spec(run: RunData) -> WindowSpec | None:
    """The run's :class:`~thermo_lightning.meter.WindowSpec` as the callback wrote it (in
    ``run.json``'s ``window_spec`` or Lightning's ``hparams.yaml``), or ``None``."""
    spec = run.info.get("window_spec")
    return WindowSpec.from_hparams(spec if isinstance(spec, dict) else run.hparams)


def _uniform_reference(runs: Iterable[RunData], estimator_default: str = "knn_graph"
                       ) -> tuple[float | None, int | None]:
    """The estimator's value for uniform points on the run's sphere at its ``(N, D, k)``:
    from the run's window spec (radius included), else from older sweeps' ``run.json``."""
    for run in runs:
        spec = window_spec(run)
        if spec is not None:
            if spec.radius is None or spec.sketch_dim is not None or spec.window <= spec.k[0]:
                return None, None  # no sphere, or a sketch: no uniform reference
            try:
                s_uni = uniform_sphere_knn_entropy(spec.window, spec.num_parameters, spec.k[0],
                                                   estimator=spec.estimator, dim=spec.dim,
                                                   radius=spec.radius)
            except ValueError:  # an estimator this process has not registered
                return None, None
            return float(s_uni), spec.dim
        hp, info = run.hparams, run.info
        n_feat, dim = _number(info.get("num_parameters")), _number(info.get("entropy_dim"))
        ks = hp.get("k")
        window, k0 = _number(hp.get("window")), _number(ks[0] if isinstance(ks, list) and ks
                                                       else ks)
        if n_feat and dim and window and k0:
            if int(window) <= int(k0) or min(n_feat, dim, window, k0) < 1:
                return None, None
            k0 = int(k0)
            estimator = hp.get("estimator", estimator_default)
            if estimator not in ("knn_graph", "kozachenko_leonenko"):
                return None, None
            s_uni = uniform_sphere_knn_entropy(int(window), int(n_feat), k0,
                                               estimator=estimator, dim=int(dim))
            return float(s_uni), int(dim)
    return None, None


def make_report(
    logdir: str | Path,
    out: str | Path,
    *,
    tail: float = 0.15,
    eps: float = 0.0,
    smoothing: float | None = 0.3,
    lr_range: tuple[float, float] | None = None,
    force: bool = False,
    tensorboard: bool = True,
    include_low_ess: bool = False,
    ci: float = 0.95,
) -> ReportResult:
    """Read the runs under ``logdir`` and write the report into ``out``.

    Writes ``temperature.csv`` (``lr, U, S, T, T_lo, T_hi, valid, regime`` and more; the
    power law ``T = b lr^a`` is fitted to the valid rows with both bounds),
    ``runs.csv`` (one row per run), PNG figures and, with ``tensorboard``, a TensorBoard folder
    ``out/tensorboard`` with the same figures and an hparams table.

    Args:
        tail: fraction of the logging points (with an entropy) averaged per run.
        eps, smoothing: passed to :func:`~thermo_lightning.functional.infer_temperature`.
        lr_range: use the runs with ``lr`` in this closed range for ``T(eta)`` instead of the
            automatically chosen stationary ones.
        force: overwrite existing report files in ``out``.
        tensorboard: also write ``out/tensorboard``.
        include_low_ess: keep stationary runs whose window has a low effective sample size
            (``low_ess``: ESS below a quarter of the window) in ``T(eta)``; by default they are
            left out, with their reason.
        ci: level of the intervals over seeds (``T_ci_lo``, ``T_ci_hi`` in
            ``temperature.csv``; ``a_ci_lo``, ``a_ci_hi`` in ``fit.json``): Student's ``t``
            over the seeds' own ``T(eta)`` and exponents (:mod:`thermo_lightning.intervals`);
            ``NaN`` with one seed.

    Raises:
        FileNotFoundError: ``logdir`` is missing or holds no runs.
        FileExistsError: ``out`` already holds a report and ``force`` is false.
    """
    from thermo_lightning import figures as fig

    _check_report_arguments(tail, eps, smoothing, lr_range)
    if not (isinstance(ci, float | int) and not isinstance(ci, bool) and 0 < ci < 1):
        raise ValueError(f"`ci` (--ci) must be a level in (0, 1), got {ci!r}.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; the report needs a folder there.")
    existing = [name for name in OUTPUTS if (out / name).exists()]
    if existing and not force:
        raise FileExistsError(
            f"{out} already holds a report ({', '.join(existing)}); pass force=True (--force) "
            "to overwrite it or choose another --out."
        )
    folders = find_runs(logdir)
    if not folders:
        raise FileNotFoundError(f"no runs found under {logdir} (no run.json, history.csv, "
                                "TensorBoard events or metrics.csv).")
    messages: list[str] = []
    runs: list[RunData] = []
    root = Path(logdir)
    for folder in folders:
        # runs named by their path under the log folder: lightning_logs/version_0 and
        # lightning_logs/version_1 stay apart
        name = folder.relative_to(root).as_posix() if folder != root else folder.name
        try:
            run = read_run(folder, name=name)
        except Exception as err:  # an unreadable run must not stop the report
            messages.append(f"{name}: unreadable ({type(err).__name__}: {err})")
            continue
        for problem in run.problems:
            messages.append(f"{run.name}: {problem}")
        runs.append(run)
    usable = [r for r in runs if r.lr is not None and not r.history.empty]
    s_uniform, dim = _uniform_reference(usable)
    rows = []
    resampled: dict[str, np.ndarray] = {}  # run -> (draws, 2) bootstrap tail means of U, S
    for run in usable:
        row = summarize_run(run, tail=tail)
        if "problem" in row:
            messages.append(f"{run.name}: {row['problem']}")
        if "U" in row:
            if not (math.isfinite(row["U"]) and math.isfinite(row["S"])):
                messages.append(f"{run.name}: U or S is NaN/Inf; left out of T(eta)")
                row["regime"] = "invalid"
            elif run.info.get("incomplete"):
                row["regime"] = "incomplete"
            else:
                row["regime"] = classify_regime(
                    row["U_slope_t"], row["S_slope_t"], row["S"], s_uniform, dim,
                    u_mean=row["U"], u_random=row.get("U_random"),
                    points=row["tail_points"], train_acc=row.get("train_acc"))
        else:  # too few logged points to measure the tail
            row["regime"] = "unmeasured"
        spec = window_spec(run)
        if spec is not None and "ess" in row:
            row["window"] = spec.window
            row["low_ess"] = bool(row["ess"] < LOW_ESS_FRACTION * spec.window)
            if row["low_ess"]:
                messages.append(f"{run.name}: low ESS ({row['ess']:.0f} of {spec.window}); the "
                                "window is too correlated for S to be trusted (S biased low); "
                                "left out of T(eta) unless --include-low-ess. Train longer, "
                                "or use a smaller window (fewer snapshots, farther apart; "
                                "with stride='auto')")
        if "U" in row and row["regime"] != "invalid":
            boot = tail_bootstrap_of(run, tail)
            if boot is not None:
                row["blocks"] = boot.blocks
                if boot.means is not None:
                    row["U_se"], row["S_se"] = (float(v) for v in boot.se)
                    resampled[run.name] = boot.means
        row["path"] = str(run.path)
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values("lr").reset_index(drop=True)
    if s_uniform is not None:
        table["S_uniform"] = s_uniform

    # T(eta) on the stationary runs (or the given LR range)
    temperature = pd.DataFrame(columns=["lr", "U", "S", "T", "T_lo", "T_hi", "valid", "regime"])
    power_law = None
    measured = table.dropna(subset=["U", "S"]) if {"U", "S"} <= set(table.columns) else table
    if "regime" in measured:
        measured = measured[measured["regime"] != "invalid"]
    if lr_range is not None:
        chosen = measured[(measured["lr"] >= lr_range[0]) & (measured["lr"] <= lr_range[1])]
    elif "regime" in measured:
        chosen = measured[measured["regime"] == "stationary"]
        if not include_low_ess and "low_ess" in chosen:
            chosen = chosen[chosen["low_ess"] != True]  # noqa: E712 (NaN: not measured)
    else:  # an empty table: no usable run
        chosen = measured.iloc[0:0]
    if not table.empty:
        table["reason"] = [_left_out_reason(r, set(chosen["run"])) for _, r in table.iterrows()]
    chosen_runs = chosen
    chosen = _one_row_per_lr(chosen, messages)
    fit: dict[str, Any] | None = None
    if len(chosen) >= 3:
        temperature = infer_temperature(chosen["lr"], chosen["U"], chosen["S"], eps=eps,
                                        smoothing=smoothing)
        temperature["regime"] = chosen["regime"].to_numpy()
        temperature["n_runs"] = chosen["n_runs"].to_numpy()
        truth = _known_temperatures(usable)
        if truth:
            temperature["T_true"] = [truth.get(float(lr), math.nan) for lr in temperature["lr"]]
        ok = _fit_rows(temperature)
        if len(ok) < MIN_FIT_ROWS:
            messages.append(
                f"power law: not fitted; it uses the valid rows with both bracket bounds (the "
                f"interior learning rates; the end rows are one-sided chords), found {len(ok)}, "
                f"needs {MIN_FIT_ROWS}")
        else:
            try:
                power_law = fit_power_law(ok["lr"], ok["T"])
            except ValueError as err:
                messages.append(f"power law: {err}")
        spread, ci_method = _intervals(chosen_runs, resampled, eps, smoothing, ci, messages)
        for col in ("T_ci_lo", "T_ci_hi"):
            temperature[col] = ([float(spread.temperature.set_index("lr")[col].get(float(lr),
                                                                                   math.nan))
                                 for lr in temperature["lr"]] if spread is not None
                                else math.nan)
        temperature["ci_method"] = ci_method or ""
        temperature["U_se"], temperature["S_se"] = _standard_errors(chosen_runs,
                                                                    temperature["lr"])
        n_seeds = int(chosen["n_runs"].max())
        if power_law is not None:
            a_ci = spread.a_ci if spread is not None else (math.nan, math.nan)
            fit = {"b": power_law[0], "a": power_law[1], "a_ci_lo": a_ci[0],
                   "a_ci_hi": a_ci[1], "level": ci, "ci_method": ci_method,
                   "rows": [float(v) for v in ok["lr"]], "n_seeds": n_seeds,
                   "seed_exponents": ({str(k): v for k, v in spread.exponents.items()}
                                      if ci_method == "seeds" else {})}
        bad = temperature[~temperature["valid"]]
        for _, r in bad.iterrows():
            messages.append(f"lr={r['lr']:.3g}: T not valid ({r['reason']})")
    else:
        messages.append(
            f"T(eta) needs at least 3 stationary learning rates, found {len(chosen)}; "
            "runs.csv and the per-run figures are still written"
            + ("" if lr_range else " (runs.csv says why each other run was left out; "
               "--lr-range uses runs of any regime, --include-low-ess keeps low-ESS ones)")
        )

    # local temperature along converging runs
    local = {}
    for run in usable:
        conv = table[(table["run"] == run.name)]
        if len(conv) and conv["regime"].iloc[0] == "converging":
            h = run.history.dropna(subset=[U, S])
            steps = h["step"].to_numpy(float)
            local[run.lr] = (steps, trend_temperature(steps, h[U].to_numpy(float),
                                                      h[S].to_numpy(float)))

    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "runs.csv", index=False)
    temperature.to_csv(out / "temperature.csv", index=False)
    if fit is not None:
        (out / "fit.json").write_text(json.dumps(fit, indent=2, allow_nan=True))
    rendered = fig.render_report_figures(table, temperature, power_law, local, fit)
    figures = fig.save_figures(rendered, out)
    if tensorboard:
        fig.write_tensorboard(out / "tensorboard", rendered, usable, table, temperature,
                              force=force)
    (out / "messages.txt").write_text("\n".join(messages) + ("\n" if messages else ""))
    return ReportResult(table, temperature, power_law, figures, messages, fit)
