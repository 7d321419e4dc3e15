"""A run's record, ``run.json``: what the sweep's runner writes and every reader reads.

One versioned schema (:class:`RunRecord`, :data:`SCHEMA_VERSION`), written by
:meth:`RunRecord.to_json` and read by :meth:`RunRecord.from_json`. Files written by older
versions are upgraded here, in :func:`upgrade`, and nowhere else (as Lightning migrates old
checkpoints in one place): a reader sees today's fields whatever wrote the file. Unknown keys
(a newer writer's) are kept and written back unchanged. Pure: no torch, no Lightning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from thermo_lightning._validation import finite_number as number
from thermo_lightning.runs.layout import RUN_FILE

__all__ = ["SCHEMA_VERSION", "NotARecordError", "RunRecord", "RunStatus",
           "legacy_known_temperature", "run_done", "upgrade"]

#: the version of ``run.json`` this code writes (files without ``version`` are version 0)
SCHEMA_VERSION = 1


class NotARecordError(ValueError):
    """``run.json`` is JSON but not a mapping."""


class RunStatus(str, Enum):
    """Where a run is: ``running`` (a process trains it, or died doing so), ``done``,
    ``interrupted`` (SIGTERM; resumes from its checkpoint) or ``failed``."""

    RUNNING = "running"
    DONE = "done"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


def _int_or_none(value: Any) -> int | None:
    v = number(value)
    return None if v is None else int(v)


@dataclass
class RunRecord:
    """What ``run.json`` holds.

    Attributes:
        hparams: the run's settings (the sweep's, with its own ``lr`` and axis values).
        axes: its values on the sweep's axes (``lr``, a grid's axes, ``seed`` with seeds);
            empty when unknown.
        status: a :class:`RunStatus` value (another string from a hand-edited file is kept).
        started, finished: UNIX times.
        pid: the process that trains (or trained) it.
        random_loss: the loss of random SI weights (the saturation level), where the model's
            recipe can measure it.
        global_step: optimiser steps at the end.
        last_logged_step: the step of the history's last row (a shorter log was cut).
        num_parameters, entropy_dim: ``D`` and the entropy's ``d``.
        window_spec: the window's description
            (:meth:`~thermo_lightning.spec.WindowSpec.as_hparams`).
        train_acc: the final training accuracy, where the model logs one.
        known_temperature: the exact ``T`` where the model's recipe knows it (the
            known-temperature problem: ``lr sigma^2 / 2``).
        error: why the run failed or was interrupted.
        notes: what happened to it that a user should know (an unreadable checkpoint).
        version: the schema's version.
        extra: keys this version does not know, kept as they were.
    """

    hparams: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    started: float | None = None
    pid: int | None = None
    random_loss: float | None = None
    finished: float | None = None
    global_step: int | None = None
    last_logged_step: float | None = None
    num_parameters: int | None = None
    entropy_dim: int | None = None
    window_spec: dict[str, Any] | None = None
    train_acc: float | None = None
    known_temperature: float | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status == RunStatus.DONE.value

    def to_dict(self) -> dict[str, Any]:
        """The record as ``run.json`` holds it (unknown keys last, as they came)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None or (f.name == "notes" and not value):
                continue  # absent, as older files had it
            out[f.name] = value
        return {**out, **self.extra}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunRecord:
        """A record from ``run.json``'s mapping, upgraded to this version (:func:`upgrade`);
        fields of the wrong type (hand-edited files) are read as absent."""
        values = upgrade(dict(values))
        known = {f.name for f in fields(cls)} - {"extra"}
        hparams, axes = values.get("hparams"), values.get("axes")
        spec, notes = values.get("window_spec"), values.get("notes")
        status = values.get("status")
        return cls(
            hparams=dict(hparams) if isinstance(hparams, dict) else {},
            axes=dict(axes) if isinstance(axes, dict) else {},
            status=status if isinstance(status, str) else None,
            started=number(values.get("started")), pid=_int_or_none(values.get("pid")),
            random_loss=number(values.get("random_loss")),
            finished=number(values.get("finished")),
            global_step=_int_or_none(values.get("global_step")),
            last_logged_step=number(values.get("last_logged_step")),
            num_parameters=_int_or_none(values.get("num_parameters")),
            entropy_dim=_int_or_none(values.get("entropy_dim")),
            window_spec=dict(spec) if isinstance(spec, dict) else None,
            train_acc=number(values.get("train_acc")),
            known_temperature=number(values.get("known_temperature")),
            error=None if values.get("error") is None else str(values["error"]),
            notes=[str(n) for n in notes] if isinstance(notes, list) else [],
            version=int(values["version"]),
            extra={k: v for k, v in values.items() if k not in known},
        )

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """Parse ``run.json``'s text.

        Raises:
            json.JSONDecodeError: not JSON.
            NotARecordError: not a mapping.
        """
        values = json.loads(text)
        if not isinstance(values, dict):
            raise NotARecordError("run.json does not hold a mapping")
        return cls.from_dict(values)

    @classmethod
    def read(cls, run_dir: Path) -> RunRecord | None:
        """The record in ``run_dir`` (``None`` when it has none)."""
        path = run_dir / RUN_FILE
        return cls.from_json(path.read_text()) if path.exists() else None

    def write(self, run_dir: Path) -> None:
        """Write ``run_dir/run.json`` atomically (a reader never sees half a file)."""
        tmp = run_dir / (RUN_FILE + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(run_dir / RUN_FILE)


def run_done(run_dir: Path) -> bool:
    """Whether ``run_dir``'s record says the run is done (``False`` without a record, or with
    one that cannot be read: the sweep trains or resumes such a run)."""
    try:
        record = RunRecord.read(run_dir)
    except (OSError, ValueError):
        return False
    return record is not None and record.done


def upgrade(values: dict[str, Any]) -> dict[str, Any]:
    """``run.json``'s mapping as this version writes it. Version 0 (no ``version`` key: the
    sweeps before the run folder had one owner) lacks, in its older files, these, derived
    here:

    - ``last_logged_step``: a finished run's ``global_step`` on the ``"log"`` schedule
      (which logs the last step), or its last multiple on an every-``n`` schedule;
    - ``known_temperature``: ``lr sigma^2 / 2`` for the known-temperature problem
      (:func:`legacy_known_temperature`).

    ``axes`` stay empty where a file has none: a reader takes them from the hyperparameters,
    as for Lightning's own folders.
    """
    version = values.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        version = 0
    if version < 1:
        hparams = values.get("hparams") if isinstance(values.get("hparams"), dict) else {}
        if values.get("last_logged_step") is None and values.get("status") == "done":
            step = number(values.get("global_step"))
            schedule = hparams.get("schedule")
            n = number(schedule)
            if step is not None and schedule == "log":
                values["last_logged_step"] = step
            elif step is not None and n is not None and n >= 1:
                values["last_logged_step"] = float(step // n * n)
        if values.get("known_temperature") is None:
            truth = legacy_known_temperature(hparams, number(hparams.get("lr")))
            if truth is not None:
                values["known_temperature"] = truth
        version = 1
    values["version"] = version
    return values


def legacy_known_temperature(hparams: dict[str, Any], lr: float | None) -> float | None:
    """``T = lr sigma^2 / 2`` for a run of the known-temperature problem that does not say
    its ``known_temperature`` (version-0 records, Lightning's ``hparams.yaml``): ``model:
    langevin`` with ``sigma`` its gradient noise (``gradient_noise_std``: ``noise_std /
    sqrt(batch_size)``; older runs: ``noise_std``); else ``None``."""
    sigma = number(hparams.get("gradient_noise_std", hparams.get("noise_std")))
    if hparams.get("model") == "langevin" and sigma is not None and lr is not None and lr > 0:
        return lr * sigma**2 / 2.0
    return None
