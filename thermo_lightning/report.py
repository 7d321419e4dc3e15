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
from thermo_lightning.tensorboard_view import WRITEBACK_SUFFIX

__all__ = [
    "REGIMES",
    "ReportResult",
    "RunData",
    "batch_size_collapse",
    "classify_regime",
    "final_stride_points",
    "find_runs",
    "free_energy_along_runs",
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

    @property
    def axes(self) -> dict[str, Any]:
        """The run's values on the sweep's axes (``run.json``'s ``axes``: ``lr``, the grid's
        axes, ``seed``); older runs: ``lr`` (and ``seed`` when set)."""
        axes = self.info.get("axes")
        if isinstance(axes, dict) and axes:
            return dict(axes)
        out: dict[str, Any] = {"lr": self.lr}
        if _number(self.hparams.get("seed")) is not None:
            out["seed"] = int(self.hparams["seed"])
        return out


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


#: the tag of an hparams session (Lightning's TensorBoardLogger writes one with its default
#: ``default_hp_metric=True``)
_SESSION_TAG = "_hparams_/session_start_info"


def _read_tensorboard(folder: Path, tags: Sequence[str], seen: set[str] | None = None
                      ) -> pd.DataFrame:
    """The ``tags``' scalars by step; adds to ``seen`` the tags of ``_SESSION_TAG`` met."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    wanted = set(tags)
    rows: dict[int, dict[str, float]] = {}
    for events in sorted(folder.rglob("events.out.tfevents*")):
        if events.name.endswith(WRITEBACK_SUFFIX):  # what an earlier report wrote back
            continue
        for event in EventFileLoader(str(events)).Load():
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                if value.tag not in wanted:
                    if value.tag == _SESSION_TAG and seen is not None:
                        seen.add(value.tag)
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
        seen: set[str] = set()
        history = _read_tensorboard(folder, tags, seen)
        if seen:  # the run's logger wrote an hparams session: TensorBoard shows that one
            info = {**info, "own_hparams_session": True}
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


def final_stride_points(run: RunData) -> pd.DataFrame:
    """The run's logging points with ``U`` and ``S`` at its final stride: the part after the
    pilot and the stride changes, the tail is the last share of (empty when none)."""
    part = _tail(run, 1.0, 1) if not run.history.empty and {U, S} <= set(run.history) else ""
    return part if isinstance(part, pd.DataFrame) else pd.DataFrame(columns=["step", U, S])


def _window_span(run: RunData, part: pd.DataFrame) -> float | None:
    """Steps one entropy window covers at the tail, ``window * stride`` (``None``: unknown)."""
    spec = window_spec(run)
    if spec is None:
        return None
    stride = (float(part[keys.STRIDE].iloc[-1]) if keys.STRIDE in part
              and part[keys.STRIDE].notna().any() else _number(spec.stride))
    return None if stride is None else spec.window * stride


def tail_bootstrap_of(run: RunData, tail: float = 0.15, min_points: int = 5, *,
                      draws: int = 200, seed: int = 0) -> TailBootstrap | None:
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
    for axis, value in run.axes.items():  # the grid's other axes, one column each
        if axis not in ("lr", "seed"):
            row[axis] = value
    truth = _known_temperature(run)
    if truth is not None:
        row["T_true"] = truth
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


def _known_temperature(run: RunData) -> float | None:
    """``T = lr sigma^2 / 2`` for a run of the known-temperature problem (``model:
    langevin``), with ``sigma`` its gradient noise (``gradient_noise_std``: ``noise_std /
    sqrt(batch_size)``; older runs: ``noise_std``); else ``None``."""
    sigma = _number(run.hparams.get("gradient_noise_std", run.hparams.get("noise_std")))
    if run.hparams.get("model") == "langevin" and sigma is not None and run.lr is not None:
        return run.lr * sigma**2 / 2.0
    return None


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


def _power_law(temperature: pd.DataFrame, name: str = "learning rates"
               ) -> tuple[tuple[float, float] | None, str]:
    """The power law ``(b, a)`` over :func:`_fit_rows`, or ``None`` and why not."""
    ok = _fit_rows(temperature)
    if len(ok) < MIN_FIT_ROWS:
        return None, (f"power law: not fitted; it uses the valid rows with both bracket bounds "
                      f"(the interior {name}; the end rows are one-sided chords), found "
                      f"{len(ok)}, needs {MIN_FIT_ROWS}")
    try:
        return fit_power_law(ok["lr"], ok["T"]), ""
    except ValueError as err:
        return None, f"power law: {err}"


def _power_law_or_none(temperature: pd.DataFrame) -> tuple[float, float] | None:
    return _power_law(temperature)[0]


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
        need = (chosen_runs["tail_for_bootstrap"].max() if "tail_for_bootstrap" in chosen_runs
                else math.nan)
        hint = (f"; --tail {min(1.0, math.ceil(need * 100) / 100):.2f} would give every run "
                "enough (a longer tail "
                "also averages more of the run: check that it is stationary there)"
                if math.isfinite(need) and need <= 1 else
                "; not even the whole run at its final stride holds that many" if
                math.isfinite(need) else "")
        messages.append(
            "T_ci_lo/T_ci_hi: no interval. One seed: the within-run bootstrap needs at least "
            f"{MIN_BLOCKS} independent blocks (entropy windows) in each run's tail, and "
            f"{which} (runs.csv: blocks){hint}. Run seeds for intervals (--seeds 0 1 2): at "
            "the default window a run's tail spans about one window, whatever its length")
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
        t = _number(temps.get(run.name)) if run.name in temps.index else None
        h = run.history
        if t is None or h.empty or U not in h or S not in h:
            continue
        points = h.dropna(subset=[U, S])
        frames.append(pd.DataFrame({"run": run.name, "step": points["step"].to_numpy(),
                                    "U": points[U].to_numpy(), "S": points[S].to_numpy(),
                                    "T": t, "F": (points[U] - t * points[S]).to_numpy()}))
    if not frames:
        return pd.DataFrame(columns=["run", "step", "U", "S", "T", "F"])
    return pd.concat(frames, ignore_index=True)


def _some(names: Sequence[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def _json_ready(value: Any) -> Any:
    """``value`` with NaN/Inf as ``null`` (strict JSON)."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _axis_columns(table: pd.DataFrame, runs: Sequence[RunData]) -> list[str]:
    """The sweep's axes, ``lr`` first: every axis a run names, plus ``seed`` when the table
    has one."""
    axes: dict[str, None] = {"lr": None}
    for run in runs:
        axes.update(dict.fromkeys(run.axes))
    if "seed" in table:
        axes["seed"] = None
    return [a for a in axes if a in table.columns]


def _temperatures(
    chosen: pd.DataFrame,
    along: str,
    groups: list[str],
    resampled: dict[str, np.ndarray],
    *,
    eps: float,
    smoothing: float | None,
    ci: float,
    messages: list[str],
) -> tuple[pd.DataFrame, tuple[float, float] | None, dict[str, Any] | None]:
    """``T`` along ``along`` for every group of the other axes (one group without them):
    the temperature table (group columns first), the power law and ``fit.json``'s content
    (with several groups: no single power law, and ``fit`` holds one entry per group)."""
    empty = pd.DataFrame(columns=[*groups, along, "U", "S", "T", "T_lo", "T_hi", "valid",
                                  "regime"])
    if not groups:
        t, law, fit = _temperature_one(chosen, along, resampled, eps, smoothing, ci, messages)
        return (empty if t is None else t), law, fit
    tables, fits = [], {}
    said: dict[str, list[str]] = {}  # message -> the groups that gave it
    for key, runs in chosen.groupby(groups, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        label = ",".join(f"{g}={_label_value(v)}" for g, v in zip(groups, key, strict=True))
        own: list[str] = []
        t, _, fit = _temperature_one(runs, along, resampled, eps, smoothing, ci, own)
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
    eps: float,
    smoothing: float | None,
    ci: float,
    messages: list[str],
) -> tuple[pd.DataFrame | None, tuple[float, float] | None, dict[str, Any] | None]:
    """``T`` along ``along`` over ``runs`` (one group): the bracket construction on the runs
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
        what = ("T(eta) needs at least 3 stationary learning rates" if along == "lr" else
                f"T({along}) needs at least 3 stationary values of {along}")
        messages.append(
            f"{what}, found "
            f"{len(chosen)}; runs.csv and the per-run figures are still written (runs.csv "
            "says why each other run was left out; --lr-range uses runs of any regime, "
            "--include-low-ess keeps low-ESS ones)")
        return None, None, None
    fit = None
    name = "learning rates" if along == "lr" else along
    temperature = infer_temperature(chosen["lr"], chosen["U"], chosen["S"], eps=eps,
                                    smoothing=smoothing)
    temperature["regime"] = chosen["regime"].to_numpy()
    temperature["n_runs"] = chosen["n_runs"].to_numpy()
    if "T_true" in chosen_runs and chosen_runs["T_true"].notna().any():
        truth = chosen_runs.groupby("lr")["T_true"].mean()
        temperature["T_true"] = [float(truth.get(x, math.nan)) for x in temperature["lr"]]
    power_law, why_not = _power_law(temperature, name)
    if why_not:
        messages.append(why_not)
    spread, ci_method = _intervals(chosen_runs, resampled, eps, smoothing, ci, messages)
    bounds = spread.temperature.set_index("lr") if spread is not None else None
    for col in ("T_ci_lo", "T_ci_hi"):
        temperature[col] = ([float(bounds[col].get(float(x), math.nan))
                             for x in temperature["lr"]] if bounds is not None else math.nan)
    temperature["ci_method"] = ci_method or ""
    temperature["U_se"], temperature["S_se"] = _standard_errors(chosen_runs, temperature["lr"])
    if power_law is not None:
        a_ci = spread.a_ci if spread is not None else (math.nan, math.nan)
        fit = {"b": power_law[0], "a": power_law[1], "a_ci_lo": a_ci[0], "a_ci_hi": a_ci[1],
               "level": ci, "ci_method": ci_method,
               "rows": [float(v) for v in _fit_rows(temperature)["lr"]],
               "n_seeds": int(chosen["n_runs"].max()),
               "seed_exponents": ({str(k): v for k, v in spread.exponents.items()}
                                  if spread is not None and ci_method == "seeds" else {})}
        if along != "lr":
            fit["along"] = along
    for _, r in temperature[~temperature["valid"]].iterrows():
        messages.append(f"{along}={r['lr']:.3g}: T not valid ({r['reason']})")
    if along != "lr":
        temperature = temperature.rename(columns={"lr": along})
        if pd.api.types.is_integer_dtype(runs[along]):  # batch sizes stay integers
            temperature[along] = temperature[along].round().astype(runs[along].dtype)
    return temperature, power_law, fit


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

    ok = _fit_rows(temperature)
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
    #: without a power law; with groups, ``{"along": ..., "groups": {label: fit}}``)
    fit: dict[str, Any] | None = None
    #: what ``collapse.json`` holds (an ``lr`` x ``batch_size`` grid): :func:`batch_size_collapse`
    collapse: dict[str, Any] | None = None


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
    out: str | Path | None = None,
    *,
    tail: float = 0.15,
    eps: float = 0.0,
    smoothing: float | None = 0.3,
    lr_range: tuple[float, float] | None = None,
    force: bool = False,
    tensorboard: bool = True,
    include_low_ess: bool = False,
    ci: float = 0.95,
    along: str = "lr",
) -> ReportResult:
    """Read the runs under ``logdir`` and write the report into ``out`` (default
    ``logdir/report``).

    Writes ``temperature.csv`` (``lr, U, S, T, T_lo, T_hi, valid, regime`` and more; the
    power law ``T = b lr^a`` is fitted to the valid rows with both bounds),
    ``runs.csv`` (one row per run), ``free_energy.csv`` (``F = U - T S`` along every run
    with a temperature: :func:`free_energy_along_runs`), PNG figures and, with
    ``tensorboard``, the TensorBoard view (:mod:`thermo_lightning.tensorboard_view`): the
    report's entry ``out/tensorboard`` (figures, ``T(eta)`` and the free-energy family as
    scalars, the hparams table's columns) and, in each run's own TensorBoard folder, its
    ``thermo/F``, stationary means and hparams session.

    Args:
        tail: fraction of the logging points (with an entropy) averaged per run.
        eps, smoothing: passed to :func:`~thermo_lightning.functional.infer_temperature`.
        lr_range: use the runs with ``lr`` in this closed range for ``T(eta)`` instead of the
            automatically chosen stationary ones.
        force: overwrite existing report files in ``out``.
        tensorboard: also write the TensorBoard view (``out/tensorboard`` and one event
            file per run, replaced by the next report).
        include_low_ess: keep stationary runs whose window has a low effective sample size
            (``low_ess``: ESS below a quarter of the window) in ``T(eta)``; by default they are
            left out, with their reason.
        ci: level of the intervals (``T_ci_lo``, ``T_ci_hi`` in ``temperature.csv``;
            ``a_ci_lo``, ``a_ci_hi`` in ``fit.json``): over the seeds' own ``T(eta)`` and
            exponents, or one seed's within-run bootstrap (:mod:`thermo_lightning.intervals`).
        along: the sweep axis ``T`` is inferred along (default ``lr``); the sweep's other
            axes (but ``seed``) become groups, each with its own ``T`` rows (a ``group``
            column and one column per axis in ``temperature.csv``). An ``lr`` x
            ``batch_size`` grid also gets the ``eta / B`` collapse (``collapse.json``).

    Raises:
        FileNotFoundError: ``logdir`` is missing or holds no runs.
        FileExistsError: ``out`` already holds a report and ``force`` is false.
    """
    from thermo_lightning import figures as fig
    from thermo_lightning import tensorboard_view as board

    _check_report_arguments(tail, eps, smoothing, lr_range)
    out = Path(logdir) / "report" if out is None else out
    if not (isinstance(ci, float | int) and not isinstance(ci, bool) and 0 < ci < 1):
        raise ValueError(f"`ci` (--ci) must be a level in (0, 1), got {ci!r}.")
    if along == "seed":
        raise ValueError("`along` (--along) cannot be seed: seeds are repeats of one "
                         "setting (they give the intervals), not an axis to infer T along.")
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
                fate = ("kept in T(eta) (--include-low-ess)" if include_low_ess else
                        "left out of T(eta) unless --include-low-ess")
                messages.append(f"{run.name}: low ESS ({row['ess']:.0f} of {spec.window}); the "
                                "window is too correlated for S to be trusted (S biased low); "
                                f"{fate}. Train longer, or use a smaller window (fewer "
                                "snapshots, farther apart; with stride='auto')")
        if "U" in row and row["regime"] != "invalid":
            boot = tail_bootstrap_of(run, tail)
            if boot is not None:
                row["blocks"] = boot.blocks
                # the --tail that would hold MIN_BLOCKS blocks of this length
                row["tail_for_bootstrap"] = (MIN_BLOCKS * boot.block * tail
                                             / max(1, row["tail_points"]))
                if boot.means is not None:
                    row["U_se"], row["S_se"] = (float(v) for v in boot.se)
                    resampled[run.name] = boot.means
        row["path"] = str(run.path)
        rows.append(row)
    table = pd.DataFrame(rows)
    if "U" in table:  # empty where the tail holds too few blocks for the bootstrap
        for col in ("U_se", "S_se"):
            if col not in table:
                table[col] = math.nan
    axes = _axis_columns(table, usable) if not table.empty else ["lr"]
    if not table.empty:  # by learning rate, then the other axes, then seed
        order = ["lr", *[c for c in axes if c not in ("lr", "seed")],
                 *(["seed"] if "seed" in table else [])]
        table = table.sort_values(order, kind="stable").reset_index(drop=True)
    if s_uniform is not None:
        table["S_uniform"] = s_uniform

    # T(eta) on the stationary runs (or the given LR range)
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
    if along not in axes:
        raise ValueError(f"`along` (--along) must be one of the sweep's axes {axes}, got "
                         f"{along!r}.")
    groups = [a for a in axes if a not in (along, "seed")]
    temperature, power_law, fit = _temperatures(chosen, along, groups, resampled, eps=eps,
                                                smoothing=smoothing, ci=ci, messages=messages)
    collapse = None
    if along == "lr" and groups == ["batch_size"] and len(temperature):
        collapse = batch_size_collapse(temperature, level=ci)
        if collapse is not None:
            messages.append(collapse["verdict"])
    if len(temperature) and not table.empty:  # each run's T (its group's row) in runs.csv
        keys = [*groups, along]
        cols = [c for c in ("T", "T_ci_lo", "T_ci_hi") if c in temperature]
        table = table.merge(temperature[keys + cols], on=keys, how="left")
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
    curves = free_energy_along_runs(usable, table)
    if len(curves):
        curves.to_csv(out / "free_energy.csv", index=False)
    temperature.to_csv(out / "temperature.csv", index=False)
    if fit is not None:
        (out / "fit.json").write_text(json.dumps(_json_ready(fit), indent=2))
    if collapse is not None:
        (out / "collapse.json").write_text(json.dumps(_json_ready(collapse), indent=2))
    rendered = fig.render_report_figures(table, temperature, power_law, local, fit,
                                         along=along, collapse=collapse)
    for name in fig.FIGURE_NAMES:  # an earlier report's figure this one has no data for
        if name not in rendered:
            (out / f"{name}.png").unlink(missing_ok=True)
    figures = fig.save_figures(rendered, out)
    if tensorboard:
        board.write_report_entry(out / "tensorboard", figures, usable, table, temperature,
                                 along=along, force=force)
        no_board = board.write_run_entries(usable, table)
        if no_board:
            messages.append(f"{len(no_board)} run(s) have no TensorBoard log ({_some(no_board)})"
                            ": their F is in free_energy.csv only")
        own = [r.name for r in usable if r.info.get("own_hparams_session")]
        if own:
            messages.append(
                f"{len(own)} run(s) hold their logger's own hparams session ({_some(own)}; "
                "Lightning's TensorBoardLogger writes one with its default "
                "default_hp_metric=True): TensorBoard's HParams tab shows that one, without the "
                "report's columns (regime, T, ...); their F and stationary means are written. "
                "Log with TensorBoardLogger(..., default_hp_metric=False) to get the report's "
                "columns")
    (out / "messages.txt").write_text("\n".join(messages) + ("\n" if messages else ""))
    return ReportResult(table, temperature, power_law, figures, messages, fit, collapse)
