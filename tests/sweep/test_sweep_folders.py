"""A sweep folder holds one experiment: runs outside its plan are refused or left out, seeds
and grid axes added later do not double-count, unfinished runs stay out of T(eta), each run
is tested against its own reference, and finished runs are left untouched (issue 26: each
test here failed on 6ed3ab5)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.report.synthetic import canonical, history, write_run
from thermo_lightning.cli import main
from thermo_lightning.report import Regime, make_report
from thermo_lightning.spec import WindowSpec
from thermo_lightning.sweep import SweepConfig, run_sweep

KNOWN_T = {"model": "langevin", "dim": 4, "lrs": [0.05, 0.1], "steps": 60, "window": 10,
           "stride": 2, "k": [3], "schedule": 10}


def _flags(settings: dict) -> list[str]:
    out = []
    for key, value in settings.items():
        out += [f"--{key.replace('_', '-')}", *map(str, value if isinstance(value, list)
                                                   else [value])]
    return out


def test_a_run_outside_the_plan_is_refused(tmp_path: Path, capsys) -> None:
    run_sweep(SweepConfig(**KNOWN_T), tmp_path, progress=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    # without --config: the defaults (a convnet on digits) are not this sweep's settings
    assert main(["sweep-run", "--lr", "0.05", "--out", str(tmp_path)]) == 2
    assert "--config" in capsys.readouterr().err
    # a learning rate the sweep does not have
    config = str(tmp_path / "sweep.json")
    assert main(["sweep-run", "--config", config, "--lr", "0.07", "--out", str(tmp_path)]) == 2
    assert "not one of the sweep's learning rates" in capsys.readouterr().err
    assert main(["sweep-run", "--config", config, "--lr", "abc", "--out", str(tmp_path)]) == 2
    assert "--lr must be a number" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run added


def test_seeds_then_a_grid_in_one_folder_count_each_run_once(tmp_path: Path) -> None:
    run_sweep(SweepConfig(**KNOWN_T), tmp_path, progress=False)  # lr=..., seed 0 implied
    with pytest.warns(UserWarning, match="other axes"):
        run_sweep(SweepConfig(**KNOWN_T, seeds=[0, 1]), tmp_path, progress=False)
    result = make_report(tmp_path, tmp_path / "report", tensorboard=False,
                         lr_range=(0.01, 1.0))
    # the seedless runs repeat seed 0: left out, said; every learning rate has its 2 seeds
    assert sorted(result.runs["run"]) == sorted(
        f"lr={lr:.2e},seed={s}" for lr in KNOWN_T["lrs"] for s in (0, 1))
    assert "every learning rate: 2 runs (seeds) averaged into one T(eta) row" in result.messages
    assert sum("not in its plan.json" in m for m in result.messages) == 2
    # a grid later: the runs without the grid's axis are said and left out, not lost in
    # the groups silently
    with pytest.warns(UserWarning, match="other axes"):
        run_sweep(SweepConfig(**KNOWN_T, seeds=[0, 1], grid={"batch_size": [1, 4]}), tmp_path,
                  progress=False)
    result = make_report(tmp_path, tmp_path / "report2", tensorboard=False,
                         lr_range=(0.01, 1.0))
    assert set(result.runs["batch_size"]) == {1, 4} and len(result.runs) == 8
    assert sum("not in its plan.json" in m for m in result.messages) == 6
    # more learning rates on the same axes extend the sweep: its runs stay in the plan
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        run_sweep(SweepConfig(**{**KNOWN_T, "lrs": [0.2]}, seeds=[0, 1],
                              grid={"batch_size": [1, 4]}), tmp_path, progress=False)
    assert not [w for w in said if "other axes" in str(w.message)]  # nothing dropped
    planned = {r["name"] for r in json.loads((tmp_path / "plan.json").read_text())["runs"]}
    assert len(planned) == 12


def test_finished_runs_are_not_touched_when_a_sweep_is_extended(tmp_path: Path) -> None:
    run_sweep(SweepConfig(**KNOWN_T), tmp_path, progress=False)
    done = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    stamps = {p: {f.name: f.stat().st_mtime_ns for f in p.iterdir() if f.is_file()}
              for p in done}
    run_sweep(SweepConfig(**{**KNOWN_T, "lrs": [0.05, 0.1, 0.2]}), tmp_path, progress=False)
    for p in done:
        assert {f.name: f.stat().st_mtime_ns for f in p.iterdir() if f.is_file()} == stamps[p]


def test_an_unfinished_run_stays_out_of_t_eta(tmp_path: Path) -> None:
    for i, lr in enumerate(np.logspace(-3, -1, 5)):
        _, u, s = canonical(lr)
        write_run(tmp_path, lr, history(u, s, seed=i))
    cut = sorted(tmp_path.iterdir())[2]
    info = json.loads((cut / "run.json").read_text())
    (cut / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    result = make_report(tmp_path, tmp_path / "report")
    summary = result.summaries[cut.name]
    assert summary.regime is Regime.UNFINISHED and summary.in_t_eta == "no (unfinished)"
    assert len(result.temperature) == 4 and summary.lr not in set(result.temperature["lr"])


def test_each_run_is_tested_against_its_own_uniform_reference(tmp_path: Path) -> None:
    # a grid over the dimension: the first run's reference (D = 6) would call the D = 50
    # runs saturated; their own does not
    lrs = np.logspace(-3, -1, 4)
    for folder, d in (("a_dim6", 6), ("b_dim50", 50)):
        spec = WindowSpec(200, d, d - 1, (10,), 1, 1.0, "knn_graph").as_hparams()
        for i, lr in enumerate(lrs):
            _, u, s = canonical(lr)
            write_run(tmp_path / folder, lr, history(u, 0.0 if d == 50 else s - 30, seed=i),
                      info={"window_spec": spec})
    result = make_report(tmp_path, tmp_path / "report", tensorboard=False)
    runs = result.runs.assign(group=[r.split("/")[0] for r in result.runs["run"]])
    references = runs.groupby("group")["S_uniform"].unique()
    assert len(references["a_dim6"]) == 1 and len(references["b_dim50"]) == 1
    assert references["b_dim50"][0] > references["a_dim6"][0] + 10
    assert set(runs["regime"]) == {"stationary"}


def test_seeds_that_change_nothing_give_no_interval(tmp_path: Path) -> None:
    # a factory that ignores `seed`: its "seeds" are one run repeated, not a spread
    for seed in (0, 1):
        for i, lr in enumerate(np.logspace(-3, -1, 5)):
            _, u, s = canonical(lr)
            write_run(tmp_path / f"seed{seed}", lr, history(u, s, noise=1e-3, seed=i),
                      info={"hparams": {"lr": lr, "seed": seed, "model": "mine"}})
    result = make_report(tmp_path, tmp_path / "report", tensorboard=False)
    assert set(result.temperature["n_runs"]) == {2}
    assert result.temperature["T_ci_lo"].isna().all()  # not an interval of width 0
    assert any("identical runs at every learning rate" in m for m in result.messages)


def test_a_run_seed_outside_the_sweep_is_one_error_line(tmp_path: Path, capsys) -> None:
    assert main(["sweep", "--model", "toy-up", "--lrs", "0.05", "--seeds", "0", "1", "--steps",
                 "40", "--window", "10", "--k", "3", "--snr", "none", "--schedule", "5",
                 "--out", str(tmp_path), "--plan"]) == 0
    capsys.readouterr()
    config = str(tmp_path / "sweep.json")
    for extra in (["--run-seed", "7"], []):  # a seed not in the sweep, or none at all
        assert main(["sweep-run", "--config", config, "--lr", "0.05", *extra,
                     "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "seed" in err and len(err.splitlines()) == 1
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no run folder
