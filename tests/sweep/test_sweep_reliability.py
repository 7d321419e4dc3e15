"""Sweeps under faults: changed settings, overrides with workers, SIGTERM, killed parents,
two sweeps at once, checkpoints cut mid-write, bad settings (issue 11)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from lightning.pytorch.utilities.exceptions import SIGTERMException

from thermo_lightning.cli import main
from thermo_lightning.runs.record import RunRecord
from thermo_lightning.sweep import (
    RunLockedError,
    SweepConfig,
    SweepSettingsError,
    run_dir_name,
    run_one,
    run_sweep,
)
from thermo_lightning.sweep.runner import _sigterm_interrupts, run_lock

TINY = {"model": "toy-up", "data": None, "lrs": [0.05, 0.1], "steps": 30, "window": 10,
        "k": [3], "snr": None, "schedule": 5}
ROOT = Path(__file__).resolve().parents[2]


def _info(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def test_a_rerun_with_other_settings_is_refused(tmp_path: Path, capsys) -> None:
    run_sweep(SweepConfig.from_dict(TINY), tmp_path, progress=False)
    before = (tmp_path / "sweep.json").read_text()
    for change in ({"steps": 40}, {"window": 12}, {"k": [4]}):
        with pytest.raises(SweepSettingsError, match=f"{next(iter(change))}="):
            run_sweep(SweepConfig.from_dict({**TINY, **change}), tmp_path, progress=False)
    assert (tmp_path / "sweep.json").read_text() == before  # not rewritten
    # the CLI says so and exits non-zero
    assert main(["sweep", "--model", "toy-up", "--data", "none", "--lrs", "0.05", "0.1",
                 "--steps", "40", "--window", "10", "--k", "3", "--snr", "none",
                 "--schedule", "5", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "other settings" in capsys.readouterr().err
    # more learning rates on the same settings extend the sweep
    runs = run_sweep(SweepConfig.from_dict({**TINY, "lrs": [0.05, 0.1, 0.2]}), tmp_path,
                     progress=False)
    assert all(_info(r)["status"] == "done" for r in runs)


def test_a_run_made_with_other_settings_is_not_reused(tmp_path: Path) -> None:
    run_one(SweepConfig.from_dict(TINY), 0.05, tmp_path)
    with pytest.raises(SweepSettingsError, match="steps=30 there, 40 now"):
        run_one(SweepConfig.from_dict({**TINY, "steps": 40}), 0.05, tmp_path)


def test_learning_rates_that_round_alike_get_their_own_folders(tmp_path: Path) -> None:
    assert run_dir_name(0.01) == "lr=1.00e-02"  # three digits as before
    assert run_dir_name(0.0100001) != run_dir_name(0.01)
    assert run_dir_name(0.012345) == "lr=1.2345e-02"
    with pytest.raises(ValueError, match="distinct"):
        SweepConfig.from_dict({**TINY, "lrs": [0.05, 0.05]})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"window": 0}, "`window`"),
        ({"k": [3, 3]}, "`k`"),
        ({"k": [20]}, "`window`"),
        ({"stride": "fast"}, "`stride`"),
        ({"schedule": 0}, "`schedule`"),
        ({"estimator": "kl"}, "`estimator`"),
        ({"steps": "many"}, "`steps`"),
        ({"noise_std": [1, 2]}, "`noise_std`"),
        ({"download": "maybe"}, "`download`"),
        ({"checkpoint_every": 0}, "`checkpoint_every`"),
    ],
)
def test_bad_settings_fail_before_any_run(tmp_path: Path, change: dict, match: str) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**TINY, **change}))
    with pytest.raises(SystemExit, match=match):
        main(["sweep", "--config", str(path), "--out", str(tmp_path / "runs")])
    assert not (tmp_path / "runs").exists()


def test_yaml_numbers_written_as_text_are_read() -> None:
    cfg = SweepConfig.from_dict({**TINY, "lrs": ["1e-2", "2e-2"], "stride": "3",
                                 "schedule": "5"})
    assert cfg.learning_rates() == [0.01, 0.02] and cfg.stride == 3 and cfg.schedule == 5


def test_a_run_locked_by_another_process_is_left_to_it(tmp_path: Path) -> None:
    cfg = SweepConfig.from_dict(TINY)
    run_dir = tmp_path / run_dir_name(0.05)
    run_dir.mkdir()
    with run_lock(run_dir):  # as if another sweep were training it
        with pytest.raises(RunLockedError, match="another process"):
            run_one(cfg, 0.05, tmp_path)
        with pytest.warns(UserWarning, match="another process"):
            run_sweep(cfg, tmp_path, progress=False)
        assert not (run_dir / "run.json").exists()
        assert _info(tmp_path / run_dir_name(0.1))["status"] == "done"
    run_sweep(cfg, tmp_path, progress=False)  # the lock is free again
    assert _info(run_dir)["status"] == "done"


def test_a_checkpoint_cut_mid_write_is_kept_aside_and_the_run_restarts(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("THERMO_FLAKY_FLAG", str(tmp_path / "flag"))
    cfg = SweepConfig(model="tests.helpers.flaky:make", data=None, lrs=[0.05], steps=30,
                      window=8, k=[3], snr=None, schedule=5, checkpoint_every=10)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run_one(cfg, 0.05, tmp_path)
    last = tmp_path / run_dir_name(0.05) / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="unreadable"):
        run_one(cfg, 0.05, tmp_path)
    info = _info(last.parents[1])
    assert info["status"] == "done" and info["global_step"] == 30
    assert any("unreadable" in n for n in info["notes"])
    assert len(list(last.parent.glob("last.unreadable-*.ckpt"))) == 1


def _spawn_sweep(out: Path, *extra: str, config: Path | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "thermo_lightning.cli", "sweep", "--out", str(out),
           "--no-progress", *extra]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.2)


def _running(run: Path) -> bool:
    try:
        return _info(run).get("status") == "running"
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def test_a_second_sigterm_does_not_cut_the_write_that_marks_the_run_interrupted() -> None:
    # a worker whose parent dies gets SIGTERM twice (the kernel's and its watcher's): the
    # second one, arriving while the first is handled, cut the record's write
    handled = []

    def stopped_twice() -> None:
        with _sigterm_interrupts():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5.0)  # the handler raises within this sleep
            except SIGTERMException:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)
                handled.append(True)
                raise

    with pytest.raises(SIGTERMException):
        stopped_twice()
    assert handled == [True]


def test_a_sigterm_as_soon_as_the_run_says_running_marks_it_interrupted(
        tmp_path: Path, monkeypatch) -> None:
    # the sweep's test killed the parent as soon as run.json said "running"; a SIGTERM then,
    # before the run's try block, left "running" in the record of a process that had ended
    write = RunRecord.write

    def write_then_stop(self: RunRecord, run_dir: Path) -> None:
        write(self, run_dir)
        if self.status == "running":
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(RunRecord, "write", write_then_stop)
    with pytest.raises(SIGTERMException):
        run_one(SweepConfig.from_dict(TINY), 0.05, tmp_path)
    assert _info(tmp_path / run_dir_name(0.05))["status"] == "interrupted"


LONG = ["--model", "toy-up", "--data", "none", "--lrs", "0.05", "0.1", "0.2",
        "--steps", "200000", "--window", "10", "--k", "3", "--snr", "none", "--schedule", "1000"]


@pytest.mark.slow
def test_sigterm_stops_the_sweep_with_a_non_zero_exit(tmp_path: Path) -> None:
    proc = _spawn_sweep(tmp_path, *LONG)
    first = tmp_path / run_dir_name(0.05)
    _wait_for(lambda: _running(first))
    time.sleep(2.0)  # inside trainer.fit
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "SIGTERM" in err
    assert _info(first)["status"] == "interrupted"
    assert not (tmp_path / run_dir_name(0.1)).exists()  # the remaining LRs were not started


@pytest.mark.slow
def test_sigterm_stops_parallel_workers_and_leaves_the_rest_unstarted(tmp_path: Path) -> None:
    proc = _spawn_sweep(tmp_path, *LONG, "--workers", "2")
    first, second = (tmp_path / run_dir_name(lr) for lr in (0.05, 0.1))
    _wait_for(lambda: _running(first) and _running(second))
    time.sleep(2.0)  # both inside trainer.fit
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "2 runs interrupted, 1 not started" in err
    assert _info(first)["status"] == _info(second)["status"] == "interrupted"
    assert not (tmp_path / run_dir_name(0.2)).exists()


@pytest.mark.slow
def test_workers_use_command_line_overrides_and_die_with_their_parent(tmp_path: Path) -> None:
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({**TINY, "steps": 30}))
    # the command line overrides the YAML's steps; the workers must train with the override
    proc = _spawn_sweep(tmp_path / "runs", "--workers", "2", "--steps", "200000",
                        "--schedule", "1000", config=config)
    runs = [tmp_path / "runs" / run_dir_name(lr) for lr in TINY["lrs"]]
    _wait_for(lambda: all(_running(r) for r in runs))
    infos = [_info(r) for r in runs]
    assert all(i["hparams"]["steps"] == 200000 for i in infos)
    pids = [i["pid"] for i in infos]
    os.kill(proc.pid, signal.SIGKILL)  # the parent dies without cleaning up
    proc.communicate(timeout=60)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie (not reaped by anyone yet) counts as stopped
            return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
        except OSError:
            return True

    _wait_for(lambda: all(gone(p) for p in pids), timeout=60)
    assert all(_info(r)["status"] == "interrupted" for r in runs), [_info(r) for r in runs]


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_marks_runs_interrupted_without_a_traceback(tmp_path: Path, workers: str) -> None:
    # a Ctrl-C in a terminal reaches the whole process group: the sweep and its workers.
    # It printed a traceback, and the workers' runs said "failed" (Lightning's graceful
    # shutdown ends in sys.exit(1)) instead of "interrupted"
    proc = _spawn_sweep(tmp_path, *LONG, "--workers", workers)
    started = [tmp_path / run_dir_name(lr) for lr in (0.05, 0.1)[: int(workers)]]
    _wait_for(lambda: all(_running(r) for r in started))
    time.sleep(2.0)  # inside trainer.fit
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
    assert "Traceback" not in err and "sweep stopped by Ctrl-C" in err, err[-2000:]
    assert all(_info(r)["status"] == "interrupted" for r in started), [
        _info(r) for r in started]
    assert "Ctrl-C" in _info(started[0])["error"]


@pytest.mark.slow
def test_a_ctrl_c_to_the_sweep_alone_reaches_its_workers_as_a_ctrl_c(tmp_path: Path) -> None:
    # a new user's trial: SIGINT to the parent only (kill -INT, an IDE's stop button) was
    # passed on as SIGTERM, and the runs said "SIGTERM"
    proc = _spawn_sweep(tmp_path, *LONG, "--workers", "2")
    started = [tmp_path / run_dir_name(lr) for lr in (0.05, 0.1)]
    _wait_for(lambda: all(_running(r) for r in started))
    time.sleep(2.0)  # inside trainer.fit
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
    assert "sweep stopped by Ctrl-C; 2 runs interrupted" in err, err[-2000:]
    infos = [_info(r) for r in started]
    assert all(i["status"] == "interrupted" and "Ctrl-C" in i["error"] for i in infos), infos


@pytest.mark.slow
def test_a_ctrl_c_while_the_workers_start_counts_runs_that_never_began(tmp_path: Path) -> None:
    # a new user's trial: a Ctrl-C while the workers were still importing said "2 runs
    # interrupted" though neither run had begun (their run.json was an earlier attempt's)
    proc = _spawn_sweep(tmp_path, *LONG, "--workers", "2")
    logs = [tmp_path / f"{run_dir_name(lr)}.log" for lr in (0.05, 0.1)]
    _wait_for(lambda: all(log.exists() for log in logs), timeout=60)
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's: the workers get it as they start
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err[-2000:]
    began = sum((tmp_path / run_dir_name(lr) / "run.json").exists() for lr in (0.05, 0.1))
    assert began < 2, "the workers began their runs before the Ctrl-C: no start-up to test"
    assert (f"sweep stopped by Ctrl-C; {began} run{'s' if began != 1 else ''} interrupted, "
            f"{3 - began} not started") in err, err[-2000:]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) is not training
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_sigterm_to_a_local_slurm_array_leaves_no_orphan(tmp_path: Path) -> None:
    # the sweep died with -15 and left the array's tasks training, run.json "running"
    pytest.importorskip("submitit")
    proc = _spawn_sweep(tmp_path, *LONG, "--launcher", "slurm", "--slurm-executor", "local")
    runs = [tmp_path / run_dir_name(lr) for lr in (0.05, 0.1, 0.2)]
    _wait_for(lambda: all(_running(r) for r in runs), timeout=180)
    time.sleep(2.0)  # inside trainer.fit
    pids = [_info(r)["pid"] for r in runs]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "sweep stopped by SIGTERM; 3 array tasks cancelled" in err and "Traceback" not in err
    assert [_info(r)["status"] for r in runs] == ["interrupted"] * 3
    assert not [pid for pid in pids if _alive(pid)]


def test_a_full_disk_is_one_error_line(tmp_path: Path, capsys, monkeypatch) -> None:
    # a full disk while the sweep writes its plan was a traceback; while a run writes its
    # record, the run is said to have failed and the sweep ends with exit 1
    import errno

    import thermo_lightning.sweep.plan as plan
    from thermo_lightning.runs.record import RunRecord

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    args = ["sweep", "--model", "toy-up", "--lrs", "0.05", "0.1", "--steps", "40", "--window",
            "10", "--k", "3", "--snr", "none", "--schedule", "5", "--no-progress"]
    with monkeypatch.context() as m:
        m.setattr(plan, "_write_atomic", full)
        assert main([*args, "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: No space left on device (") and "sweep.json" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    with monkeypatch.context() as m:
        m.setattr(RunRecord, "write", lambda self, folder, *a, **k: full(folder / "run.json"))
        assert main([*args, "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    # every run failed: said so, not "the other runs are done"
    assert "error: all runs failed" in err and "No space left on device" in err
    assert "None finished" in err and "other runs are done" not in err
    assert "Traceback" not in err


def test_a_retried_run_keeps_no_stale_error(tmp_path: Path) -> None:
    # after a retry a finished run's run.json still said "error": "SIGTERM ..." (issue 30)
    from thermo_lightning.runs.record import RunRecord

    cfg = SweepConfig.from_dict(TINY)
    folder = tmp_path / run_dir_name(0.05)
    folder.mkdir()
    RunRecord(status="interrupted", error="SIGTERM (resumes from its last checkpoint)").write(
        folder)
    run_one(cfg, 0.05, tmp_path)
    info = _info(folder)
    assert info["status"] == "done" and "error" not in info
    assert info["notes"] == ["an earlier attempt ended: SIGTERM (resumes from its last "
                             "checkpoint)"]
