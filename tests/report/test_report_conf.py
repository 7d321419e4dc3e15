"""The report's configurational temperature (issue 28): runs.csv's T_conf over each run's
stationary stretch, temperature.csv's T_conf beside T, and a note where they disagree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.report.synthetic import canonical, history, write_run
from thermo_lightning import keys
from thermo_lightning.report import make_report

LRS = np.logspace(-3, -1, 6)


def _sweep(root: Path, factor: float, seeds: int = 1) -> Path:
    for seed in range(seeds):
        for i, lr in enumerate(LRS):
            t, u, s = canonical(lr)
            rng = np.random.default_rng(100 * seed + i)
            base = history(u, s, noise=1e-4, seed=100 * seed + i)
            lap = 10.0 + 3.0 * rng.standard_normal(len(base))
            grad_sq = factor * t * lap + 2.0 * t * rng.standard_normal(len(base))
            base[keys.CONF_LAPLACIAN], base[keys.CONF_GRAD_SQ] = lap, grad_sq
            base[keys.FDR] = 1.0 + 0.01 * i
            write_run(root / f"seed{seed}", lr, base,
                      info={"hparams": {"lr": lr, "seed": seed, "model": "synthetic"}})
    return root


def test_t_conf_stands_beside_t_and_agrees_where_the_law_is_gibbs(tmp_path: Path) -> None:
    result = make_report(_sweep(tmp_path / "runs", 1.0), tmp_path / "report", tensorboard=False)
    runs = result.runs
    assert {"T_conf", "T_conf_se", "conf_points"} <= set(runs.columns)
    truth = np.array([canonical(lr)[0] for lr in runs["lr"]])
    np.testing.assert_allclose(runs["T_conf"], truth, rtol=0.15)
    assert (runs["T_conf_se"] > 0).all() and (runs["conf_points"] >= 5).all()
    np.testing.assert_allclose(runs.sort_values("lr")["fdr"], 1.0 + 0.01 * np.arange(6))
    t = result.temperature
    assert (t["T_conf_lo"] < t["T_conf"]).all() and (t["T_conf"] < t["T_conf_hi"]).all()
    np.testing.assert_allclose(t["T_conf"], [canonical(lr)[0] for lr in t["lr"]], rtol=0.15)
    assert not any("disagree beyond" in m for m in result.messages)
    written = (tmp_path / "report" / "temperature.csv").read_text().splitlines()[0]
    assert "T_conf" in written and "T_conf_lo" in written


def test_a_t_conf_off_the_sweeps_t_is_said(tmp_path: Path) -> None:
    # two seeds (T gets intervals); T_conf twice the temperature: the law is "not Gibbs"
    result = make_report(_sweep(tmp_path / "runs", 2.0, seeds=2), tmp_path / "report",
                         tensorboard=False)
    t = result.temperature
    truth = np.array([canonical(lr)[0] for lr in t["lr"]])
    assert (t["T_conf"] / truth > 1.7).all()
    said = [m for m in result.messages if "disagree beyond their intervals" in m]
    rows = t[t["T_ci_lo"].notna() & t["T_ci_hi"].notna()]
    assert len(rows) >= 3 and len(said) == len(rows)


def test_runs_without_the_terms_get_no_columns(tmp_path: Path) -> None:
    for lr in LRS:
        _, u, s = canonical(lr)
        write_run(tmp_path / "runs", lr, history(u, s, noise=1e-4))
    result = make_report(tmp_path / "runs", tmp_path / "report", tensorboard=False)
    assert "T_conf" not in result.runs and "T_conf" not in result.temperature


@pytest.mark.parametrize("lap", [-1.0, 0.0])
def test_a_laplacian_that_is_not_positive_gives_nan_not_an_error(tmp_path: Path,
                                                                 lap: float) -> None:
    for lr in LRS:
        _, u, s = canonical(lr)
        h = history(u, s, noise=1e-4)
        h[keys.CONF_LAPLACIAN], h[keys.CONF_GRAD_SQ] = lap, 1.0
        write_run(tmp_path / "runs", lr, h)
    result = make_report(tmp_path / "runs", tmp_path / "report", tensorboard=False)
    assert result.runs["T_conf"].isna().all() and (result.runs["conf_points"] > 0).all()


def test_t_conf_is_drawn_and_charted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from thermo_lightning.report import figures

    drawn: list[bool] = []
    real = figures._fig_temperature

    def spy(temperature, *args, **kwargs):  # type: ignore[no-untyped-def]
        fig = real(temperature, *args, **kwargs)
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        drawn.append(any("T_conf" in label for label in labels))
        return fig

    monkeypatch.setattr(figures, "_fig_temperature", spy)
    make_report(_sweep(tmp_path / "runs", 1.0), tmp_path / "report")
    assert drawn == [True]
    acc = EventAccumulator(str(tmp_path / "report" / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"sweep/T_conf", "sweep/T_conf_lo", "sweep/T_conf_hi"} <= set(tags)
    assert len(acc.Scalars("sweep/T_conf")) == len(LRS)


def test_a_single_run_still_gets_its_t_conf(tmp_path: Path, capsys) -> None:
    _sweep(tmp_path / "runs", 1.0)
    import shutil

    for run in sorted((tmp_path / "runs" / "seed0").iterdir())[1:]:
        shutil.rmtree(run)  # one learning rate left: no T(eta), but T_conf
    result = make_report(tmp_path / "runs", tmp_path / "report", tensorboard=False)
    assert len(result.runs) == 1 and len(result.temperature) == 0
    (row,) = result.runs.to_dict("records")
    assert row["T_conf"] == pytest.approx(canonical(row["lr"])[0], rel=0.15)
    from thermo_lightning.cli import main

    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "cli"),
                 "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    assert f"T_conf = {row['T_conf']:.4g}" in out and "one run" in out


def test_the_known_temperature_sweep_measures_t_conf_through_the_cli(tmp_path: Path,
                                                                    capsys) -> None:
    # a new user's trial (issue 28): `sweep --model langevin --conf-temperature` logged no
    # terms (the problem's noise loader gave no independent mini-batches), so a one-LR sweep
    # of the known-temperature problem had no T_conf to report
    from thermo_lightning.cli import main

    runs = tmp_path / "runs"
    assert main(["sweep", "--model", "langevin", "--lrs", "0.04", "--steps", "300",
                 "--window", "10", "--k", "3", "--conf-temperature", "--snr-batches", "8",
                 "--no-progress", "--out", str(runs)]) == 0
    assert main(["report", str(runs), "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    assert "measures no" not in out
    import pandas as pd

    table = pd.read_csv(runs / "report" / "runs.csv")
    assert len(table) == 1 and table["T_conf"].gt(0).all()
    assert f"T_conf = {table['T_conf'].iloc[0]:.4g}" in out
    assert f"T_true {table['T_true'].iloc[0]:.4g}; runs.csv)" in out  # the truth beside it


def _balance_runs(root: Path, fdr_true: float) -> Path:
    """Runs whose logged terms give a fluctuation-dissipation ratio ``fdr_true`` (the
    callback's thermo/fdr over the later half, and the per-point gHg it comes from)."""
    for i, lr in enumerate(LRS):
        t, u, s = canonical(lr)
        rng = np.random.default_rng(i)
        base = history(u, s, noise=1e-4, seed=i)
        lap = 10.0 + rng.standard_normal(len(base))
        grad_sq = t * lap * (1 + 0.2 * rng.standard_normal(len(base)))
        ghg = grad_sq / (lr / 2) / fdr_true * (1 + 0.2 * rng.standard_normal(len(base)))
        base[keys.CONF_LAPLACIAN], base[keys.CONF_GRAD_SQ], base[keys.CONF_GHG] = lap, grad_sq, ghg
        later = base["step"] >= base["step"].iloc[-1] / 2
        base[keys.FDR] = grad_sq[later].mean() / (lr / 2 * ghg[later].mean())
        write_run(root, lr, base, info={"hparams": {"lr": lr, "model": "synthetic"}})
    return root


def test_an_energy_balance_that_does_not_close_is_said(tmp_path: Path, capsys) -> None:
    # a new user's trial (issue 28): a run with thermo/fdr 0.36 (still converging) got its
    # T_conf printed without a caveat, and the report never read fdr
    from thermo_lightning.cli import main

    off = make_report(_balance_runs(tmp_path / "off", 0.5), tmp_path / "r1", tensorboard=False)
    runs = off.runs
    assert runs["fdr"].to_numpy() == pytest.approx(0.5, rel=0.15)
    assert (runs["fdr_se"] > 0).all() and (runs["fdr_se"] < 0.1).all()
    said = [m for m in off.messages if "fluctuation-dissipation ratio" in m]
    assert len(said) == 1 and f"{len(LRS)} run(s)" in said[0] and "fdr_se" in said[0]
    fine = make_report(_balance_runs(tmp_path / "fine", 1.0), tmp_path / "r2",
                       tensorboard=False)
    assert fine.runs["fdr"].to_numpy() == pytest.approx(1.0, rel=0.15)
    assert not [m for m in fine.messages if "fluctuation-dissipation ratio" in m]
    # one run alone: its line carries the ratio
    import shutil

    for run in sorted((tmp_path / "off").iterdir())[1:]:
        shutil.rmtree(run)
    capsys.readouterr()
    assert main(["report", str(tmp_path / "off"), "--out", str(tmp_path / "r3"),
                 "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    assert "fluctuation-dissipation ratio" in out and ", fdr 0." in out and "+- " in out
