"""Sweeps over any axis: the grid, run folders named by their axis values, the report's
groups along an axis, and the eta / B collapse."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.report.synthetic import S, U
from thermo_lightning.cli import main
from thermo_lightning.report import batch_size_collapse, make_report
from thermo_lightning.sweep import RunSpec, SweepConfig, run_dir_name, run_sweep

TINY = {"model": "langevin", "lrs": [0.05, 0.1], "steps": 40, "window": 10, "k": [3], "snr": None,
        "schedule": 5}


def test_grid_runs_are_the_product_of_the_axes() -> None:
    cfg = SweepConfig.from_dict({**TINY, "grid": {"batch_size": ["8", 16]}, "seeds": [0, 1]})
    assert cfg.grid == {"batch_size": [8, 16]}
    runs = cfg.runs()
    assert len(runs) == 2 * 2 * 2
    assert [r.name for r in runs[:3]] == ["lr=5.00e-02,batch_size=8,seed=0",
                                          "lr=5.00e-02,batch_size=8,seed=1",
                                          "lr=5.00e-02,batch_size=16,seed=0"]
    assert runs[2].axes() == {"lr": 0.05, "batch_size": 16, "seed": 0}
    one = cfg.for_run(runs[2])
    assert (one.batch_size, one.seed, one.grid, one.seeds) == (16, 0, None, None)
    assert cfg.run_named("lr=1.00e-01,batch_size=16,seed=1") == RunSpec(
        0.1, 1, (("batch_size", 16),))
    assert RunSpec.from_dict(runs[5].as_dict()) == runs[5]
    with pytest.raises(ValueError, match="no run named"):
        cfg.run_named("lr=1.00e-01")
    # float values are written exactly and briefly
    assert run_dir_name(0.01, None, {"weight_decay": 0.0005}) == "lr=1.00e-02,weight_decay=0.0005"


@pytest.mark.parametrize(("grid", "match"), [
    ({"lr": [0.1]}, "own settings"),
    ({"seed": [1, 2]}, "own settings"),
    ({"model": ["convnet"]}, "not a per-run setting"),
    ({"nonsense": [1]}, "not a per-run setting"),
    ({"batch_size": [8, 8]}, "repeats a value"),
    ({"batch_size": []}, "no values"),
    ({"batch_size": ["x"]}, "batch_size"),
    ({"model_args.depth": [1, 2]}, "needs a model factory"),
    ({"other.depth": [1]}, "model_args.NAME"),
    ({"model_args.tag": ["a/b"]}, "names a folder"),
    ({"width": [1, 2]}, "does not change a 'langevin' run"),  # it ignores width
])
def test_bad_grids_are_refused_with_what_to_do(grid: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SweepConfig.from_dict({**TINY, "grid": grid,
                               **({"model": "x.y:z"} if "tag" in str(grid) else {})})


def test_grid_from_the_command_line(capsys) -> None:
    assert main(["sweep", "--model", "convnet", "--grid", "batch_size=8,16", "--grid",
                 "width=1,2", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "grid:\n  batch_size: [8, 16]\n  width: [1, 2]\n" in out
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        main(["sweep", "--model", "toy-up", "--grid", "batch_size", "--print-config"])


def test_weight_decay_and_factory_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"model_args\.weight_decay"):
        SweepConfig.from_dict({**TINY, "weight_decay": 1e-4})
    with pytest.raises(ValueError, match="model factory"):
        SweepConfig.from_dict({**TINY, "model_args": {"depth": 2}})
    cfg = SweepConfig.from_dict({**TINY, "model": "tests.helpers.factories:langevin",
                                 "model_args": {"noise": 0.3},
                                 "grid": {"model_args.noise": ["0.5", 0.25]}})
    assert cfg.grid == {"model_args.noise": [0.5, 0.25]}
    assert cfg.for_run(cfg.runs()[1]).model_args == {"noise": 0.25}
    assert SweepConfig(model="langevin").batch_size == 1  # "auto"
    assert SweepConfig(model="toy-up").batch_size == 128


def test_factory_arguments_it_does_not_take_are_refused_before_any_run(tmp_path: Path,
                                                                     capsys) -> None:
    from thermo_lightning.sweep import check_factories

    cfg = SweepConfig.from_dict({**TINY, "model": "tests.helpers.factories:langevin",
                                 "data": None, "grid": {"model_args.depth": [1, 2]}})
    with pytest.raises(ValueError, match=r"does not take \['depth'\]"):
        run_sweep(cfg, tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()
    assert main(["sweep", "--model", "tests.helpers.factories:nope", "--lrs", "0.1",
                 "--steps", "40", "--window", "10", "--k", "3", "--snr", "none",
                 "--out", str(tmp_path / "b")]) == 2
    assert "has no 'nope'" in capsys.readouterr().err and not (tmp_path / "b").exists()
    check_factories(SweepConfig.from_dict({**TINY, "model": "tests.helpers.factories:langevin",
                                           "data": None, "model_args": {"noise": 0.2}}))


def test_a_factory_argument_as_an_axis_reaches_the_factory(tmp_path: Path) -> None:
    cfg = SweepConfig.from_dict({**TINY, "model": "tests.helpers.factories:langevin",
                                 "data": None, "precision": "64-true",
                                 "grid": {"model_args.noise": [0.5, 0.25]}})
    runs = run_sweep(cfg, tmp_path, progress=False)
    assert [p.name for p in runs] == ["lr=5.00e-02,model_args.noise=0.5",
                                      "lr=5.00e-02,model_args.noise=0.25",
                                      "lr=1.00e-01,model_args.noise=0.5",
                                      "lr=1.00e-01,model_args.noise=0.25"]
    info = json.loads((runs[1] / "run.json").read_text())
    assert info["axes"] == {"lr": 0.05, "model_args.noise": 0.25}
    assert info["hparams"]["model_args"] == {"noise": 0.25} and "grid" not in info["hparams"]
    # the quieter runs have the lower loss
    u = {p.name: pd.read_csv(p / "history.csv")[U].iloc[-5:].mean() for p in runs}
    assert u["lr=5.00e-02,model_args.noise=0.25"] < u["lr=5.00e-02,model_args.noise=0.5"]
    result = make_report(tmp_path, tmp_path / "report", tensorboard=False, lr_range=(0.01, 1))
    assert "model_args.noise" in result.runs.columns
    # a second run of the same command skips every finished run
    assert run_sweep(cfg, tmp_path, progress=False) == runs


def _gibbs_run(root: Path, lr: float, batch: int, seed: int, b: float = 0.02,
               a: float = 1.0, noise: float = 0.0) -> None:
    """A finished run whose stationary U, S are those of a Gibbs family at T = b (lr/B)^a."""
    rng = np.random.default_rng(seed)
    t = b * (lr / batch) ** a
    steps = np.arange(1, 201) * 10.0
    folder = root / run_dir_name(lr, None, {"batch_size": batch})
    folder.mkdir(parents=True)
    u = 5 * t * (1 + noise * rng.standard_normal(len(steps)))
    s = 5 * np.log(t) + noise * rng.standard_normal(len(steps))
    pd.DataFrame({"step": steps, U: u, S: s}).to_csv(folder / "history.csv", index=False)
    (folder / "run.json").write_text(json.dumps({
        "status": "done", "hparams": {"lr": lr, "batch_size": batch, "model": "synthetic"},
        "axes": {"lr": lr, "batch_size": batch}}))


def test_report_groups_by_the_other_axes_and_finds_the_collapse(tmp_path: Path) -> None:
    lrs = [0.01, 0.02, 0.04, 0.08, 0.16]
    for i, lr in enumerate(lrs):
        for batch in (8, 32, 128):
            _gibbs_run(tmp_path / "runs", lr, batch, seed=i, a=0.9, noise=0.002)
    result = make_report(tmp_path / "runs", tmp_path / "report", tensorboard=True)
    t = result.temperature
    assert list(t.columns[:3]) == ["group", "batch_size", "lr"]
    assert sorted(t["group"].unique()) == ["batch_size=128", "batch_size=32", "batch_size=8"]
    assert len(t) == 15 and (t["valid"] == ~t["end"]).all()  # the end rows: one chord
    assert result.power_law is None and set(result.fit["groups"]) == set(t["group"])
    assert {"batch_size", "T", "T_ci_lo"} <= set(result.runs.columns)
    c = result.collapse
    assert c is not None and json.loads((tmp_path / "report" / "collapse.json").read_text())
    # the construction's 0.2-2% bias per row: the joint exponent near the family's 0.9
    assert c["a"] == pytest.approx(0.9, abs=0.03) and c["a_ci_lo"] < c["a"] < c["a_ci_hi"]
    assert c["collapses"] and c["spread"] < 0.02 < c["spread_lr_only"]
    assert (tmp_path / "report" / "collapse.png").exists()
    assert any(m.startswith("batch-size collapse") for m in result.messages)


def test_no_collapse_when_the_batch_size_does_not_enter_as_lr_over_b(tmp_path: Path) -> None:
    # T = b lr^0.9, whatever B: the groups coincide in lr and spread in lr/B
    rows = []
    for lr in (0.01, 0.02, 0.04, 0.08):
        for batch in (8, 64):
            t = 0.02 * lr**0.9
            rows.append({"lr": lr, "batch_size": batch, "T": t, "T_lo": 0.9 * t,
                         "T_hi": 1.1 * t, "valid": True})
    c = batch_size_collapse(pd.DataFrame(rows))
    assert c is not None and not c["collapses"]
    assert c["spread_lr_only"] < 1e-9 and c["spread"] > 0.3
    assert "no collapse" in c["verdict"]
    assert batch_size_collapse(pd.DataFrame(rows[:2])) is None
    # one interior LR across the batch sizes: lr alone is a constant, lr/B still a line
    one_lr = pd.DataFrame([{"lr": 0.04, "batch_size": b, "T": 0.02 * 0.04 / b,
                            "T_lo": 0.01 / b, "T_hi": 0.1 / b, "valid": True}
                           for b in (8, 16, 64)])
    c1 = batch_size_collapse(one_lr)
    assert c1 is not None and c1["collapses"] and c1["a"] == pytest.approx(1.0)
    assert c1["spread"] < 1e-9 and c1["spread_lr_only"] > 0.5


def test_report_along_another_axis(tmp_path: Path, capsys) -> None:
    for i, batch in enumerate((8, 16, 32, 64, 128)):
        _gibbs_run(tmp_path / "runs", 0.1, batch, seed=i)
    assert main(["report", str(tmp_path / "runs"), "--along", "batch_size",
                 "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    t = pd.read_csv(tmp_path / "runs" / "report" / "temperature.csv")
    # the learning rate is the other axis: one group, lr=0.1
    assert list(t.columns[:3]) == ["group", "lr", "batch_size"] and len(t) == 5
    assert (t["group"] == "lr=0.1").all() and t["batch_size"].tolist() == [8, 16, 32, 64, 128]
    # T = 0.02 (0.1 / B): falls as 1 / B, the exponent along B is -1
    fit = json.loads((tmp_path / "runs" / "report" / "fit.json"
                      ).read_text())["groups"]["lr=0.1"]
    assert fit["along"] == "batch_size" and fit["a"] == pytest.approx(-1.0, abs=0.05)
    assert "lr=0.1: T = " in out and "batch_size^-1.0" in out
    with pytest.raises(ValueError, match="`along`"):
        make_report(tmp_path / "runs", tmp_path / "r2", along="width")
    with pytest.raises(ValueError, match="cannot be seed"):
        make_report(tmp_path / "runs", tmp_path / "r3", along="seed")
    assert math.isfinite(fit["b"])


def test_a_factory_in_the_current_folder_is_found(tmp_path: Path, monkeypatch) -> None:
    import sys

    from thermo_lightning.sweep.recipes import import_factory

    (tmp_path / "my_local_models.py").write_text("def make(**kw):\n    return 'made'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert import_factory("my_local_models:make")() == "made"
    with pytest.raises(ModuleNotFoundError, match="PYTHONPATH"):
        import_factory("no_such_module_here:make")
    with pytest.raises(AttributeError, match="has no 'missing'"):
        import_factory("my_local_models:missing")


@pytest.mark.slow
def test_batch_size_grid_on_the_known_temperature_problem_collapses_in_lr_over_b(
        tmp_path: Path) -> None:
    # T = lr sigma^2 / (2 B) (the gradient noise is the mean of B draws): one curve in lr/B
    # with exponent 1 (docs/report.md quotes the 4-LR grid: a = 0.986, interval
    # 0.945-1.026; this 3-LR grid keeps CI short, ~1 min)
    cfg = SweepConfig(model="langevin", dim=11, noise_std=0.5, lrs=[0.02, 0.028, 0.04],
                      grid={"batch_size": [1, 2, 4]}, steps=3000)
    run_sweep(cfg, tmp_path / "runs", workers=2, progress=False)
    result = make_report(tmp_path / "runs", tensorboard=False)
    t = result.temperature
    assert len(t) == 9 and (t["valid"] == ~t["end"]).all()  # the end rows: one chord
    # every group's interior T near its own truth lr 0.25 / (2 B) (the end rows are
    # one-sided chords)
    interior = t[t["T_lo"].notna() & t["T_hi"].notna()]
    assert len(interior) == 3 and (interior["T"] / interior["T_true"]).between(0.85, 1.15).all()
    c = result.collapse
    assert c is not None and c["collapses"] and c["rows"] == 3
    assert 0.85 < c["a"] < 1.15 and c["a_ci_lo"] < 1.0 < c["a_ci_hi"]
    assert c["b"] == pytest.approx(0.125, rel=0.25)
    assert c["spread"] < 0.1 < c["spread_lr_only"]
