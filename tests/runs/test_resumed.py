"""A fit cut in Lightning's own ``lightning_logs/version_N`` and resumed from its checkpoint
into a new version is read as one run; a cut fit alone is unfinished (issue 26: a new user's
trial read the cut ``version_4`` as a complete run beside its continuation ``version_5``)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from tests.helpers.trainers import quiet_trainer
from thermo_lightning import keys
from thermo_lightning.callback import ThermoCallback
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet
from thermo_lightning.report import make_report
from thermo_lightning.runs import read_run
from thermo_lightning.runs.read import UNFINISHED_PROBLEM
from thermo_lightning.runs.resumed import join_resumed

STEPS = 40


class _Crash(pl.Callback):
    """A process killed at ``step`` (after the checkpoint at step 20)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("killed")


def _fit(logs: Path, *callbacks: pl.Callback, ckpt_path: Path | None = None) -> None:
    torch.manual_seed(0)
    model = ClassificationTask(ScaleInvariantConvNet(2, in_channels=1), lr=0.3)
    quiet_trainer(strategy="sphere_projection", max_steps=STEPS, enable_checkpointing=True,
                  callbacks=[ThermoCallback(window=5, k=2, stride=1, schedule=5, snr=None),
                             ModelCheckpoint(dirpath=logs.parent / "ckpt",
                                             every_n_train_steps=20, save_top_k=-1),
                             *callbacks],
                  logger=TensorBoardLogger(logs, name="lightning_logs")).fit(
        model, DigitsDataModule(batch_size=16, num_steps=STEPS), ckpt_path=ckpt_path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resumed")
    _fit(root / "whole" / "logs")
    logs = root / "cut" / "logs"
    with pytest.raises(RuntimeError, match="killed"):
        _fit(logs, _Crash(30))
    cut_alone = root / "cut_alone"
    import shutil

    shutil.copytree(logs, cut_alone / "logs")
    _fit(logs, ckpt_path=logs.parent / "ckpt" / "epoch=0-step=20.ckpt")
    return {"whole": root / "whole" / "logs" / "lightning_logs" / "version_0",
            "cut": logs / "lightning_logs", "cut_alone": cut_alone / "logs"}


@pytest.mark.slow  # three Lightning fits (the module's fixture)
def test_the_marks_say_where_a_fit_started_and_whether_it_ended(
        folders: dict[str, Path]) -> None:
    whole = read_run(folders["whole"])
    assert (whole.fit_start, whole.fit_ended, whole.unfinished) == (0, True, False)
    assert not {keys.FIT_START, keys.FIT_END} & set(whole.history.columns)
    assert whole.history[keys.ENERGY].notna().all()  # no row that held only a mark
    cut = read_run(folders["cut"] / "version_0")
    assert (cut.fit_start, cut.fit_ended, cut.unfinished) == (0, False, True)
    assert UNFINISHED_PROBLEM in cut.problems
    resumed = read_run(folders["cut"] / "version_1")
    assert (resumed.fit_start, resumed.fit_ended) == (20, True)


@pytest.mark.slow  # three Lightning fits (the module's fixture)
def test_a_resumed_fit_is_read_as_one_run_with_the_whole_fits_points(
        folders: dict[str, Path]) -> None:
    whole = read_run(folders["whole"])
    runs = [read_run(folders["cut"] / v, name=f"lightning_logs/{v}")
            for v in ("version_0", "version_1")]
    joined, messages = join_resumed(runs)
    assert [r.name for r in joined] == ["lightning_logs/version_1"]
    (run,) = joined
    assert run.fit_start == 0 and not run.unfinished and UNFINISHED_PROBLEM not in run.problems
    assert run.history["step"].tolist() == whole.history["step"].tolist()
    assert np.allclose(run.history[keys.ENERGY].to_numpy(),
                       whole.history[keys.ENERGY].to_numpy(), rtol=1e-6)
    assert len(messages) == 1 and "continued by lightning_logs/version_1" in messages[0]


@pytest.mark.slow  # three Lightning fits (the module's fixture)
def test_the_report_counts_one_run_and_a_cut_fit_alone_as_unfinished(
        folders: dict[str, Path], tmp_path: Path) -> None:
    result = make_report(folders["cut"].parent, tmp_path / "joined")
    assert result.runs["run"].tolist() == ["lightning_logs/version_1"]
    assert any("continued by" in m for m in result.messages)
    alone = make_report(folders["cut_alone"], tmp_path / "alone")
    (row,) = alone.runs.to_dict("records")
    assert row["regime"] == "unfinished" and "thermo/fit_end" in row["reason"]
    assert any("no thermo/fit_end" in m for m in alone.messages)


@pytest.mark.slow  # three Lightning fits (the module's fixture)
def test_a_resumed_fit_without_its_beginning_is_said(folders: dict[str, Path],
                                                     tmp_path: Path) -> None:
    runs, messages = join_resumed([read_run(folders["cut"] / "version_1")])
    assert len(runs) == 1 and runs[0].fit_start == 20
    assert len(messages) == 1 and "resumed at step 20" in messages[0]


def _events(folder: Path, name: str, rows: dict[int, dict[str, float]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    scratch = folder / f"scratch-{name}"
    with SummaryWriter(str(scratch)) as writer:
        for step, row in rows.items():
            for tag, value in row.items():
                writer.add_scalar(tag, value, step)
    (file,) = scratch.iterdir()
    file.rename(folder / f"events.out.tfevents.{name}")
    scratch.rmdir()


def test_a_finished_fit_extended_and_cut_in_its_own_version_is_unfinished(
        tmp_path: Path) -> None:
    # fit to step 40 (ended), then fit on from its last checkpoint to 60, killed at 50
    u, s, start, end = keys.ENERGY, keys.ENTROPY, keys.FIT_START, keys.FIT_END
    (tmp_path / "hparams.yaml").write_text("lr: 0.1\n")
    _events(tmp_path, "1000.a", {0: {start: 0}, **{t: {u: 1.0, s: 2.0} for t in (20, 30)},
                                 40: {u: 1.0, s: 2.0, end: 40}})
    _events(tmp_path, "2000.a", {40: {start: 40}, 50: {u: 0.5, s: 1.5}})
    run = read_run(tmp_path)
    assert (run.fit_start, run.fit_ended, run.unfinished) == (0, False, True)
    assert run.history["step"].tolist() == [20, 30, 40, 50]
    assert run.history[u].tolist() == [1.0, 1.0, 1.0, 0.5]  # step 40 is the first fit's
    _events(tmp_path, "3000.a", {50: {start: 50}, 60: {u: 0.25, s: 1.0, end: 60}})
    run = read_run(tmp_path)  # resumed again, to its end
    assert (run.fit_ended, run.unfinished) == (True, False)
    assert run.history["step"].tolist() == [20, 30, 40, 50, 60]


def _version(root: Path, n: int, rows: dict[int, dict[str, float]]) -> Path:
    folder = root / f"version_{n}"
    folder.mkdir(parents=True)
    (folder / "hparams.yaml").write_text("lr: 0.1\n")
    _events(folder, f"{1000 + n}.a", rows)
    return folder


def _points(steps: range, value: float) -> dict[int, dict[str, float]]:
    return {t: {keys.ENERGY: value, keys.ENTROPY: 2.0} for t in steps}


def _read_all(root: Path) -> list:
    return [read_run(p, name=p.name) for p in sorted(root.iterdir())]


def test_a_cut_fit_resumed_twice_is_read_once_from_its_newest_branch(tmp_path: Path) -> None:
    # version_0 cut at step 30 (checkpoints at 10 and 20); resumed from step 10 into
    # version_9, finished; resumed again from step 20 into version_10, finished. Both branches
    # share version_0's beginning: one run, the newer (version_10: Lightning's order, not the
    # names' letters), never two repeats
    start, end = keys.FIT_START, keys.FIT_END
    _version(tmp_path, 0, {0: {start: 0}, **_points(range(5, 35, 5), 1.0)})
    _version(tmp_path, 9, {10: {start: 10}, **_points(range(15, 45, 5), 2.0),
                           40: {keys.ENERGY: 2.0, keys.ENTROPY: 2.0, end: 40}})
    _version(tmp_path, 10, {20: {start: 20}, **_points(range(25, 45, 5), 3.0),
                            40: {keys.ENERGY: 3.0, keys.ENTROPY: 2.0, end: 40}})
    runs, messages = join_resumed(_read_all(tmp_path))
    (run,) = runs
    assert run.name == "version_10" and run.fit_start == 0 and not run.unfinished
    assert run.history["step"].tolist() == list(range(5, 45, 5))
    assert run.history[keys.ENERGY].tolist() == [1.0] * 4 + [3.0] * 4
    left = [m for m in messages if m.startswith("version_9: left out")]
    assert len(left) == 1 and "version_10" in left[0]
    assert not any("no unfinished log" in m for m in messages)


def test_a_fit_cut_twice_is_joined_along_its_chain(tmp_path: Path) -> None:
    # version_0 cut at 30, resumed from 10 into version_1 and cut again at 25, resumed from
    # its checkpoint at 20 into version_2: one run, each folder's points up to the next start
    start, end = keys.FIT_START, keys.FIT_END
    _version(tmp_path, 0, {0: {start: 0}, **_points(range(5, 35, 5), 1.0)})
    _version(tmp_path, 1, {10: {start: 10}, **_points(range(15, 30, 5), 2.0)})
    _version(tmp_path, 2, {20: {start: 20}, **_points(range(25, 45, 5), 3.0),
                           40: {keys.ENERGY: 3.0, keys.ENTROPY: 2.0, end: 40}})
    runs, messages = join_resumed(_read_all(tmp_path))
    (run,) = runs
    assert run.name == "version_2" and run.fit_start == 0 and not run.unfinished
    assert run.history["step"].tolist() == list(range(5, 45, 5))
    assert run.history[keys.ENERGY].tolist() == [1.0] * 2 + [2.0] * 2 + [3.0] * 4
    assert sum("continued by" in m for m in messages) == 2


def test_a_cut_fit_gets_one_note(tmp_path: Path) -> None:
    # the trial: a cut Lightning fit was said twice, the second time naming run.json, which
    # Lightning's folders do not have
    start = keys.FIT_START
    root = tmp_path / "lightning_logs"
    _version(root, 0, {0: {start: 0}, **_points(range(5, 35, 5), 1.0)})
    _version(root, 1, {0: {start: 0, keys.FIT_ID: 5.0}, **_points(range(5, 15, 5), 1.0)})
    _version(root, 2, {0: {start: 0, keys.FIT_ID: 6.0}, 5: {keys.ENERGY: 1.0}})  # no S yet
    result = make_report(root, tmp_path / "report", tensorboard=False)
    for name in ("version_0", "version_1", "version_2"):  # 1: 2 points; 2: no S logged
        about = [m for m in result.messages if m.startswith(name)]
        assert len(about) == 1 and "no thermo/fit_end" in about[0] and "run.json" not in about[0]
    # runs.csv agrees with the note: unfinished, not "unmeasured" (the trial's second round)
    assert set(result.runs["regime"]) == {"unfinished"}


def test_two_trainings_cut_at_the_same_step_are_joined_each_to_its_own(tmp_path: Path) -> None:
    # a new user's trial: two fits of one learning rate (seeds 1 and 2) cut at step 30, each
    # resumed from its own checkpoint at step 20; the steps alone cannot tell them apart, and
    # the report joined one resume to the other fit and dropped the second as a "branch".
    # Each fit logs its training's identity (thermo/fit_id, kept in the checkpoint)
    start, end, fit = keys.FIT_START, keys.FIT_END, keys.FIT_ID
    for n, ident, value in ((0, 11.0, 1.0), (1, 22.0, 2.0)):
        _version(tmp_path, n, {0: {start: 0, fit: ident}, **_points(range(5, 35, 5), value)})
    for n, ident, value in ((2, 11.0, 3.0), (3, 22.0, 4.0)):
        _version(tmp_path, n, {20: {start: 20, fit: ident}, **_points(range(25, 45, 5), value),
                               40: {keys.ENERGY: value, keys.ENTROPY: 2.0, end: 40}})
    runs, messages = join_resumed(_read_all(tmp_path))
    assert sorted(r.name for r in runs) == ["version_2", "version_3"]
    by_name = {r.name: r for r in runs}
    assert by_name["version_2"].history[keys.ENERGY].tolist() == [1.0] * 4 + [3.0] * 4
    assert by_name["version_3"].history[keys.ENERGY].tolist() == [2.0] * 4 + [4.0] * 4
    assert not any("left out" in m for m in messages), messages
    assert all(not r.unfinished for r in runs)


@pytest.mark.slow  # three Lightning fits (the module's fixture)
def test_a_resumed_fit_logs_its_trainings_identity(folders: dict[str, Path]) -> None:
    cut = read_run(folders["cut"] / "version_0")
    resumed = read_run(folders["cut"] / "version_1")
    whole = read_run(folders["whole"])
    assert cut.fit_id is not None and resumed.fit_id == cut.fit_id != whole.fit_id
