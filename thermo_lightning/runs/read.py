"""Reading one run back: its record or Lightning's ``hparams.yaml``, and its history from
``history.csv``, else TensorBoard events (only the scalar tags asked for; images are never
loaded), else CSV logs. Pure: no torch, no Lightning (TensorBoard's own event reader)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from thermo_lightning import keys
from thermo_lightning._validation import finite_number as number
from thermo_lightning.runs.layout import (
    EVENTS_PREFIX,
    HISTORY_FILE,
    HPARAMS_FILE,
    METRICS_FILE,
    PLAN_FILE,
    RUN_FILE,
    is_writeback,
    lr_from_name,
)
from thermo_lightning.runs.record import (
    NotARecordError,
    RunRecord,
    legacy_known_temperature,
)
from thermo_lightning.spec import WindowSpec

__all__ = ["NEEDED_TAGS", "UNFINISHED_PROBLEM", "RunData", "planned_runs", "read_run"]

U, S = keys.ENERGY, keys.ENTROPY
#: the metric keys the report reads (a TensorBoard log's other tags are skipped unparsed)
NEEDED_TAGS = (U, S, keys.SNR, keys.GRAD_NORM, keys.STOCH_GRAD_NORM, keys.T_LOCAL, keys.ESS,
               keys.LOW_ESS, keys.HALVES, keys.WINDOW_FILL, keys.TRAIN_ACC, keys.STRIDE,
               keys.CORRELATION_TIME, keys.CONF_GRAD_SQ, keys.CONF_LAPLACIAN, keys.FDR,
               keys.CONF_GHG, keys.FIT_START, keys.FIT_END, keys.FIT_ID)
_MARKS = (keys.FIT_START, keys.FIT_END, keys.FIT_ID)
#: said of a run without a record whose log marks a fit's start and no end
UNFINISHED_PROBLEM = ("its log marks the start of a fit and no end (no thermo/fit_end): "
                      "interrupted, failed or still running; left out of T(eta) as "
                      "unfinished. Resume it from its checkpoint (ckpt_path=...): the report "
                      "reads the new version folder as its continuation")
#: the tag of an hparams session (Lightning's TensorBoardLogger writes one with its default
#: ``default_hp_metric=True``)
SESSION_TAG = "_hparams_/session_start_info"


@dataclass
class RunData:
    """One run read back.

    Attributes:
        name: its name in the report (its path under the log folder).
        path: its folder.
        hparams: its settings (the record's, else Lightning's ``hparams.yaml``; ``lr`` from
            an ``lr=...`` folder name when neither has one).
        history: a ``step`` column and one column per metric.
        record: its ``run.json`` (``None``: not a sweep's run).
        problems: what is missing or wrong, one sentence each.
        incomplete: its log ends before the step its record says it logged last (a file cut
            while written).
        own_hparams_session: its TensorBoard log holds its logger's own hparams session.
        fit_start: the step its (first) fit started at, from its log's ``thermo/fit_start``
            (``None``: a log of a version before the mark, or a ``history.csv``).
        fit_ended: its log's last fit logged ``thermo/fit_end`` (``None``: no marks to tell).
        fit_id: the training's identity its first fit logged (``thermo/fit_id``; ``None``: a
            log of a version before it): a fit resumed from a checkpoint logs its training's.
    """

    name: str
    path: Path
    hparams: dict[str, Any]
    history: pd.DataFrame
    record: RunRecord | None = None
    problems: list[str] = field(default_factory=list)
    incomplete: bool = False
    own_hparams_session: bool = False
    fit_start: int | None = None
    fit_ended: bool | None = None
    fit_id: int | None = None

    @property
    def unfinished(self) -> bool:
        """Its record's status is not ``done``; or, without a record (Lightning's own log
        folders), its log marks a fit's start and no end after it (interrupted, failed or
        still running)."""
        return _unfinished(self.record, self.fit_ended)

    @property
    def lr(self) -> float | None:
        """The learning rate, or ``None`` when it is missing or not a positive number."""
        lr = number(self.hparams.get("lr"))
        return lr if lr is not None and lr > 0 else None

    @property
    def axes(self) -> dict[str, Any]:
        """The run's values on the sweep's axes (its record's: ``lr``, the grid's axes,
        ``seed``); runs whose record names none (older sweeps, Lightning's own folders):
        ``lr`` (and ``seed`` when set) of its hyperparameters."""
        if self.record is not None and self.record.axes:
            return dict(self.record.axes)
        out: dict[str, Any] = {"lr": self.lr}
        if self.seed is not None:
            out["seed"] = self.seed
        return out

    @property
    def seed(self) -> int | None:
        """The seed of its hyperparameters, ``None`` when it has none."""
        return int(self.hparams["seed"]) if number(self.hparams.get("seed")) is not None \
            else None

    @property
    def window_spec(self) -> WindowSpec | None:
        """Its window's description as the callback wrote it (the record's ``window_spec``,
        or Lightning's ``hparams.yaml``), or ``None``."""
        spec = self.record.window_spec if self.record is not None else None
        return WindowSpec.from_hparams(spec if isinstance(spec, dict) else self.hparams)

    @property
    def known_temperature(self) -> float | None:
        """The exact ``T`` where the run's model knows it (its record's; for runs without
        one, the known-temperature problem's rule on its hyperparameters)."""
        if self.record is not None and self.record.known_temperature is not None:
            return self.record.known_temperature
        return legacy_known_temperature(self.hparams, self.lr)


def read_tensorboard(folder: Path, tags: Sequence[str], seen: set[str] | None = None,
                     problems: list[str] | None = None, hparams: dict[str, Any] | None = None
                     ) -> pd.DataFrame:
    """The ``tags``' scalars by step from the event files under ``folder`` (not those a
    report wrote back); adds :data:`SESSION_TAG` to ``seen`` when a session is met.

    Event files are read in the order they were opened (their names begin with the time).
    A file that starts after the first step of those before it continues them (a resumed
    fit: its rows replace theirs after the step its ``thermo/fit_start`` marks, else from its
    first step on); one that starts at or before it
    is a new training in the same folder (a ``TensorBoardLogger(version=0)`` used twice):
    only the last training is read, ``problems`` says so, and ``hparams`` (those of
    ``hparams.yaml``, which Lightning writes for the first training only) is corrected with
    the last training's own hparams session, or loses its ``lr`` when it has none."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    wanted = set(tags)
    rows: dict[int, dict[str, float]] = {}
    trainings, session = 1, None
    files = [p for p in folder.rglob(EVENTS_PREFIX + "*") if not is_writeback(p)]
    for events in sorted(files, key=lambda p: (p.name, str(p))):
        own: dict[int, dict[str, float]] = {}
        own_session = None
        for event in EventFileLoader(str(events)).Load():
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                if value.tag not in wanted:
                    if value.tag == SESSION_TAG:
                        own_session = _session_hparams(value)
                        if seen is not None:
                            seen.add(value.tag)
                    continue  # images, histograms and other tags are skipped unparsed
                if value.HasField("simple_value"):
                    v = float(value.simple_value)
                elif value.HasField("tensor"):
                    v = float(tensor_util.make_ndarray(value.tensor).reshape(-1)[0])
                else:
                    continue
                own.setdefault(int(event.step), {})[value.tag] = v
        if not own:
            session = own_session or session
            continue
        marked = [step for step, row in own.items() if keys.FIT_START in row]
        if marked:  # the fit's own mark: it continues from step `start`, whose row is older
            start = min(marked)
            cut, fresh = start + 1, bool(rows) and start <= min(rows)
        else:  # T_local arrives at an earlier step than the row it is logged with: no start
            cut = min((step for step, row in own.items() if set(row) - {keys.T_LOCAL}),
                      default=min(own))
            fresh = bool(rows) and cut <= min(rows)
        if fresh:
            trainings, session = trainings + 1, None
            rows = {}
        session = own_session or session
        rows = {step: row for step, row in rows.items() if step < cut}  # steps are integers
        for step, row in own.items():
            if step < cut:
                old = rows.setdefault(step, {})
                old.pop(keys.FIT_END, None)  # an earlier fit's end, continued from here
                old.update(row)
            else:
                rows[step] = row
    if trainings > 1:
        _last_training(trainings, session, problems, hparams)
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame.from_dict(rows, orient="index").sort_index()
    df.insert(0, "step", df.index.astype(float))
    return df.reset_index(drop=True)


def _unfinished(record: RunRecord | None, fit_ended: bool | None) -> bool:
    """:attr:`RunData.unfinished` from its parts."""
    if record is not None:
        return record.status not in (None, "done")
    return fit_ended is False


def _fit_marks(history: pd.DataFrame
               ) -> tuple[pd.DataFrame, int | None, bool | None, int | None]:
    """``history`` without the fit marks (``thermo/fit_start``, ``thermo/fit_end``,
    ``thermo/fit_id``; a row that held only marks goes), the first fit's start, whether the
    last fit ended (its end at or after the last start), and the first fit's identity;
    ``None`` for each without its mark."""
    if history.empty or not any(m in history.columns for m in _MARKS):
        return history, None, None, None
    ids = (history[keys.FIT_ID].dropna() if keys.FIT_ID in history.columns
           else pd.Series(dtype=float))
    fit_id = int(ids.iloc[0]) if len(ids) else None
    steps = {m: history.loc[history[m].notna(), "step"].to_numpy(float)
             if m in history.columns else [] for m in _MARKS}
    starts, ends = steps[keys.FIT_START], steps[keys.FIT_END]
    rest = history.drop(columns=[m for m in _MARKS if m in history.columns])
    others = [c for c in rest.columns if c != "step"]
    rest = rest[rest[others].notna().any(axis=1)] if others else rest.iloc[0:0]
    if len(starts) == 0:  # an end without a start: the start's rows were replaced
        return rest.reset_index(drop=True), None, len(ends) > 0 or None, fit_id
    ended = len(ends) > 0 and max(ends) >= max(starts)
    return rest.reset_index(drop=True), int(min(starts)), ended, fit_id


def _session_hparams(value: Any) -> dict[str, Any] | None:
    """The hyperparameters of an hparams session's start (``None``: unreadable)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData()
    try:
        data.ParseFromString(value.metadata.plugin_data.content)
    except Exception:  # a session another tool wrote differently: none to read
        return None
    out: dict[str, Any] = {}
    for name, v in data.session_start_info.hparams.items():
        kind = v.WhichOneof("kind")
        out[name] = getattr(v, kind) if kind in ("number_value", "string_value",
                                                 "bool_value") else None
    return out or None


def _last_training(trainings: int, session: dict[str, Any] | None,
                   problems: list[str] | None, hparams: dict[str, Any] | None) -> None:
    """Say that only the last of ``trainings`` is read, and give ``hparams`` its settings."""
    if session is not None and hparams is not None:
        hparams.update(session)
        how = "its settings come from its own hparams session"
    elif hparams is not None:
        hparams.pop("lr", None)
        how = ("hparams.yaml describes the first one and the last wrote no hparams session, "
               "so its learning rate is unknown")
    else:
        how = "its settings are not read here"
    if problems is not None:
        problems.append(
            f"its TensorBoard folder holds {trainings} trainings that each start from the "
            f"beginning (a logger version used again); only the last one is read and {how}. "
            "Give each training its own version (TensorBoardLogger's default) to keep them "
            "apart")


def read_csv(path: Path, problems: list[str]) -> pd.DataFrame:
    """A CSV file; a last line without its newline (cut while being written) is dropped and
    said in ``problems``."""
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        problems.append(f"{path.name} ends mid-line (cut while written?): its last row was "
                        "dropped")
    if not text.strip():
        return pd.DataFrame()
    return pd.read_csv(io.StringIO(text))


def read_csv_logs(folder: Path, problems: list[str]) -> pd.DataFrame:
    """Lightning's ``metrics.csv`` files under ``folder`` (every version), one row per
    step."""
    frames = [read_csv(p, problems) for p in sorted(folder.rglob(METRICS_FILE))]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    if "step" not in df.columns:
        return pd.DataFrame()
    return df.groupby("step", as_index=False).first().sort_values("step")


def _hparams_loader() -> Any:
    """YAML's safe loader, plus the tuples Lightning writes into ``hparams.yaml``
    (``!!python/tuple``, e.g. Adam's ``betas``): read as lists, nothing else executed."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("tag:yaml.org,2002:python/tuple",
                           lambda loader, node: loader.construct_sequence(node))
    return Loader


def _lightning_hparams(folder: Path, problems: list[str]) -> dict[str, Any]:
    import yaml

    hparams: dict[str, Any] = {}
    for hp in folder.rglob(HPARAMS_FILE):
        try:
            values = yaml.load(hp.read_text(), Loader=_hparams_loader()) or {}
        except yaml.YAMLError as err:
            problems.append(f"{hp.relative_to(folder)} is not valid YAML ({err}); ignored")
            continue
        if isinstance(values, dict):
            hparams.update(values)
        else:
            problems.append(f"{hp.relative_to(folder)} does not hold a mapping; ignored")
    return hparams


def planned_runs(sweep: Path) -> set[str] | None:
    """The run folders a sweep folder's ``plan.json`` lists (``None``: the folder has no
    readable plan: not a planned sweep)."""
    try:
        runs = json.loads((sweep / PLAN_FILE).read_text())["runs"]
        return {r["name"] for r in runs}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_run(folder: str | Path, tags: Sequence[str] = NEEDED_TAGS, *,
             name: str | None = None) -> RunData:
    """Read one run: ``run.json`` for its record and hyperparameters (else Lightning's
    ``hparams.yaml``, else an ``lr=...`` folder name), and its history from ``history.csv``,
    TensorBoard or CSV logs. What is missing or wrong is said in ``problems``.

    Raises:
        json.JSONDecodeError: ``run.json`` is not JSON.
    """
    folder = Path(folder)
    problems: list[str] = []
    record: RunRecord | None = None
    if (folder / RUN_FILE).exists():
        try:
            record = RunRecord.from_json((folder / RUN_FILE).read_text())
        except NotARecordError:
            problems.append("run.json does not hold a mapping; ignored")
        hparams = dict(record.hparams) if record is not None else {}
    else:
        hparams = _lightning_hparams(folder, problems)
    if "lr" not in hparams and (lr := lr_from_name(folder.name)) is not None:
        hparams["lr"] = lr
    own_session = False
    if (folder / HISTORY_FILE).exists():
        history = read_csv(folder / HISTORY_FILE, problems)
    else:
        seen: set[str] = set()
        history = read_tensorboard(folder, tags, seen, problems, hparams)
        own_session = bool(seen)  # TensorBoard shows the run's first session: the logger's
        if history.empty:
            history = read_csv_logs(folder, problems)
    history, fit_start, fit_ended, fit_id = _fit_marks(history)
    status = record.status if record is not None else None
    unfinished = _unfinished(record, fit_ended)  # a cut run's missing tags are its cut, said
    if history.empty:
        problems.append("no thermo metrics found (no history.csv, TensorBoard or CSV log)")
    elif not unfinished:
        missing = [t for t in (U, S) if t not in history.columns]
        empty = [t for t in (U, S) if t in history.columns and history[t].isna().all()]
        if missing:
            problems.append(f"missing tags {missing}")
        if empty:
            problems.append(f"tags {empty} are all NaN")
    if "lr" not in hparams:
        problems.append("no learning rate (run.json, hparams.yaml or an lr=... folder name)")
    elif number(hparams["lr"]) is None or number(hparams["lr"]) <= 0:
        problems.append(f"learning rate {hparams['lr']!r} is not a positive number")
    if status == "running":
        problems.append("status 'running': still being trained, or its process was killed "
                        "outright (it then stays 'running'; running the sweep again resumes "
                        "it); left out of T(eta) as unfinished")
    elif status not in (None, "done"):
        problems.append(f"status {status!r}: {status} before its last step (running the "
                        "sweep again resumes it); left out of T(eta) as unfinished")
    elif record is None and fit_ended is False:
        problems.append(UNFINISHED_PROBLEM)
    incomplete = False
    expected = record.last_logged_step if record is not None and record.done else None
    if expected is not None and not history.empty and "step" in history:
        last = float(history["step"].max())
        if last < expected:
            incomplete = True
            problems.append(
                f"its log ends at step {last:g} but the run logged up to step {expected:g} "
                "(run.json): a file was cut while written; the run is marked incomplete and "
                "left out of T(eta)"
            )
    return RunData(name or folder.name, folder, hparams, history, record, problems,
                   incomplete, own_session, fit_start, fit_ended, fit_id)
