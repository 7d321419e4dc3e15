"""Where a run's files lie: folder names and their inverse, finding runs, a run's own
TensorBoard folder."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thermo_lightning.runs.layout import (
    RunSpec,
    find_runs,
    lr_from_name,
    parse_run_dir_name,
    run_dir_name,
    run_event_folder,
    value_text,
)

# axis values a grid can hold: integers, booleans, floats, and names (never number-like)
values = st.one_of(st.integers(-10**6, 10**6), st.booleans(),
                   st.floats(allow_nan=False, allow_infinity=False, width=64),
                   st.from_regex(r"[a-z]{1,8}_x", fullmatch=True))


@given(lr=st.floats(1e-8, 10.0), seed=st.one_of(st.none(), st.integers(0, 99)),
       axis=values)
def test_a_run_name_is_read_back_as_written(lr: float, seed: int | None, axis: object) -> None:
    name = run_dir_name(lr, seed, {"batch_size": 64, "opt": axis})
    parsed = parse_run_dir_name(name)
    assert parsed is not None and parsed["lr"] == lr and parsed.get("seed") == seed
    assert parsed["batch_size"] == 64
    assert parsed["opt"] == axis and type(parsed["opt"]) in (type(axis), int)  # 2.0 -> 2.0


def test_names_of_the_sweep_and_other_folders() -> None:
    assert run_dir_name(0.01) == "lr=1.00e-02"
    assert run_dir_name(1.0001e-2) == "lr=1.0001e-02"  # as many digits as it needs
    assert RunSpec(0.01, 1, (("batch_size", 64),)).name == "lr=1.00e-02,batch_size=64,seed=1"
    assert parse_run_dir_name("version_0") is None
    assert parse_run_dir_name("lr=abc") is None
    assert parse_run_dir_name("lr=0.1,seed=0,width=3") is None  # seed comes last
    assert parse_run_dir_name("lr=0.1,lr=0.2") is None
    # older and hand-made folders still give their learning rate
    assert lr_from_name("lr_0.05") == 0.05 and lr_from_name("mylr3e-4run") == 3e-4
    assert lr_from_name("lr=1.2.3") is None and lr_from_name("version_3") is None
    with pytest.raises(ValueError, match="names a folder"):
        value_text("a/b")
    assert value_text(1e-4) == "0.0001" and value_text(2.0) == "2.0" and value_text(None) == "none"
    assert math.isclose(parse_run_dir_name(run_dir_name(0.1, values={"wd": 1e-4}))["wd"], 1e-4)


def test_find_runs_and_their_event_folders(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    run = sweep / "lr=1.00e-02"
    (run / "tensorboard").mkdir(parents=True)
    (run / "tensorboard" / "events.out.tfevents.1.x").write_bytes(b"")
    (run / "csv" / "version_0").mkdir(parents=True)
    (run / "csv" / "version_0" / "metrics.csv").write_text("step\n")
    logs = tmp_path / "lightning_logs" / "version_3"
    logs.mkdir(parents=True)
    (logs / "events.out.tfevents.2.y").write_bytes(b"")
    (logs / "events.out.tfevents.3.y.thermo_report").write_bytes(b"")  # a report's
    report = sweep / "report"
    report.mkdir()
    for name in ("runs.csv", "temperature.csv"):
        (report / name).write_text("")
    (report / "tensorboard").mkdir()
    (report / "tensorboard" / "events.out.tfevents.4.z").write_bytes(b"")
    assert find_runs(tmp_path) == [logs, run]  # a report is not a run
    assert run_event_folder(run) == run / "tensorboard"
    assert run_event_folder(logs) == logs
    only_written_back = tmp_path / "bare"
    only_written_back.mkdir()
    (only_written_back / "events.out.tfevents.5.thermo_report").write_bytes(b"")
    assert run_event_folder(only_written_back) is None
    with pytest.raises(FileNotFoundError, match="not a folder of runs"):
        find_runs(tmp_path / "missing")


def test_lightning_hparams_with_tuples_are_read(tmp_path: Path) -> None:
    # Lightning writes a tuple hyperparameter (Adam's betas) as !!python/tuple
    from thermo_lightning.runs.read import read_run

    run = tmp_path / "version_0"
    run.mkdir()
    (run / "hparams.yaml").write_text("lr: 0.05\nbetas: !!python/tuple\n- 0.9\n- 0.999\n")
    (run / "metrics.csv").write_text("step,thermo/U,thermo/S\n10,1.0,2.0\n")
    data = read_run(run)
    assert data.lr == 0.05 and data.hparams["betas"] == [0.9, 0.999]
    assert data.problems == []
    # anything that would run code stays refused
    (run / "hparams.yaml").write_text("lr: 0.05\nx: !!python/object/apply:os.getcwd []\n")
    assert any("not valid YAML" in p for p in read_run(run).problems)
