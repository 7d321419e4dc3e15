"""Launchers: the plan, the local processes, a real local Ray cluster, and SLURM through
submitit's local executor (real subprocesses, the same code path apart from sbatch)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from thermo_lightning.cli import main
from thermo_lightning.launch import Launcher, LocalLauncher, RayLauncher, SlurmLauncher
from thermo_lightning.report import make_report
from thermo_lightning.sweep import SweepConfig, SweepSettingsError, run_sweep
from thermo_lightning.sweep.plan import read_plan, write_plan

TINY = ["--model", "toy-up", "--lrs", "0.05", "0.1", "--steps", "40", "--window", "10",
        "--k", "3", "--snr", "none", "--schedule", "5", "--seeds", "0", "1"]
KNOWN_T = {"model": "langevin", "dim": 5, "noise_std": 0.5, "lrs": [0.02, 0.04, 0.08],
           "steps": 600, "window": 20, "k": [3], "schedule": 20}


def test_plan_lists_every_run_and_its_command(tmp_path: Path, capsys) -> None:
    assert main(["sweep", *TINY, "--out", str(tmp_path), "--plan"]) == 0
    out = capsys.readouterr().out
    plan = json.loads((tmp_path / "plan.json").read_text())
    names = [r["name"] for r in plan["runs"]]
    assert names == ["lr=5.00e-02,seed=0", "lr=5.00e-02,seed=1", "lr=1.00e-01,seed=0",
                     "lr=1.00e-01,seed=1"]
    assert plan["runs"][1]["axes"] == {"lr": 0.05, "seed": 1}
    assert plan["runs"][1]["command"][-4:] == ["--run", names[1], "--out", str(tmp_path)]
    assert "plan: 4 runs" in out and out.count("sweep-run") == 4
    assert not any(p.is_dir() for p in tmp_path.iterdir())  # nothing ran
    loaded = read_plan(tmp_path)
    assert [s.name for s in loaded.runs] == names and len(loaded.pending()) == 4
    # a plan over a sweep made with other settings is refused, as a sweep is
    with pytest.raises(SweepSettingsError):
        write_plan(SweepConfig(model="toy-up", lrs=[0.05], steps=80, window=10, k=[3],
                               snr=None, schedule=5), tmp_path)


def test_slurm_dry_run_prints_the_array_script(tmp_path: Path, capsys) -> None:
    pytest.importorskip("submitit")
    assert main(["sweep", *TINY, "--out", str(tmp_path), "--launcher", "slurm",
                 "--slurm-partition", "gpu", "--gpus-per-run", "1", "--cpus-per-run", "4",
                 "--slurm-time", "240", "--slurm-mem", "16G", "--slurm-parallelism", "2",
                 "--slurm-option", "account=proj", "--slurm-setup", "module load cuda",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    for line in ("#SBATCH --array=0-3%2", "#SBATCH --partition=gpu",
                 "#SBATCH --gpus-per-node=1", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --time=240", "#SBATCH --mem=16G", "#SBATCH --account=proj",
                 "module load cuda"):
        assert line in out, line
    assert not (tmp_path / "slurm").exists() and not any(p.is_dir() for p in tmp_path.iterdir())


def test_launcher_options_from_the_config_file(tmp_path: Path, capsys) -> None:
    pytest.importorskip("submitit")
    config = tmp_path / "sweep.yaml"
    config.write_text("model: toy-up\nlrs: [0.05]\nsteps: 40\nwindow: 10\nk: [3]\nsnr: none\n"
                      "schedule: 5\nlauncher: {name: slurm, partition: big, time_min: 30}\n")
    assert main(["sweep", "--config", str(config), "--out", str(tmp_path / "o"),
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --partition=big" in out and "#SBATCH --time=30" in out
    config.write_text("model: toy-up\nlrs: [0.05]\nlauncher: {name: slurm, nonsense: 1}\n")
    with pytest.raises(SystemExit, match="unknown options \\['nonsense'\\]"):
        main(["sweep", "--config", str(config), "--out", str(tmp_path / "p"), "--plan"])
    assert isinstance(LocalLauncher(), Launcher) and isinstance(RayLauncher(), Launcher)


def _numbers(folder: Path) -> pd.DataFrame:
    runs = pd.read_csv(folder / "report" / "runs.csv").set_index("run")
    return runs[["U", "S"]].sort_index()


@pytest.mark.slow
def test_slurm_launcher_through_submitits_local_executor(tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    cfg = SweepConfig.from_dict(KNOWN_T)
    local = run_sweep(cfg, tmp_path / "local", progress=False)
    slurm = run_sweep(cfg, tmp_path / "slurm", progress=False,
                      launcher=SlurmLauncher(executor="local", time_min=10))
    assert [p.name for p in slurm] == [p.name for p in local]
    for folder in slurm:
        assert json.loads((folder / "run.json").read_text())["status"] == "done"
    assert list((tmp_path / "slurm" / "slurm").iterdir())  # submitit's job folders
    for name in ("local", "slurm"):
        make_report(tmp_path / name, tensorboard=False, lr_range=(0.01, 1.0))
    pd.testing.assert_frame_equal(_numbers(tmp_path / "slurm"), _numbers(tmp_path / "local"),
                                  rtol=1e-9)


@pytest.mark.slow
def test_ray_launcher_on_a_local_cluster_and_a_killed_worker(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    cfg = SweepConfig.from_dict(KNOWN_T)
    run_sweep(cfg, tmp_path / "local", progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run_sweep(cfg, tmp_path / "ray", progress=False, launcher=RayLauncher())
        for name in ("local", "ray"):
            make_report(tmp_path / name, tensorboard=False, lr_range=(0.01, 1.0))
        pd.testing.assert_frame_equal(_numbers(tmp_path / "ray"), _numbers(tmp_path / "local"),
                                      rtol=1e-9)

        # a run whose worker dies mid-run is retried and resumes: no run is lost
        long = SweepConfig.from_dict({**KNOWN_T, "lrs": [0.04], "steps": 3000,
                                      "checkpoint_every": 150})
        out = tmp_path / "killed"
        launcher = RayLauncher(_pid_files=True)
        errors: list[BaseException] = []

        def sweep() -> None:
            try:
                run_sweep(long, out, progress=False, launcher=launcher)
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        thread = threading.Thread(target=sweep)
        thread.start()
        name = "lr=4.00e-02"
        pid_file, ckpt = out / f"{name}.worker", out / name / "checkpoints" / "last.ckpt"
        deadline = time.time() + 120
        while not (pid_file.exists() and ckpt.exists()) and time.time() < deadline:
            time.sleep(0.2)
        assert ckpt.exists(), "the run never wrote a checkpoint"
        first_worker = int(pid_file.read_text())
        os.kill(first_worker, signal.SIGKILL)
        thread.join(timeout=300)
        assert not thread.is_alive() and not errors, errors
        info = json.loads((out / name / "run.json").read_text())
        assert info["status"] == "done" and info["global_step"] == 3000
        assert int(pid_file.read_text()) != first_worker  # a second worker ran it
        # the second attempt resumed from last.ckpt: Lightning's CSV logger starts a new
        # version folder on a resume (tests/report/test_sweep_reliability.py checks the
        # resume itself)
        assert (out / name / "csv" / "version_1").is_dir()
        history = pd.read_csv(out / name / "history.csv")
        assert history["step"].max() == info["last_logged_step"]
        measured = history.dropna(subset=["thermo/S"])
        assert len(measured) > 5 and np.isfinite(measured["thermo/U"]).all()
    finally:
        ray.shutdown()


def test_a_missing_launcher_library_is_one_error_line(tmp_path: Path, monkeypatch,
                                                      capsys) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    assert main(["sweep", *TINY, "--out", str(tmp_path), "--launcher", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --launcher ray needs Ray") and "thermo-lightning[ray]" in err
    assert "Traceback" not in err


def test_bad_launcher_options_and_failed_runs_are_one_error_line(tmp_path: Path, capsys,
                                                                 monkeypatch) -> None:
    import yaml

    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({"launcher": {"name": "local", "workers": "two"}}))
    with pytest.raises(SystemExit, match="`workers` must be a positive integer"):
        main(["sweep", "--config", str(config), *TINY, "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        main(["sweep", *TINY, "--out", str(tmp_path / "b"), "--launcher", "slurm",
              "--slurm-option", "account", "--dry-run"])
    # a run that fails: the others finish, and the sweep says so in an error, not a traceback
    (tmp_path / "failing.py").write_text(
        "def make(lr, width, datamodule, seed):\n"
        "    if lr > 0.5:\n"
        "        raise RuntimeError('this model cannot train at that rate')\n"
        "    from thermo_lightning.models import ToySphereModule\n"
        "    return ToySphereModule(kind='up', lr=lr, seed=seed)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(["sweep", "--model", "failing:make", "--data", "none", "--precision", "64-true",
                 "--lrs", "0.05", "0.9", "--steps", "40", "--window", "10", "--k", "3",
                 "--snr", "none", "--schedule", "5", "--out", str(tmp_path / "c"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "error: some runs failed" in err and "Traceback" not in err
    assert "cannot train at that rate" in err and "run the same command again" in err
    assert json.loads((tmp_path / "c" / "lr=5.00e-02" / "run.json").read_text())["status"] == \
        "done"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_to_an_address_where_nothing_answers_fails_at_once(tmp_path: Path,
                                                                capsys) -> None:
    # ray.init retried for minutes; now one line within seconds, and no run started
    pytest.importorskip("ray")
    started = time.monotonic()
    code = main(["sweep", *TINY, "--out", str(tmp_path), "--launcher", "ray", "--ray-address",
                 f"127.0.0.1:{_free_port()}", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and time.monotonic() - started < 60
    assert err.startswith("error: --ray-address 127.0.0.1:") and "ray start --head" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no run folder


@pytest.mark.slow  # 9 s: starts a Ray cluster
def test_ray_gpus_per_run_without_gpus_fails_before_any_run(tmp_path: Path) -> None:
    # the docs' own command waited forever on a machine without GPUs (Ray cannot place it)
    import subprocess
    import sys

    pytest.importorskip("ray")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "thermo_lightning.cli", "sweep", *TINY, "--out", str(tmp_path),
         "--launcher", "ray", "--gpus-per-run", "1", "--ray-num-cpus", "1", "--no-progress"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and time.monotonic() - started < 60, out.stderr[-2000:]
    assert "error: --gpus-per-run 1: this machine's Ray cluster has 0 GPU(s)" in out.stderr
    assert "Traceback" not in out.stderr
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_slurm_without_slurm_is_one_error_line(tmp_path: Path, capsys) -> None:
    # submitit's 'Could not detect "srun"' was a traceback
    submitit = pytest.importorskip("submitit")
    import shutil

    if shutil.which("srun"):
        pytest.skip("this machine has SLURM")
    del submitit
    code = main(["sweep", *TINY, "--out", str(tmp_path), "--launcher", "slurm",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.startswith("error: --launcher slurm could not submit the array (RuntimeError: ")
    assert "srun" in err and "--slurm-executor local" in err
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_a_launcher_that_cannot_start_leaves_the_folder_as_it_was(tmp_path: Path,
                                                                  capsys) -> None:
    # the failed start left sweep.json and plan.json; the same folder with other settings
    # was then refused: "its finished runs would be skipped" (there were none)
    pytest.importorskip("ray")
    dead = ["--launcher", "ray", "--ray-address", f"127.0.0.1:{_free_port()}", "--no-progress"]
    out = tmp_path / "runs"
    assert main(["sweep", *TINY, "--out", str(out), *dead]) == 2
    assert not out.exists()  # the folder it created, removed again
    other = [*TINY[:TINY.index("--seeds")], "--steps", "30"]  # no seeds, fewer steps
    assert main(["sweep", *other, "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    plan, sweep = (out / "plan.json").read_text(), (out / "sweep.json").read_text()
    # a sweep that ran, then a failed start with other settings: its plan is kept, and the
    # folder still refuses other settings for the runs it holds
    assert main(["sweep", *TINY, "--out", str(out), *dead]) == 2
    assert "would be skipped" in capsys.readouterr().err  # checked before any launch
    extended = [*other[:other.index("--lrs")], "--lrs", "0.05", "0.1", "0.2",
                *other[other.index("--lrs") + 3:]]
    assert main(["sweep", *extended, "--out", str(out), *dead]) == 2
    assert (out / "plan.json").read_text() == plan and (out / "sweep.json").read_text() == sweep
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(
        r["name"] for r in json.loads(plan)["runs"])


def test_a_launcher_whose_package_is_missing_leaves_no_plan(tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    # without Ray installed: "needs Ray" (exit 2), and no sweep.json/plan.json left behind
    # that would make the folder refuse the next sweep with other settings
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray: ImportError
    out = tmp_path / "runs"
    assert main(["sweep", *TINY, "--out", str(out), "--launcher", "ray", "--no-progress"]) == 2
    assert "needs Ray" in capsys.readouterr().err and not out.exists()
