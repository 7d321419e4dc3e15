"""The report's TensorBoard view: one entry per run and one for the report.

TensorBoard lists every folder that holds event files as an entry ("run"). The report adds
no folder of its own per run: it writes one event file (name ending :data:`WRITEBACK_SUFFIX`)
into each run's own TensorBoard folder, so that a run's training curves, its free energy, its
stationary means and its row of the hparams table are one entry. Its own entry,
``REPORT/tensorboard``, holds what belongs to the sweep as a whole.

Written into each run's folder (a report run again replaces its earlier file):

- ``thermo/F`` = ``U(t) - T S(t)`` at every logging point with an entropy, ``T`` the run's
  row of ``T(eta)`` (``thermo/F_report`` when the run logged its own ``thermo/F`` with a
  temperature given in advance);
- ``stationary/U``, ``stationary/S``, ``stationary/F``: the same at the run's final stride
  only (the part after the pilot and the stride changes: charts without the first steps'
  scale), and flat lines over the averaged tail: ``stationary/U_mean``, ``stationary/S_mean``,
  ``stationary/U_se``, ``stationary/S_se``, ``stationary/snr_mean``, ``stationary/T``,
  ``stationary/T_ci_lo``, ``stationary/T_ci_hi``;
- an hparams session: the run's settings, axes and ``regime`` -> those flat lines' values
  (unless the run's logger wrote its own, as Lightning's ``TensorBoardLogger`` does with its
  default ``default_hp_metric=True``: TensorBoard shows a run's first session only).

Written into ``REPORT/tensorboard``:

- the report's figures as images (``report/<name>``);
- the sweep as scalar series, one step per value of the sweep axis in increasing order
  (TensorBoard's x-axis is an integer step): ``sweep/<axis>`` (the value itself, to hover),
  ``sweep/U``, ``sweep/S``, ``sweep/T``, ``sweep/T_lo``, ``sweep/T_hi``, ``sweep/T_ci_lo``,
  ``sweep/T_ci_hi``, ``sweep/T_true``; a text table ``sweep/steps`` (step -> value, T,
  interval, regime);
- the free-energy family: ``free_energy/row<i>_T=<T>`` = ``F_T(eta) - min_eta F_T`` for
  the ``T`` of every valid row ``i``, and ``report/eta_star``: at the step of each row, the
  ``eta`` that minimises the free energy at that row's ``T`` (the paper's claim: the row's
  own ``eta``, so that the ``report/eta_star`` and ``sweep/lr`` lines coincide);
- with a grid, every series once per group, the tag ending ``@<group>``;
- the custom-scalars layout (:func:`report_layout`) and the hparams table's columns.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from thermo_lightning import keys
from thermo_lightning._validation import finite_or_none
from thermo_lightning.functional.temperature import free_energy
from thermo_lightning.report.summary import final_stride_points
from thermo_lightning.runs.layout import (
    EVENTS_PREFIX,
    WRITEBACK_FILE,
    WRITEBACK_SUFFIX,
    run_event_folder,
)
from thermo_lightning.runs.read import RunData
from thermo_lightning.summaries import (
    experiment_summary,
    hparam_value,
    png_summary,
    session_summaries,
)

__all__ = [
    "HPARAM_METRICS",
    "report_layout",
    "write_report_entry",
    "write_run_entries",
]

#: each run's flat lines over its averaged tail -> the ``runs.csv`` column they hold
_RUN_COLUMNS = {"stationary/U_mean": "U", "stationary/S_mean": "S", "stationary/U_se": "U_se",
                "stationary/S_se": "S_se", "stationary/T": "T", "stationary/T_ci_lo": "T_ci_lo",
                "stationary/T_ci_hi": "T_ci_hi", "stationary/snr_mean": "snr"}

#: the hparams table's metric columns (those flat lines)
HPARAM_METRICS = tuple(_RUN_COLUMNS)

#: the run settings the hparams table always shows (with the type of this default when no
#: run has them), besides the sweep's axes (``lr``, a grid's axes) and ``regime``,
#: ``in_T_eta``
_SETTINGS: dict[str, Any] = {"seed": 0, "model": "", "data": "", "steps": 0, "window": "",
                             "stride": "", "k": "", "estimator": "", "batch_size": 0}


def report_layout() -> dict[str, dict[str, list[Any]]]:
    """The custom-scalars layout of the report's entry. Tags are regular expressions (a
    grid's ``@<group>`` series included), so every report writes the same layout and
    TensorBoard shows each chart once over several sweeps."""
    def lines(*patterns: str) -> list[Any]:
        return ["Multiline", list(patterns)]

    group = r"(@.*)?$"
    return {
        "thermo report: across the sweep (x: sweep step, see sweep/steps)": {
            "T(eta) (valid rows), the rows not valid, and the true T where known": lines(
                f"sweep/T{group}", rf"sweep/T_not_valid_\d+{group}", f"sweep/T_true{group}"),
            "T(eta) with its interval (shaded)": ["Margin", [
                "sweep/T", "sweep/T_ci_lo", "sweep/T_ci_hi"]],
            "T(eta) and the one-run T_conf with its interval (runs that measured it)": lines(
                f"sweep/T{group}", f"sweep/T_conf{group}", f"sweep/T_conf_lo{group}",
                f"sweep/T_conf_hi{group}"),
            "free energy F_T(eta) - min F_T, one line per T": lines(r"free_energy/row"),
            "eta* (argmin of F_T at each row's T) and eta": lines(
                f"report/eta_star{group}", f"sweep/lr{group}"),
            "U across the sweep": lines(f"sweep/U{group}"),
            "S across the sweep": lines(f"sweep/S{group}"),
        },
        "thermo report: along each run": {  # F along training: the "thermo" category's
            "F over the stationary part": lines(r"stationary/F(_not_valid)?$"),
            "U over the stationary part, and its tail mean": lines(r"stationary/U$",
                                                                   r"stationary/U_mean$"),
            "S over the stationary part, and its tail mean": lines(r"stationary/S$",
                                                                   r"stationary/S_mean$"),
            "T of the run's row, with its interval": lines(
                r"stationary/T(_ci_lo|_ci_hi)?(_not_valid)?$"),
        },
    }


# ------------------------------------------------------------------------------ runs
def _with_rows(runs: Sequence[RunData], table: pd.DataFrame
               ) -> Iterator[tuple[RunData, pd.Series]]:
    """Each run with its row of ``table`` (``runs.csv``; an empty row when it has none)."""
    rows = table.set_index("run") if "run" in table else pd.DataFrame()
    for run in runs:
        yield run, (rows.loc[run.name] if run.name in rows.index else pd.Series(dtype=object))


def write_run_entries(runs: Sequence[RunData], table: pd.DataFrame,
                      in_t_eta: Mapping[str, str], messages: list[str] | None = None
                      ) -> list[str]:
    """Write the report's scalars and hparams session into each run's own TensorBoard
    folder (module docstring), as one file of a fixed name (:data:`~thermo_lightning.runs.
    layout.WRITEBACK_FILE`), written aside and moved in: two reports at once leave one file,
    the later one's. ``table``: the report's ``runs.csv``; ``in_t_eta``: each run's ``yes``
    or ``no (why)``. A run whose folder cannot be written to is said in ``messages`` (raised
    without them) and skipped. Returns the names of the runs without a TensorBoard folder
    (nothing written for them: ``free_energy.csv`` holds their F)."""
    skipped = []
    for run, row in _with_rows(runs, table):
        folder = run_event_folder(run.path)
        if folder is None:
            skipped.append(run.name)
            continue
        try:
            _write_run_entry(folder, run, row, in_t_eta)
        except OSError as err:
            if messages is None:
                raise
            messages.append(f"{run.name}: its TensorBoard entry was not written "
                            f"({type(err).__name__}: {err})")
    return skipped


def _write_run_entry(folder: Path, run: RunData, row: pd.Series,
                     in_t_eta: Mapping[str, str]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    scratch = folder / f".thermo_report.tmp-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        with SummaryWriter(str(scratch)) as writer:
            _write_run_scalars(writer, run, row, final_stride_points(run))
            if not run.own_hparams_session:  # TensorBoard shows a run's first session
                # the session: its metric values are the last values of HPARAM_METRICS here
                file_writer = writer._get_file_writer()
                for summary in session_summaries(_session_hparams(run, row, in_t_eta)):
                    file_writer.add_summary(summary)
        (written,) = scratch.glob(EVENTS_PREFIX + "*")
        os.replace(written, folder / WRITEBACK_FILE)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for old in folder.glob(f"{EVENTS_PREFIX}*{WRITEBACK_SUFFIX}"):  # earlier versions' names
        if old.name != WRITEBACK_FILE:
            old.unlink(missing_ok=True)


def _row_valid(row: pd.Series) -> bool:
    """Whether the run's row of ``T(eta)`` is valid (``runs.csv``'s ``T_valid``; a table
    without the column: valid)."""
    value = row.get("T_valid")
    return bool(value) if isinstance(value, bool | np.bool_) else True


def _write_run_scalars(writer: Any, run: RunData, row: pd.Series, stationary: pd.DataFrame
                       ) -> None:
    h = run.history
    t = finite_or_none(row.get("T"))
    # a row whose T is not valid (an end row, an empty bracket) keeps its numbers under tags
    # that say so: TensorBoard draws them apart from the valid ones
    mark = "" if _row_valid(row) else "_not_valid"
    if t is not None and keys.ENERGY in h and keys.ENTROPY in h:
        tag = "thermo/F_report" if (keys.FREE_ENERGY in h and h[keys.FREE_ENERGY].notna().any()
                                    ) else keys.FREE_ENERGY
        tag += mark
        points = h.dropna(subset=[keys.ENERGY, keys.ENTROPY])
        for step, u, s in zip(points["step"], points[keys.ENERGY], points[keys.ENTROPY],
                              strict=True):
            writer.add_scalar(tag, float(free_energy(u, s, t)), int(step))
    for step, u, s in zip(stationary["step"], stationary[keys.ENERGY],
                          stationary[keys.ENTROPY], strict=True):
        writer.add_scalar("stationary/U", float(u), int(step))
        writer.add_scalar("stationary/S", float(s), int(step))
        if t is not None:
            writer.add_scalar(f"stationary/F{mark}", float(free_energy(u, s, t)), int(step))
    first, last = finite_or_none(row.get("first_tail_step")), finite_or_none(row.get("last_step"))
    if first is None or last is None:
        return
    span = sorted({int(first), int(last)})
    for tag, col in _RUN_COLUMNS.items():
        value = finite_or_none(row.get(col))
        if value is not None:
            tag = f"{tag}{mark}" if col.startswith("T") else tag
            for step in span:  # a flat line over the averaged steps, not one dot
                writer.add_scalar(tag, value, step)


def _session_hparams(run: RunData, row: pd.Series, in_t_eta: Mapping[str, str]
                     ) -> dict[str, Any]:
    hp: dict[str, Any] = {"lr": run.lr} if run.lr is not None else {}
    for name in _SETTINGS:
        value = run.hparams.get(name)
        if value is not None:
            hp[name] = value
    for name, value in run.axes.items():
        if value is not None:
            hp[name] = value
    regime = row.get("regime")
    if isinstance(regime, str) and regime:
        hp["regime"] = regime
    used = in_t_eta.get(run.name, "yes")
    hp["in_T_eta"] = "yes, T not valid" if used == "yes" and not _row_valid(row) else used
    return {k: hparam_value(v) for k, v in hp.items()}


# ------------------------------------------------------------------------------ report
def write_report_entry(
    folder: Path,
    images: Sequence[Path],
    runs: Sequence[RunData],
    table: pd.DataFrame,
    temperature: pd.DataFrame,
    in_t_eta: Mapping[str, str],
    *,
    along: str = "lr",
) -> None:
    """The report's own entry in ``folder`` (module docstring): the figures (``images``, the
    report's PNG files, as ``report/<stem>``), the sweep as scalar series, the free-energy
    family, ``report/eta_star``, the layout and the hparams table's columns."""
    from torch.utils.tensorboard import SummaryWriter

    if folder.exists():  # the report writes into a fresh staging folder (report.output)
        raise FileExistsError(f"{folder} exists: the report's entry is written into a new "
                              "folder only.")
    with SummaryWriter(str(folder)) as writer:
        for path in images:
            writer._get_file_writer().add_summary(png_summary(f"report/{path.stem}", path))
        groups = (list(dict.fromkeys(temperature["group"])) if "group" in temperature
                  else [None])
        notes = []
        for group in groups:
            part = temperature if group is None else temperature[temperature["group"] == group]
            notes.append(_write_sweep(writer, part.reset_index(drop=True), along, group))
        if any(notes):
            writer.add_text("sweep/steps", "\n\n".join(n for n in notes if n))
        writer.add_custom_scalars(report_layout())
        experiment = _experiment(runs, table, in_t_eta)
        if experiment is not None:
            writer._get_file_writer().add_summary(experiment)


#: columns the hparams table shows first (with the settings that differ between runs)
_FIRST = ("regime", "in_T_eta")


def _experiment(runs: Sequence[RunData], table: pd.DataFrame, in_t_eta: Mapping[str, str]
                ) -> Any:
    """The hparams table's columns: every hparam the runs' sessions carry and every setting
    of :data:`_SETTINGS` (so that another sweep's report in the same ``--logdir`` keeps
    them: TensorBoard takes the columns of the first experiment it finds) -> the
    :data:`HPARAM_METRICS`; the settings that differ between runs, ``regime`` and
    ``in_T_eta`` first. ``None`` without runs."""
    values: dict[str, list[Any]] = {}
    for run, row in _with_rows(runs, table):
        for name, value in _session_hparams(run, row, in_t_eta).items():
            values.setdefault(name, []).append(value)
    if not values:
        return None
    for name, default in _SETTINGS.items():
        values.setdefault(name, [default])
    return experiment_summary(values, HPARAM_METRICS, first=_FIRST)


def _write_sweep(writer: Any, t: pd.DataFrame, along: str, group: str | None) -> str:
    """One group's series; returns its markdown table of steps."""
    if t.empty or along not in t:
        return ""
    suffix = "" if group is None else f"@{group}"
    t = t.sort_values(along).reset_index(drop=True)
    for i, r in t.iterrows():
        step = int(i)
        writer.add_scalar(f"sweep/{along}{suffix}", float(r[along]), step)
        valid = bool(r.get("valid", True))
        for col in ("U", "S", "T", "T_lo", "T_hi", "T_ci_lo", "T_ci_hi", "T_true", "T_conf",
                    "T_conf_lo", "T_conf_hi"):
            value = finite_or_none(r.get(col))
            if value is not None:
                # a row's T that is not valid: a series of its own, one point (joined
                # neither to the valid rows' line nor to the other rows not valid)
                name = f"{col}_not_valid_{step}" if col == "T" and not valid else col
                writer.add_scalar(f"sweep/{name}{suffix}", value, step)
    _write_family(writer, t, along, suffix)
    title = f"**{group}**\n\n" if group else ""
    lines = [f"| step | {along} | T | interval | valid | regime | runs |",
             "|---|---|---|---|---|---|---|"]
    for i, r in t.iterrows():
        lo, hi = finite_or_none(r.get("T_ci_lo")), finite_or_none(r.get("T_ci_hi"))
        interval = f"[{lo:.4g}, {hi:.4g}]" if lo is not None and hi is not None else ""
        temp = finite_or_none(r.get("T"))
        runs = r.get("n_runs")
        valid = "yes" if bool(r.get("valid", True)) else f"no ({r.get('reason', '')})"
        lines.append(f"| {i} | {r[along]:.4g} | {'' if temp is None else f'{temp:.4g}'} | "
                     f"{interval} | {valid} | {r.get('regime', '')} | "
                     f"{'' if finite_or_none(runs) is None else int(runs)} |")
    return title + "\n".join(lines)


def _write_family(writer: Any, t: pd.DataFrame, along: str, suffix: str) -> None:
    """``free_energy/row<i>_T=<T>`` (minus its minimum) over the steps, and ``report/eta_star``
    at each valid row's step."""
    valid = t[t["valid"].astype(bool) & t["T"].notna()] if "valid" in t else t.iloc[0:0]
    if valid.empty or not {"U", "S"} <= set(t.columns):
        return
    x = t[along].to_numpy(float)
    u, s = t["U"].to_numpy(float), t["S"].to_numpy(float)
    for i, r in valid.iterrows():
        temp = float(r["T"])
        f = free_energy(u, s, temp)
        if not np.isfinite(f).any():
            continue
        j = int(np.nanargmin(f))
        name = f"free_energy/row{int(i):02d}_T={temp:.4g}{suffix}"
        for step, value in enumerate(f - np.nanmin(f)):
            if math.isfinite(value):
                writer.add_scalar(name, float(value), step)
        writer.add_scalar(f"report/eta_star{suffix}", float(x[j]), int(i))
