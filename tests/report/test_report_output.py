"""The report never deletes or rewrites what it did not write, installs only a complete
report, leaves no stale file of an earlier one, and writes one file per run (issue 26: each
test here failed on 6ed3ab5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.report.synthetic import canonical, history, write_run
from thermo_lightning.cli import main
from thermo_lightning.report import make_report
from thermo_lightning.report.output import MANIFEST
from thermo_lightning.runs.layout import WRITEBACK_FILE, WRITEBACK_SUFFIX

LRS = np.logspace(-3, -1, 6)


def _sweep(root: Path, fmt: str = "tb") -> Path:
    for i, lr in enumerate(LRS):
        _, u, s = canonical(lr)
        write_run(root, lr, history(u, s, noise=1e-4, seed=i), fmt=fmt)
    return root


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_users_files_with_the_reports_names_are_never_touched(tmp_path: Path,
                                                                capsys) -> None:
    runs = _sweep(tmp_path / "runs")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "snr.png").write_bytes(b"my own figure")  # a name the report can write
    (mine / "collapse.png").write_bytes(b"another")
    (mine / "notes.txt").write_text("my notes")
    before = _files(mine)
    for force in ([], ["--force"]):  # --force does not make them the report's
        assert main(["report", str(runs), "--out", str(mine), *force]) == 2
        err = capsys.readouterr().err
        assert "snr.png" in err and "collapse.png" in err and "another --out" in err
        assert _files(mine) == before  # nothing deleted, nothing written beside them


def test_a_users_tensorboard_folder_is_never_deleted(tmp_path: Path) -> None:
    runs = _sweep(tmp_path / "runs")
    mine = tmp_path / "mine"
    (mine / "tensorboard").mkdir(parents=True)
    (mine / "tensorboard" / "my_tb_note.txt").write_text("mine")
    before = _files(mine)
    for force in (False, True):
        with pytest.raises(FileExistsError, match="tensorboard"):
            make_report(runs, mine, force=force)
        assert _files(mine) == before  # and no half-written report beside it


def test_a_run_folder_or_the_folder_of_runs_is_refused_as_out(tmp_path: Path) -> None:
    runs = _sweep(tmp_path / "runs")
    run = sorted(runs.iterdir())[2]
    before = _files(run)
    for out in (run, run / "tensorboard", runs):
        with pytest.raises(ValueError, match="--out"):
            make_report(runs, out, force=True)
    assert _files(run) == before
    assert len(make_report(runs, tmp_path / "report").runs) == len(LRS)  # none lost


def test_force_replaces_exactly_the_earlier_reports_files(tmp_path: Path) -> None:
    runs = _sweep(tmp_path / "runs", fmt="csv")
    out = tmp_path / "report"
    first = make_report(runs, out)
    assert first.fit is not None and (out / "fit.json").exists()
    assert (out / "free_energy.csv").exists() and (out / MANIFEST).exists()
    (out / "notes.txt").write_text("the user's, beside the report")
    with pytest.raises(FileExistsError, match="--force"):
        make_report(runs, out)
    # a report with no fit and no temperature: the earlier one's fit.json, free_energy.csv and
    # figures go; the user's file stays
    second = make_report(runs, out, force=True, lr_range=(LRS[0], LRS[0]))
    assert second.fit is None and len(second.temperature) == 0
    assert not (out / "fit.json").exists() and not (out / "free_energy.csv").exists()
    assert not (out / "temperature.png").exists()
    assert (out / "notes.txt").read_text() == "the user's, beside the report"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        ["notes.txt", *(f.name for f in second.figures), "runs.csv", "temperature.csv",
         "messages.txt", "tensorboard"])
    assert not [p for p in out.iterdir() if "partial" in p.name]  # no staging left


def test_a_failed_report_leaves_the_folder_as_it_was(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from thermo_lightning.report import figures

    runs = _sweep(tmp_path / "runs", fmt="csv")
    out = tmp_path / "report"
    make_report(runs, out)
    before = _files(out)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(figures, "render_report_figures", broken)
    with pytest.raises(OSError, match="No space left"):
        make_report(runs, out, force=True)
    assert _files(out) == before  # the earlier report, whole
    with pytest.raises(OSError, match="No space left"):
        make_report(runs, tmp_path / "new")
    assert not (tmp_path / "new").exists()  # no half-written report


def test_two_reports_at_once_leave_one_file_per_run(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # another report (another --out) writes its file into each run while this one writes:
    # the interleaving that left two files, and two curves in TensorBoard, made certain
    import torch.utils.tensorboard as tb

    runs = _sweep(tmp_path / "runs")
    real = tb.SummaryWriter

    def racing(logdir: str, *args: object, **kwargs: object) -> object:
        folder = Path(logdir)
        run_folder = folder.parent if folder.name.startswith(".thermo_report.tmp") else folder
        if runs in run_folder.parents:
            (run_folder / f"events.out.tfevents.1.other.1{WRITEBACK_SUFFIX}").write_bytes(b"")
        return real(logdir, *args, **kwargs)

    monkeypatch.setattr(tb, "SummaryWriter", racing)
    make_report(runs, tmp_path / "a")
    for run in runs.iterdir():
        written = sorted(p.name for p in run.rglob(f"*{WRITEBACK_SUFFIX}"))
        assert written == [WRITEBACK_FILE], (run.name, written)
        assert not list(run.rglob(".thermo_report.tmp-*"))


def test_a_run_folder_that_cannot_be_written_is_said(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from thermo_lightning.report import tensorboard_view

    runs = _sweep(tmp_path / "runs")
    locked = sorted(runs.iterdir())[0]
    real = tensorboard_view._write_run_entry

    def read_only(folder: Path, run: object, *args: object) -> None:
        if locked in folder.parents or folder == locked:
            raise PermissionError(13, "Permission denied", str(folder))
        real(folder, run, *args)

    monkeypatch.setattr(tensorboard_view, "_write_run_entry", read_only)
    result = make_report(runs, tmp_path / "report")
    said = [m for m in result.messages if "TensorBoard entry was not written" in m]
    assert len(said) == 1 and locked.name in said[0] and "Permission denied" in said[0]
    assert len(result.runs) == len(LRS)  # the report is whole; the other runs got theirs
    assert len(list(runs.rglob(WRITEBACK_FILE))) == len(LRS) - 1


def test_a_users_file_inside_the_reports_tensorboard_folder_stays(tmp_path: Path) -> None:
    # a new user's trial (2026-12-05): a note put into OUT/tensorboard/ was deleted by the
    # next report --force, whose manifest listed the folder as a whole
    runs = _sweep(tmp_path / "runs", fmt="csv")
    out = tmp_path / "report"
    make_report(runs, out)
    board = out / "tensorboard"
    old = sorted(p.name for p in board.iterdir())
    (board / "my_note.txt").write_text("mine")
    (board / "mine").mkdir()
    (board / "mine" / "events.out.tfevents.0.my.1").write_bytes(b"my own events")
    make_report(runs, out, force=True)
    assert (board / "my_note.txt").read_text() == "mine"
    assert (board / "mine" / "events.out.tfevents.0.my.1").read_bytes() == b"my own events"
    new = sorted(p.name for p in board.iterdir() if p.name not in ("my_note.txt", "mine"))
    assert len(new) == len(old) == 1 and new != old  # the earlier report's entry replaced
    listed = json.loads((out / MANIFEST).read_text())["files"]
    assert f"tensorboard/{new[0]}" in listed and not any("my" in f for f in listed)


def test_an_old_manifest_gives_up_only_the_event_files_of_its_folder(tmp_path: Path) -> None:
    runs = _sweep(tmp_path / "runs", fmt="csv")
    out = tmp_path / "report"
    make_report(runs, out)
    files = json.loads((out / MANIFEST).read_text())["files"]
    old = sorted({f.split("/")[0] for f in files})  # as a version-1 manifest listed them
    (out / MANIFEST).write_text(json.dumps({"version": 1, "files": old}))
    (out / "tensorboard" / "my_note.txt").write_text("mine")
    make_report(runs, out, force=True)
    assert (out / "tensorboard" / "my_note.txt").read_text() == "mine"
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1


def test_a_hand_edited_manifest_deletes_nothing_outside_the_reports_names(
        tmp_path: Path) -> None:
    runs = _sweep(tmp_path / "runs", fmt="csv")
    out = tmp_path / "report"
    make_report(runs, out)
    (tmp_path / "precious.txt").write_text("keep")
    (out / "notes.txt").write_text("keep")
    files = json.loads((out / MANIFEST).read_text())["files"]
    (out / MANIFEST).write_text(json.dumps({"version": 2, "files": [
        *files, "../precious.txt", "notes.txt", str(tmp_path / "precious.txt"),
        "tensorboard/../notes.txt"]}))
    make_report(runs, out, force=True)
    assert (tmp_path / "precious.txt").read_text() == "keep"
    assert (out / "notes.txt").read_text() == "keep"


def test_a_file_that_takes_a_staged_files_place_stops_the_install_before_any_removal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from thermo_lightning.report import output as output_module

    runs = _sweep(tmp_path / "runs", fmt="csv")
    out = tmp_path / "report"
    make_report(runs, out)
    real = output_module.ReportOutput.install

    def racing(self: output_module.ReportOutput) -> list[str]:
        staged = sorted(p.name for p in (self.staging or out).glob("tensorboard/*"))
        (out / "tensorboard" / staged[0]).write_bytes(b"another writer's")
        return real(self)

    monkeypatch.setattr(output_module.ReportOutput, "install", racing)
    before = _files(out)
    with pytest.raises(FileExistsError, match="appeared while the report was written"):
        make_report(runs, out, force=True)
    after = _files(out)
    assert all(after.get(name) == data for name, data in before.items())  # nothing removed


def test_a_folder_that_holds_runs_is_refused_and_tables_hide_no_runs(tmp_path: Path) -> None:
    # a new user's trial: `report logs --out logs/A` was accepted, and its runs.csv and
    # temperature.csv then hid logs/A's runs from every later report, without a note
    runs = _sweep(tmp_path / "logs" / "A", fmt="csv")
    with pytest.raises(ValueError, match="holds the run"):
        make_report(tmp_path / "logs", runs, force=True)
    (runs / "runs.csv").write_text("run\n")  # the user's own tables beside the runs
    (runs / "temperature.csv").write_text("lr\n")
    assert len(make_report(tmp_path / "logs", tmp_path / "report").runs) == len(LRS)
