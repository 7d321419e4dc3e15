"""Sweeps and the CLI, end to end at tiny sizes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from thermo_lightning.cli import main
from thermo_lightning.sweep import SweepConfig, lr_grid, run_dir_name, run_one, run_sweep

TINY = {"model": "toy-up", "data": None, "lrs": [0.05, 0.1, 0.2], "steps": 40, "window": 10,
        "k": [3], "snr": None, "schedule": 5}


def test_config_validation_and_yaml(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(TINY))
    cfg = SweepConfig.from_yaml(path)
    assert cfg.learning_rates() == [0.05, 0.1, 0.2]
    assert cfg.resolved_precision() == "64-true"
    assert lr_grid(1e-3, 1.0, 4) == [0.001, 0.01, 0.1, 1.0]
    with pytest.raises(ValueError, match="unknown sweep settings"):
        SweepConfig.from_dict({"modle": "convnet"})
    with pytest.raises(ValueError, match="`model`"):
        SweepConfig(model="mlp")
    with pytest.raises(ValueError, match="needs `data`"):
        SweepConfig(model="convnet", data=None)
    with pytest.raises(ValueError, match="`lrs`"):
        SweepConfig(lrs=[0.1, -1.0])
    assert SweepConfig(stride_per_lr=2.0, lrs=[0.03], steps=20_000).stride_for(0.03) == 67


def test_sweep_writes_runs_and_skips_finished_ones(tmp_path: Path) -> None:
    cfg = SweepConfig.from_dict(TINY)
    runs = run_sweep(cfg, tmp_path, progress=False)
    assert [p.name for p in runs] == [run_dir_name(lr) for lr in cfg.learning_rates()]
    for run in runs:
        info = json.loads((run / "run.json").read_text())
        assert info["status"] == "done" and info["global_step"] == 40
        # loss of uniform random points for the toy: E[(a . x)^2] = 1/3 (64 draws)
        assert 0.2 < info["random_loss"] < 0.47
        assert info["hparams"]["lr"] in cfg.learning_rates()
        assert {"model", "width", "seed", "steps", "window", "stride", "k", "estimator"} <= set(
            info["hparams"])
        hist = pd.read_csv(run / "history.csv")
        assert hist["step"].tolist() == [5.0 * i for i in range(1, 9)]
        assert any((run / "tensorboard").glob("events.out.tfevents*"))
        assert (run / "csv" / "version_0" / "metrics.csv").exists()
    stamp = (runs[0] / "history.csv").stat().st_mtime_ns
    run_sweep(cfg, tmp_path, progress=False)  # finished runs are skipped
    assert (runs[0] / "history.csv").stat().st_mtime_ns == stamp


def test_seeds_run_every_learning_rate_once_per_seed(tmp_path: Path, capsys) -> None:
    from thermo_lightning.report import make_report

    with pytest.raises(ValueError, match="`seeds`"):
        SweepConfig.from_dict({**TINY, "seeds": [1, 1]})
    with pytest.raises(ValueError, match="`seeds`"):
        SweepConfig.from_dict({**TINY, "seeds": []})
    cfg = SweepConfig.from_dict({**TINY, "lrs": [0.05, 0.1], "seeds": ["0", "2"]})
    assert cfg.seeds == [0, 2]
    assert [(r.lr, r.seed) for r in cfg.runs()] == [(0.05, 0), (0.05, 2), (0.1, 0), (0.1, 2)]
    runs = run_sweep(cfg, tmp_path, progress=False)
    assert [p.name for p in runs] == ["lr=5.00e-02,seed=0", "lr=5.00e-02,seed=2",
                                      "lr=1.00e-01,seed=0", "lr=1.00e-01,seed=2"]
    finals = {}
    for run in runs:
        info = json.loads((run / "run.json").read_text())
        assert info["status"] == "done" and "seeds" not in info["hparams"]
        assert run.name.endswith(f"seed={info['hparams']['seed']}")
        finals[run.name] = pd.read_csv(run / "history.csv")["thermo/U"].iloc[-1]
    # each seed its own batch sequence and start: different runs at one learning rate
    assert finals["lr=5.00e-02,seed=0"] != finals["lr=5.00e-02,seed=2"]
    stamp = (runs[0] / "history.csv").stat().st_mtime_ns
    # more seeds later: the finished runs are kept, the new ones added
    more = run_sweep(SweepConfig.from_dict({**TINY, "lrs": [0.05, 0.1], "seeds": [0, 2, 3]}),
                     tmp_path, progress=False)
    assert (runs[0] / "history.csv").stat().st_mtime_ns == stamp and len(more) == 6
    result = make_report(tmp_path, tmp_path / "report", lr_range=(0.01, 1.0),
                         tensorboard=False)
    assert sorted(result.runs["seed"].tolist()) == [0, 0, 2, 2, 3, 3]
    assert any("3 runs (seeds) averaged" in m for m in result.messages)
    assert main(["sweep", "--model", "toy-up", "--lrs", "0.05", "--seeds", "4", "5",
                 "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["seeds"] == [4, 5]
    with pytest.raises(ValueError, match="not one of the sweep's `seeds`"):
        run_one(cfg, 0.05, tmp_path, seed=7)


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("THERMO_FLAKY_FLAG", str(tmp_path / "flag"))
    cfg = SweepConfig(model="tests.helpers.flaky:make", data=None, lrs=[0.05], steps=30,
                      window=8, k=[3], snr=None, schedule=5, checkpoint_every=10)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run_one(cfg, 0.05, tmp_path)
    run = tmp_path / run_dir_name(0.05)
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    assert (run / "checkpoints" / "last.ckpt").exists()
    run_one(cfg, 0.05, tmp_path)  # resumes at step 10
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "done" and info["global_step"] == 30
    hist = pd.read_csv(run / "history.csv")
    assert hist["step"].tolist() == [5.0 * i for i in range(1, 7)]  # history continued
    # the interrupted attempt's CSV log is kept next to the resumed one
    assert sorted(p.name for p in (run / "csv").iterdir()) == ["version_0", "version_1"]


def test_cli_sweep_and_report_end_to_end(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "lrs": [0.02, 0.05, 0.1, 0.2]}))
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "runs"),
                 "--steps", "60", "--no-progress"]) == 0
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"),
                 "--lr-range", "0.01", "1"]) == 0
    out = capsys.readouterr().out
    assert "report written to" in out
    temp = pd.read_csv(tmp_path / "rep" / "temperature.csv")
    assert len(temp) == 4 and set(temp.columns) >= {"lr", "U", "S", "T", "valid", "regime"}
    for png in ("u_s_vs_lr", "u_vs_s", "temperature", "free_energy"):
        assert (tmp_path / "rep" / f"{png}.png").stat().st_size > 2000
    assert not (tmp_path / "rep" / "snr.png").exists()  # snr=None: no empty placeholder
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep")]) == 2
    assert "--force" in capsys.readouterr().err


def test_cli_reports_bad_config(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="does not exist"):
        main(["sweep", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="`model`"):
        main(["sweep", "--model", "mlp", "--out", str(tmp_path)])


def test_print_config_round_trips_through_config(tmp_path: Path, capsys) -> None:
    config = tmp_path / "base.yaml"
    config.write_text("model: langevin\nsteps: 300\n")
    assert main(["sweep", "--config", str(config), "--lrs", "0.02", "0.01", "--window", "20",
                 "--print-config"]) == 0
    printed = capsys.readouterr().out
    values = yaml.safe_load(printed)
    import dataclasses

    assert set(values) == {f.name for f in dataclasses.fields(SweepConfig)}  # every setting
    assert values["model"] == "langevin" and values["steps"] == 300  # from the file
    assert values["lrs"] == [0.02, 0.01] and values["window"] == 20  # flags, converted
    assert values["snr_batches"] == 16  # a default, filled in
    assert not any(tmp_path.glob("lr=*"))  # nothing ran
    saved = tmp_path / "full.yaml"
    saved.write_text(printed)
    assert SweepConfig.from_yaml(saved) == SweepConfig.from_dict(values)
    assert main(["sweep", "--config", str(saved), "--print-config"]) == 0
    assert capsys.readouterr().out == printed  # a fixed point
    with pytest.raises(SystemExit, match="`model`"):  # checked as a sweep is
        main(["sweep", "--model", "mlp", "--print-config"])
    assert main(["sweep", "--config", str(saved)]) == 2  # a sweep still needs --out
    assert "needs --out" in capsys.readouterr().err


def test_auto_settings_follow_the_model(capsys) -> None:
    # the toy and Langevin problems bring their own data: `--model langevin` alone works
    # (it used to fail mid-run on the digits default); the printed config shows the result
    cfg = SweepConfig(model="langevin", lrs=[0.02])
    assert cfg.data is None and cfg.precision == "64-true" and cfg.snr is None
    assert SweepConfig(model="toy-up", lrs=[0.1]).snr == "auto"  # its objects: exact SNR
    net = SweepConfig(model="convnet", lrs=[0.1])
    assert net.data == "digits" and net.precision == "32-true"
    with pytest.raises(ValueError, match="brings its own data"):
        SweepConfig(model="langevin", data="digits", lrs=[0.02])
    assert main(["sweep", "--model", "langevin", "--lrs", "0.02", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"] is None and printed["precision"] == "64-true"
    assert printed["snr"] is None
    # an older sweep.json (precision null, before "auto") reads as the same settings
    old = {**dataclasses.asdict(net), "precision": None}
    assert SweepConfig.from_dict(old) == net


def test_console_script_is_installed() -> None:
    out = subprocess.run([sys.executable, "-m", "thermo_lightning.cli", "--help"],
                         capture_output=True, text=True, check=True)
    assert "demo" in out.stdout and "sweep" in out.stdout and "report" in out.stdout
    assert "SUPPRESS" not in out.stdout
    assert "sweep-run" in out.stdout  # the unit every launcher runs: public
    assert "``" not in out.stdout  # no raw reST


def test_help_documents_every_sweep_setting_with_its_default(capsys) -> None:
    import dataclasses

    from thermo_lightning.sweep.config import FIELD_HELP, SweepConfig

    fields = {f.name for f in dataclasses.fields(SweepConfig)}
    assert set(FIELD_HELP) == fields  # no field without its line, none left over
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, also at hyphens
    for name in fields:
        assert f"--{name.replace('_', '-')}" in text
        assert "".join(FIELD_HELP[name].split()) in text
    assert "langevin" in text and "kozachenko_leonenko" in text and "(default:auto)" in text
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("thermo-lightning ")


@pytest.mark.slow
def test_parallel_workers(tmp_path: Path) -> None:
    cfg = SweepConfig.from_dict({**TINY, "steps": 20})
    runs = run_sweep(cfg, tmp_path / "lrs", workers=2, progress=False)
    for run in runs:
        assert json.loads((run / "run.json").read_text())["status"] == "done"
        # each worker's log says where its run is (the parent shows the last line)
        log = (run.parent / f"{run.name}.log").read_text()
        # 20 steps: stride="auto"'s pilot never ends, and the lines say so
        assert "step 20/20, stride pilot" in log
    # seeds through the workers: each child trains its own seed in its own folder
    seeded = run_sweep(SweepConfig.from_dict({**TINY, "steps": 20, "lrs": [0.05],
                                              "seeds": [1, 2]}), tmp_path / "seeds",
                       workers=2, progress=False)
    for run, seed in zip(seeded, (1, 2), strict=True):
        assert run.name == f"lr=5.00e-02,seed={seed}"
        info = json.loads((run / "run.json").read_text())
        assert info["status"] == "done" and info["hparams"]["seed"] == seed
        assert f"seed={seed} step 20/20" in (run.parent / f"{run.name}.log").read_text()


def test_progress_inside_a_run(tmp_path: Path) -> None:
    from thermo_lightning.launch.progress import last_progress
    from thermo_lightning.sweep import run_one

    cfg = SweepConfig.from_dict({**TINY, "steps": 200})
    lines: list[str] = []
    run_one(cfg, cfg.learning_rates()[0], tmp_path, progress=lines.append)
    assert len(lines) == 100 and lines[-1].endswith("step 200/200, window 100%")
    assert lines[0].startswith(f"lr={cfg.learning_rates()[0]:g} step 2/200")
    log = tmp_path / "w.log"
    log.write_text("noise\n" + "\n".join(lines[:3]) + "\nWarning: x\n")
    assert last_progress(log) == lines[2]  # what a launcher's bar shows for this worker
    auto = SweepConfig.from_dict({**TINY, "steps": 600, "stride": "auto"})
    lines.clear()
    run_one(auto, auto.learning_rates()[0], tmp_path / "auto", progress=lines.append)
    pilot = [ln for ln in lines if ln.endswith(", stride pilot")]
    assert pilot and lines.index(pilot[-1]) == len(pilot) - 1  # the first lines, then windows
    assert lines[-1].endswith("step 600/600, window 100%")


def test_a_window_that_cannot_fill_is_refused_before_any_run(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="needs 1000 steps, more than `steps` \\(300\\)"):
        main(["sweep", "--model", "toy-up", "--data", "none", "--steps", "300", "--window",
              "1000", "--out", str(tmp_path / "a")])
    with pytest.raises(ValueError, match="stride 5 needs 500 steps"):
        SweepConfig.from_dict({**TINY, "steps": 300, "window": 100, "stride": 5})
    assert not (tmp_path / "a").exists()  # nothing was started
    SweepConfig.from_dict({**TINY, "steps": 300, "window": "auto"})  # 50 snapshots fit


def test_the_help_gives_every_options_default(capsys) -> None:
    # --ray-num-cpus, --slurm-partition, --slurm-mem, --slurm-option, --slurm-setup and
    # report --lr-range showed none (issue 30)
    import re

    from thermo_lightning.cli import main as cli_main

    for command, flags in (("sweep", ["--ray-num-cpus", "--slurm-partition", "--slurm-mem",
                                      "--slurm-option", "--slurm-setup", "--ray-address",
                                      "--workers", "--cpus-per-run"]),
                           ("report", ["--lr-range", "--tail", "--smoothing", "--ci", "--eps",
                                       "--construction"])):
        with pytest.raises(SystemExit):
            cli_main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for flag in flags:
            entry = re.search(rf"  ?{re.escape(flag)} [A-Z_= .]*(.*?)(?= --[a-z]|$)", text)
            assert entry is not None and "default" in entry.group(1), (flag, entry)


def test_the_demo_runs_three_seeds_from_its_seed_offset(tmp_path: Path, capsys) -> None:
    # issue 27: the network half was one seed (one random draw, no interval); every half now
    # runs 3 seeds, --seed-offset K picks K, K+1, K+2 into folders of their own (a sweep folder
    # extended with other seeds would average all six)
    from thermo_lightning.cli import demo_sweeps

    default = dict(demo_sweeps())
    assert set(default) == {"known-temperature", "digits-convnet"}
    assert all(cfg.seeds == [0, 1, 2] for cfg in default.values())
    network = default["digits-convnet"]
    assert len(network.learning_rates()) == 7  # 5 interior rows besides the two end rows
    shifted = dict(demo_sweeps(seed_offset=3))
    assert set(shifted) == {"known-temperature-seeds3", "digits-convnet-seeds3"}
    assert all(cfg.seeds == [3, 4, 5] for cfg in shifted.values())
    assert {k: dataclasses.replace(v, seeds=None) for k, v in shifted.items()} == {
        f"{k}-seeds3": dataclasses.replace(v, seeds=None) for k, v in default.items()}
    assert main(["demo", "--seed-offset", "-1", "--out", str(tmp_path)]) == 2
    assert "seed_offset" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_the_sweep_says_which_runs_it_trained_and_which_it_skipped(tmp_path: Path,
                                                                   capsys) -> None:
    # a new user's trial: "4 runs in sw1" after a second sweep that trained none
    args = ["sweep", "--model", "toy-up", "--lrs", "0.05", "0.1", "--steps", "30", "--window",
            "8", "--k", "3", "--snr", "none", "--schedule", "5", "--no-progress",
            "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 runs in " in out and "(trained now)" in out
    assert main(args) == 0
    assert "(all 2 finished before, skipped)" in capsys.readouterr().out
    assert main([*args[:4], "0.05", "0.1", "0.2", *args[6:]]) == 0
    out = capsys.readouterr().out
    assert "(2 finished before, skipped; 1 trained now)" in out and "--force" not in out

    # a run begun before (cut) is finished now, not "trained now"; and once a report is
    # there, the hint to write it again needs --force (the trial's copy-paste was refused)
    assert main(["report", str(tmp_path), "--no-tensorboard"]) == 0
    record = tmp_path / "lr=2.00e-01" / "run.json"
    record.write_text(record.read_text().replace('"done"', '"interrupted"'))
    capsys.readouterr()
    assert main([*args[:4], "0.05", "0.1", "0.2", *args[6:]]) == 0
    out = capsys.readouterr().out
    assert "(2 finished before, skipped; 1 begun before, finished now)" in out, out
    assert out.rstrip().endswith(f"--out {tmp_path / 'report'} --force"), out
    assert main([*args[:4], "0.4", *args[6:]]) == 0  # an extension: the folder holds 4
    out = capsys.readouterr().out
    assert "1 run in " in out and "(trained now; the folder's plan.json lists 4 in all)" in out


def test_mistakes_in_a_sweeps_settings_exit_2_in_one_line(tmp_path: Path, capsys) -> None:
    # a new user's trial: bad settings exited 1, and an --out that is a file gave a traceback
    (tmp_path / "afile").write_text("mine")
    for argv in (["--lrs", "0.02", "-0.04", "--out", str(tmp_path / "s")],
                 ["--lrs", "0.02", "--steps", "0", "--out", str(tmp_path / "s")],
                 ["--lrs", "0.02", "--out", str(tmp_path / "afile")]):
        try:
            code = main(["sweep", "--model", "toy-up", *argv])
        except SystemExit as exit_:  # raised with status 2 after its one line
            code = exit_.code
        assert code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert (tmp_path / "afile").read_text() == "mine"


def test_a_sweep_inside_another_sweeps_folder_and_unusable_numbers_are_refused(
        tmp_path: Path, capsys) -> None:
    # the trial's last items: a sweep written into a run folder of another sweep (its runs
    # then read as that sweep's), --lrs inf accepted, "--steps 0" answered with a list of four
    # settings, and report --smoothing -1 read as "no smoothing"
    sweep = tmp_path / "sw"
    (sweep / "lr=1.00e-01").mkdir(parents=True)
    (sweep / "sweep.json").write_text("{}")
    (sweep / "lr=1.00e-01" / "run.json").write_text("{}")
    cases = {"inside the sweep folder": ["--lrs", "0.02", "0.04", "0.08",
                                         "--out", str(sweep / "lr=1.00e-01")],
             "inside the run folder": ["--lrs", "0.02", "0.04", "0.08",
                                       "--out", str(sweep / "lr=1.00e-01" / "new")],
             "positive finite numbers, got [inf": ["--lrs", "inf", "0.1",
                                                   "--out", str(tmp_path / "s")],
             "`steps` (--steps) must be a positive integer, got 0": [
                 "--lrs", "0.02", "--steps", "0", "--out", str(tmp_path / "s")],
             # the trial's second round: these trained and failed every run, then locked the
             # folder to the bad value
             "`window` must be at least 4 snapshots": [
                 "--lrs", "0.02", "--window", "3", "--out", str(tmp_path / "s")],
             "`noise_std` (--noise-std) must be a positive number": [
                 "--lrs", "0.02", "--noise-std", "-1", "--out", str(tmp_path / "s")],
             "`dim` (--dim) must be an integer >= 2": [
                 "--lrs", "0.02", "--dim", "1", "--out", str(tmp_path / "s")]}
    for said, argv in cases.items():
        try:
            code = main(["sweep", "--model", "toy-up", *argv])
        except SystemExit as exit_:
            code = exit_.code
        err = capsys.readouterr().err
        assert code == 2 and said in err and len(err.splitlines()) == 1, err
    assert not (sweep / "lr=1.00e-01" / "new").exists() and not (tmp_path / "s").exists()
    assert sorted(p.name for p in (sweep / "lr=1.00e-01").iterdir()) == ["run.json"]
    try:
        code = main(["report", str(sweep), "--smoothing", "-1", "--out", str(tmp_path / "r")])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and "`smoothing` (--smoothing) must be >= 0" in err, err


def test_the_report_says_which_planned_runs_never_started(tmp_path: Path, capsys) -> None:
    # a new user's trial: a sweep stopped before its last runs began gave a report of the
    # others with no word that the plan had more
    import shutil

    assert main(["sweep", "--model", "toy-up", "--lrs", "0.05", "0.1", "0.2", "--steps", "30",
                 "--window", "8", "--k", "3", "--snr", "none", "--schedule", "5",
                 "--no-progress", "--out", str(tmp_path)]) == 0
    shutil.rmtree(tmp_path / "lr=2.00e-01")
    (tmp_path / "lr=2.00e-01.log").unlink(missing_ok=True)
    capsys.readouterr()
    assert main(["report", str(tmp_path), "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    assert "1 planned run(s) never started (lr=2.00e-01;" in out, out


def test_an_extended_sweeps_plan_commands_run_its_earlier_runs(tmp_path: Path, capsys) -> None:
    # a new user's trial: after `sweep --lrs 0.2` extended a sweep of 0.05 and 0.1, sweep.json
    # holds the new learning rates only, and the plan's own command for an earlier run said
    # "no run named ..." (exit 2); --plan said "1 run" while plan.json listed 3
    import json

    common = ["--model", "toy-up", "--steps", "30", "--window", "8", "--k", "3", "--snr",
              "none", "--schedule", "5", "--no-progress", "--out", str(tmp_path)]
    assert main(["sweep", "--lrs", "0.05", "0.1", *common]) == 0
    (tmp_path / "lr=1.00e-01" / "run.json").write_text(
        (tmp_path / "lr=1.00e-01" / "run.json").read_text().replace('"done"', '"interrupted"'))
    capsys.readouterr()
    assert main(["sweep", "--lrs", "0.2", "--plan", *common]) == 0
    assert "plan: 1 run in " in (out := capsys.readouterr().out) and "lists 3" in out, out
    entries = json.loads((tmp_path / "plan.json").read_text())["runs"]
    earlier = next(e for e in entries if e["name"] == "lr=1.00e-01")
    command = earlier["command"]
    assert main(command[command.index("sweep-run"):]) == 0  # trains the cut run again
    assert '"done"' in (tmp_path / "lr=1.00e-01" / "run.json").read_text()


def test_a_ctrl_c_before_a_command_handles_it_is_one_line(tmp_path: Path, capsys,
                                                          monkeypatch) -> None:
    # a new user's trial: a Ctrl-C in the first seconds (the command still importing) printed
    # a KeyboardInterrupt traceback
    import thermo_lightning.report as report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "make_report", interrupted)
    assert main(["report", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err == "stopped by Ctrl-C\n"


def test_bracket_options_with_the_convex_construction_are_said(tmp_path: Path, capsys) -> None:
    # a new user's trial: --smoothing 1.5 with the default convex construction changed
    # nothing, silently (the how-to advised it for empty brackets)
    from tests.report.synthetic import canonical, history, write_run

    for lr in (0.01, 0.02, 0.04, 0.08):
        _, u, s = canonical(lr)
        write_run(tmp_path / "runs", lr, history(u, s))
    assert main(["report", str(tmp_path / "runs"), "--smoothing", "1.5", "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    assert "note: --smoothing: for --construction bracket only; the convex construction " \
        "(the default) does not use it" in out
    assert main(["report", str(tmp_path / "runs"), "--smoothing", "1.5", "--construction",
                 "bracket", "--no-tensorboard", "--force"]) == 0
    assert "bracket only" not in capsys.readouterr().out


def test_a_cut_run_record_is_kept_aside_and_the_run_retried(tmp_path: Path, capsys) -> None:
    # a new user's trial: a run.json cut mid-write failed the run on every retry
    args = ["sweep", "--model", "toy-up", "--lrs", "0.05", "0.1", "--steps", "30", "--window",
            "8", "--k", "3", "--snr", "none", "--schedule", "5", "--no-progress",
            "--out", str(tmp_path)]
    assert main(args) == 0
    (tmp_path / "lr=1.00e-01" / "run.json").write_text('{"status": "do')
    capsys.readouterr()
    assert main(args) == 0
    assert "was unreadable" in capsys.readouterr().err
    assert '"done"' in (tmp_path / "lr=1.00e-01" / "run.json").read_text()
    (kept,) = (tmp_path / "lr=1.00e-01").glob("run.unreadable-*.json")
    assert kept.read_text() == '{"status": "do'
