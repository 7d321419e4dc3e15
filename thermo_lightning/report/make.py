"""``make_report``: a folder of runs (a sweep, or Lightning's own log folders) into the
paper's results, as a short sequence of named stages.

1. :func:`_read` every run (:func:`~thermo_lightning.runs.read.read_run`);
2. :func:`_summarize` each: tail means, regime, low-ESS flag, tail bootstrap
   (:mod:`.summary`);
3. :func:`_select` the runs of ``T(eta)``: the stationary ones (or a given LR range), each
   other run with its :class:`~.summary.Exclusion`;
4. :func:`~.temperature.temperatures`: ``T`` along the sweep axis per group, the power law,
   the intervals; the batch-size collapse of an ``lr`` x ``batch_size`` grid;
5. :func:`_write_tables`, :func:`_draw` and :func:`_write_tensorboard`.

Reading and the tables import neither torch nor Lightning; the uniform-sphere reference
(stage 2) and the TensorBoard writer (stage 5) load torch when they run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from thermo_lightning import keys
from thermo_lightning.functional.temperature import trend_temperature
from thermo_lightning.report import notes
from thermo_lightning.report.output import ReportOutput
from thermo_lightning.report.references import uniform_references
from thermo_lightning.report.summary import (
    Exclusion,
    Regime,
    RunSummary,
    classify,
    final_stride_points,
    summarize_run,
)
from thermo_lightning.report.temperature import (
    Construction,
    batch_size_collapse,
    copies_of,
    free_energy_along_runs,
    temperatures,
)
from thermo_lightning.runs.layout import (
    REPORT_DIR,
    RUNS_TABLE,
    TEMPERATURE_TABLE,
    find_runs,
)
from thermo_lightning.runs.read import RunData, planned_runs, read_run
from thermo_lightning.runs.resumed import join_resumed

__all__ = ["ReportResult", "make_report"]

U, S = keys.ENERGY, keys.ENTROPY


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
    #: each run's summary (``runs.csv``'s rows as read, with their regime and, for a run not
    #: in ``T(eta)``, its :class:`~.summary.Exclusion`), by run name
    summaries: dict[str, RunSummary] = field(default_factory=dict)


@dataclass(frozen=True)
class _Settings:
    """``make_report``'s arguments, checked (:func:`_check`)."""

    tail: float
    eps: float
    smoothing: float | None
    lr_range: tuple[float, float] | None
    include_low_ess: bool
    ci: float
    along: str


def _check(settings: _Settings) -> None:
    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    s = settings
    if not (number(s.tail) and 0 < s.tail <= 1):
        raise ValueError(f"`tail` (--tail) must be a fraction in (0, 1], got {s.tail!r}.")
    if not (number(s.eps) and s.eps >= 0):
        raise ValueError(f"`eps` (--eps) must be a number >= 0, got {s.eps!r}.")
    if s.smoothing is not None and not (number(s.smoothing) and s.smoothing >= 0):
        raise ValueError(f"`smoothing` (--smoothing) must be >= 0 or None, got "
                         f"{s.smoothing!r}.")
    if s.lr_range is not None and not (
        len(s.lr_range) == 2 and all(number(v) and v > 0 for v in s.lr_range)
        and s.lr_range[0] <= s.lr_range[1]
    ):
        raise ValueError(
            f"`lr_range` (--lr-range) must be two positive numbers MIN <= MAX, got "
            f"{s.lr_range!r}.")
    if not (number(s.ci) and 0 < s.ci < 1):
        raise ValueError(f"`ci` (--ci) must be a level in (0, 1), got {s.ci!r}.")
    if s.along == "seed":
        raise ValueError("`along` (--along) cannot be seed: seeds are repeats of one "
                         "setting (they give the intervals), not an axis to infer T along.")


# ------------------------------------------------------------------------------ stages
def _read(logdir: Path, folders: Sequence[Path], messages: list[str]) -> list[RunData]:
    """Every run in ``folders`` (:func:`~thermo_lightning.runs.layout.find_runs` of
    ``logdir``), named by its path there (``lightning_logs/version_0`` and ``.../version_1``
    stay apart, unless one is the other's fit resumed:
    :func:`~thermo_lightning.runs.resumed.join_resumed`); an unreadable run is said and
    skipped."""
    if not folders:
        raise FileNotFoundError(f"no runs found under {logdir} (no run.json, history.csv, "
                                "TensorBoard events or metrics.csv).")
    runs: list[RunData] = []
    plans: dict[Path, set[str] | None] = {}
    for folder in folders:
        name = folder.relative_to(logdir).as_posix() if folder != logdir else folder.name
        sweep = folder.parent
        if sweep not in plans:
            plans[sweep] = planned_runs(sweep)
        if plans[sweep] is not None and folder.name not in plans[sweep]:
            messages.append(f"{name}: not a run of the sweep in {sweep} (not in its plan.json: "
                            "a run of an earlier sweep on other axes, or one started by hand "
                            "with other settings); left out")
            continue
        try:
            runs.append(read_run(folder, name=name))
        except Exception as err:  # an unreadable run must not stop the report
            messages.append(f"{name}: unreadable ({type(err).__name__}: {err})")
    for sweep, planned in plans.items():
        missing = sorted((planned or set()) - {f.name for f in folders if f.parent == sweep})
        if missing:
            messages.append(
                f"{sweep}: {len(missing)} planned run(s) never started ("
                f"{notes.name_list(missing)}; plan.json lists them, no log was found): the "
                "report has the others only. The sweep's command, run again, trains them")
    runs, joined = join_resumed(runs)  # a fit resumed into a new version_N: one run
    for run in runs:
        messages.extend(f"{run.name}: {problem}" for problem in run.problems)
    messages.extend(joined)
    return runs


def _summarize(runs: Sequence[RunData], settings: _Settings, messages: list[str]
               ) -> tuple[list[RunSummary], dict[str, np.ndarray], dict[str, tuple]]:
    """Each run's summary (tail, regime, low ESS, bootstrap); the bootstrap means by run
    (what the within-run intervals resample) and each run's uniform-sphere reference."""
    references = uniform_references(runs)
    summaries, resampled = [], {}
    for run in runs:
        summary, means = classify(summarize_run(run, tail=settings.tail), run,
                                  references[run.name],
                                  tail=settings.tail, include_low_ess=settings.include_low_ess,
                                  messages=messages)
        summaries.append(summary)
        if means is not None:
            resampled[run.name] = means
    messages.extend(notes.about_runs(summaries, settings.include_low_ess, settings.ci))
    return summaries, resampled, references


def _axis_columns(table: pd.DataFrame, runs: Sequence[RunData]) -> list[str]:
    """The sweep's axes, ``lr`` first: every axis a run names, plus ``seed`` when the table
    has one."""
    axes: dict[str, None] = {"lr": None}
    for run in runs:
        axes.update(dict.fromkeys(run.axes))
    if "seed" in table:
        axes["seed"] = None
    return [a for a in axes if a in table.columns]


def _runs_table(summaries: Sequence[RunSummary], runs: Sequence[RunData],
                references: dict[str, tuple]) -> tuple[pd.DataFrame, list[str]]:
    """``runs.csv`` (by learning rate, then the other axes, then seed) and the axes."""
    table = pd.DataFrame([s.row() for s in summaries])
    if "U" in table:  # empty where the tail holds too few blocks for the bootstrap
        for col in ("U_se", "S_se"):
            if col not in table:
                table[col] = math.nan
    axes = _axis_columns(table, runs) if not table.empty else ["lr"]
    if not table.empty:
        order = ["lr", *[c for c in axes if c not in ("lr", "seed")],
                 *(["seed"] if "seed" in table else [])]
        table = table.sort_values(order, kind="stable").reset_index(drop=True)
    s_uniform = [references[name][0] if name in references else None
                 for name in table.get("run", [])]
    if any(v is not None for v in s_uniform):  # each run's own (N, D, k) reference
        table["S_uniform"] = [math.nan if v is None else v for v in s_uniform]
        dims = [references[name][1] if name in references else None for name in table["run"]]
        s_run = table["S"] if "S" in table else pd.Series(math.nan, index=table.index)
        # (S_uniform - S) / d: how far from the uniform sphere (report.near_uniform)
        table["uniform_gap"] = [(u - s) / d if u is not None and d else math.nan
                                for u, s, d in zip(s_uniform, s_run, dims, strict=True)]
    return table, axes


def _select(table: pd.DataFrame, settings: _Settings) -> pd.DataFrame:
    """The runs of ``T(eta)``: the stationary ones (without low ESS, unless included), or
    every measured run in ``lr_range``; never a run with NaN/Inf ``U`` or ``S``."""
    if not {"U", "S"} <= set(table.columns):  # no run measured U and S
        return table.iloc[0:0]
    measured = table.dropna(subset=["U", "S"])
    if "regime" in measured:
        measured = measured[measured["regime"] != Regime.INVALID.value]
    if settings.lr_range is not None:
        lo, hi = settings.lr_range
        return measured[(measured["lr"] >= lo) & (measured["lr"] <= hi)]
    if "regime" not in measured:  # an empty table: no usable run
        return measured.iloc[0:0]
    chosen = measured[measured["regime"] == Regime.STATIONARY.value]
    if not settings.include_low_ess:
        for flag in ("low_ess", "stride_capped"):
            if flag in chosen:
                chosen = chosen[chosen[flag] != True]  # noqa: E712 (NaN: not measured)
    return chosen


def _local_temperatures(runs: Sequence[RunData], summaries: Sequence[RunSummary]
                        ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """``T(t) = dU/dS`` along each converging run (by its learning rate), over its points at
    the final stride (never across a stride change, where S jumps)."""
    local = {}
    for run, summary in zip(runs, summaries, strict=True):
        if summary.regime is Regime.CONVERGING:
            h = final_stride_points(run)
            steps = h["step"].to_numpy(float)
            local[run.lr] = (steps, trend_temperature(steps, h[U].to_numpy(float),
                                                      h[S].to_numpy(float)))
    return local


def _json_ready(value: Any) -> Any:
    """``value`` with NaN/Inf as ``null`` (strict JSON)."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_tables(out: Path, table: pd.DataFrame, curves: pd.DataFrame,
                  temperature: pd.DataFrame, fit: dict[str, Any] | None,
                  collapse: dict[str, Any] | None) -> None:
    table.to_csv(out / RUNS_TABLE, index=False)
    if len(curves):
        curves.to_csv(out / "free_energy.csv", index=False)
    temperature.to_csv(out / TEMPERATURE_TABLE, index=False)
    if fit is not None:
        (out / "fit.json").write_text(json.dumps(_json_ready(fit), indent=2))
    if collapse is not None:
        (out / "collapse.json").write_text(json.dumps(_json_ready(collapse), indent=2))


def _draw(out: Path, table: pd.DataFrame, temperature: pd.DataFrame,
          power_law: tuple[float, float] | None, local: dict[float, Any],
          fit: dict[str, Any] | None, along: str, collapse: dict[str, Any] | None
          ) -> list[Path]:
    """The PNG figures this report has data for."""
    from thermo_lightning.report import figures as fig

    rendered = fig.render_report_figures(table, temperature, power_law, local, fit,
                                         along=along, collapse=collapse)
    return fig.save_figures(rendered, out)


def _write_tensorboard(out: Path, figures: list[Path], runs: Sequence[RunData],
                       summaries: Sequence[RunSummary], table: pd.DataFrame,
                       temperature: pd.DataFrame, along: str, messages: list[str]) -> None:
    """The report's TensorBoard entry and each run's (:mod:`.tensorboard_view`)."""
    from thermo_lightning.report import tensorboard_view as board

    in_t_eta = {s.run: s.in_t_eta for s in summaries}
    board.write_report_entry(out / "tensorboard", figures, runs, table, temperature, in_t_eta,
                             along=along)
    no_board = board.write_run_entries(runs, table, in_t_eta, messages)
    if no_board:
        messages.append(f"{len(no_board)} run(s) have no TensorBoard log "
                        f"({notes.name_list(no_board)}): their F is in free_energy.csv only")
    own = [r.name for r in runs if r.own_hparams_session]
    if own:
        messages.append(
            f"{len(own)} run(s) hold their logger's own hparams session ({notes.name_list(own)}; "
            "Lightning's TensorBoardLogger writes one with its default "
            "default_hp_metric=True): TensorBoard's HParams tab shows that one, without the "
            "report's columns (regime, T, ...); their F and stationary means are written. "
            "Log with TensorBoardLogger(..., default_hp_metric=False) to get the report's "
            "columns")


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
    construction: str = "convex",
) -> ReportResult:
    """Read the runs under ``logdir`` and write the report into ``out`` (default
    ``logdir/report``).

    Writes ``temperature.csv`` (``lr, U, S, T, T_lo, T_hi, valid, regime`` and more; the
    power law ``T = b lr^a`` is fitted to the valid rows with both bounds),
    ``runs.csv`` (one row per run), ``free_energy.csv`` (``F = U - T S`` along every run
    with a temperature: :func:`~.temperature.free_energy_along_runs`), PNG figures and, with
    ``tensorboard``, the TensorBoard view (:mod:`thermo_lightning.report.tensorboard_view`):
    the report's entry ``out/tensorboard`` (figures, ``T(eta)`` and the free-energy family
    as scalars, the hparams table's columns) and, in each run's own TensorBoard folder, its
    ``thermo/F``, stationary means and hparams session.

    Args:
        tail: fraction of the logging points (with an entropy) averaged per run.
        eps, smoothing: passed to :func:`~thermo_lightning.functional.infer_temperature`
            (the bracket construction only).
        lr_range: use the runs with ``lr`` in this closed range for ``T(eta)`` instead of the
            automatically chosen stationary ones.
        force: replace the report already in ``out`` (the files its manifest lists; the
            report never touches a file it did not write: :mod:`.output`).
        tensorboard: also write the TensorBoard view (``out/tensorboard`` and one event
            file per run, replaced by the next report).
        include_low_ess: keep stationary runs whose window has a low effective sample size
            (``low_ess``: ESS below a quarter of the window), or whose stride was capped below
            half the correlation time (``stride_capped``), in ``T(eta)``; by default they are
            left out, with their reason.
        ci: level of the intervals (``T_ci_lo``, ``T_ci_hi`` in ``temperature.csv``;
            ``a_ci_lo``, ``a_ci_hi`` in ``fit.json``): over the seeds' own ``T(eta)`` and
            exponents, or one seed's within-run bootstrap
            (:mod:`thermo_lightning.report.intervals`).
        along: the sweep axis ``T`` is inferred along (default ``lr``); the sweep's other
            axes (but ``seed``) become groups, each with its own ``T`` rows (a ``group``
            column and one column per axis in ``temperature.csv``). An ``lr`` x
            ``batch_size`` grid also gets the ``eta / B`` collapse (``collapse.json``).
        construction: ``"convex"`` (default): ``T`` from the most likely convex, increasing
            ``U(S)`` given the points' standard errors
            (:func:`~thermo_lightning.functional.convex_temperature`); a row is invalid only
            where the points reject convexity beyond their errors. ``"bracket"``: the
            paper's construction (:func:`~thermo_lightning.functional.infer_temperature`),
            for comparisons with its numbers. Either way the end rows (one chord) are
            marked ``end``, not valid and not fitted.

    Raises:
        FileNotFoundError: ``logdir`` is missing or holds no runs.
        FileExistsError: ``out`` already holds a report and ``force`` is false, or holds
            files with the report's names that no report wrote.
        ValueError: ``out`` is the folder of runs, or a run's folder or inside one.
    """
    settings = _Settings(tail, eps, smoothing, lr_range, include_low_ess, ci, along)
    _check(settings)
    how = Construction(construction, eps=eps, smoothing=smoothing)  # checks `construction`
    logdir = Path(logdir)
    out = Path(logdir / REPORT_DIR if out is None else out)
    folders = find_runs(logdir)
    output = ReportOutput(out, logdir, folders, force)  # checked before anything is read
    messages: list[str] = []
    runs = [r for r in _read(logdir, folders, messages)
            if r.lr is not None and not r.history.empty]
    summaries, resampled, references = _summarize(runs, settings, messages)
    table, axes = _runs_table(summaries, runs, references)
    chosen = _select(table, settings)
    copies = copies_of(chosen, axes, messages)  # one training read twice: counted once
    chosen = chosen[~chosen["run"].isin(list(copies))] if copies else chosen
    used = set(chosen["run"]) if "run" in chosen else set()
    summaries = [replace(s, copy_of=copies[s.run], exclusion=Exclusion.COPY) if s.run in copies
                 else replace(s, exclusion=Exclusion.of(s, s.run in used)) for s in summaries]
    messages.extend(notes.left_out(summaries))
    if not table.empty:
        reasons = {s.run: s.reason for s in summaries}
        table["reason"] = [reasons[name] for name in table["run"]]
    if along not in axes:
        raise ValueError(f"`along` (--along) must be one of the sweep's axes {axes}, got "
                         f"{along!r}.")
    groups = [a for a in axes if a not in (along, "seed")]
    temperature, power_law, fit = temperatures(chosen, along, groups, resampled,
                                               construction=how, ci=ci, messages=messages)
    collapse = None
    if along == "lr" and groups == ["batch_size"] and len(temperature):
        collapse = batch_size_collapse(temperature, level=ci)
        if collapse is not None:
            messages.append(collapse["verdict"])
    if len(temperature) and not table.empty:  # each run's T (its group's row) in runs.csv
        on = [*groups, along]
        cols = [c for c in ("T", "T_ci_lo", "T_ci_hi", "valid") if c in temperature]
        table = table.merge(temperature[on + cols].rename(columns={"valid": "T_valid"}),
                            on=on, how="left")
    with output as staging:  # written aside, installed when complete
        _write_tables(staging, table, free_energy_along_runs(runs, table), temperature, fit,
                      collapse)
        figures = _draw(staging, table, temperature, power_law,
                        _local_temperatures(runs, summaries), fit, along, collapse)
        if tensorboard:
            _write_tensorboard(staging, figures, runs, summaries, table, temperature, along,
                               messages)
        (staging / "messages.txt").write_text("\n".join(messages) + ("\n" if messages else ""))
        output.install()
    return ReportResult(table, temperature, power_law, [out / f.name for f in figures],
                        messages, fit, collapse, {s.run: s for s in summaries})
