"""A run's record, run.json: one schema, written and read back, older files upgraded in one
place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thermo_lightning.runs.read import read_run
from thermo_lightning.runs.record import (
    SCHEMA_VERSION,
    NotARecordError,
    RunRecord,
    RunStatus,
    upgrade,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "old_format"


def test_a_record_round_trips_and_keeps_what_it_does_not_know(tmp_path: Path) -> None:
    record = RunRecord(hparams={"lr": 0.1, "model": "langevin"}, axes={"lr": 0.1, "seed": 2},
                       status=RunStatus.DONE.value, global_step=300, last_logged_step=300,
                       known_temperature=0.0125, notes=["a note"],
                       extra={"from_a_newer_writer": [1, 2]})
    record.write(tmp_path)
    again = RunRecord.read(tmp_path)
    assert again == record and again.done and again.version == SCHEMA_VERSION
    text = json.loads((tmp_path / "run.json").read_text())
    assert text["from_a_newer_writer"] == [1, 2] and "error" not in text  # absent, not null
    assert RunRecord.read(tmp_path / "missing") is None


def test_bad_files_say_what_is_wrong() -> None:
    with pytest.raises(NotARecordError):
        RunRecord.from_json("[1, 2]")
    with pytest.raises(json.JSONDecodeError):
        RunRecord.from_json("{not json")
    # a hand-edited file: fields of the wrong type are read as absent
    odd = RunRecord.from_json('{"hparams": 3, "status": 5, "global_step": "many", '
                              '"version": 1}')
    assert odd.hparams == {} and odd.status is None and odd.global_step is None


def test_version_0_files_are_upgraded_on_reading() -> None:
    # written by 6ed3ab5 (tests/fixtures/README.md): no version, no known_temperature
    raw = json.loads((FIXTURES / "seeds" / "lr=2.00e-02,seed=0" / "run.json").read_text())
    assert "version" not in raw and "known_temperature" not in raw
    record = RunRecord.from_dict(raw)
    assert record.version == SCHEMA_VERSION
    assert record.known_temperature == pytest.approx(0.02 * 0.5**2 / 2)
    assert record.axes == {"lr": 0.02, "seed": 0}
    # an older one still: no last_logged_step, axes, window_spec or gradient_noise_std
    raw = json.loads((FIXTURES / "legacy" / "lr=2.00e-02" / "run.json").read_text())
    assert not {"last_logged_step", "axes", "window_spec"} & set(raw)
    record = RunRecord.from_dict(raw)
    assert record.last_logged_step == 6000  # global_step on the every-100 schedule
    assert record.known_temperature == pytest.approx(0.02 * 0.5**2 / 2)  # from noise_std
    assert record.axes == {} and record.window_spec is None
    # the reader fills what a record leaves out: axes from the hyperparameters
    run = read_run(FIXTURES / "legacy" / "lr=2.00e-02")
    assert run.axes == {"lr": 0.02, "seed": 0} and run.known_temperature == pytest.approx(
        0.0025)
    # upgrading is done once: a version-1 record is read as it is
    assert upgrade({"version": 1, "status": "done", "global_step": 10}) == {
        "version": 1, "status": "done", "global_step": 10}
    assert upgrade({"status": "done", "global_step": 10,
                    "hparams": {"schedule": "log"}})["last_logged_step"] == 10


def test_the_runner_writes_version_1_records(tmp_path: Path) -> None:
    from thermo_lightning.sweep import SweepConfig, run_one

    cfg = SweepConfig(model="langevin", dim=4, lrs=[0.05], steps=40, window=10, k=[3],
                      schedule=10)
    run = run_one(cfg, 0.05, tmp_path)
    record = RunRecord.read(run)
    raw = json.loads((run / "run.json").read_text())
    assert raw["version"] == SCHEMA_VERSION and record.done
    from thermo_lightning.models import LangevinSphere

    # from its recipe: the discrete chain's dU/dS (about lr sigma^2 / 2)
    assert record.known_temperature == pytest.approx(
        LangevinSphere(dim=4, noise_std=0.5).chain_temperature(0.05))
    assert record.axes == {"lr": 0.05} and record.last_logged_step == 40
    assert record.window_spec["thermo_spec/window"] == 10 and record.random_loss > 0
