"""The report on the folders users have: Lightning's own ``lightning_logs/version_N``, files
cut mid-write, several seeds, hand-edited metadata, bad arguments (issue 11)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.trainers import quiet_trainer
from tests.report.synthetic import canonical, history, write_run
from thermo_lightning.callback import ThermoCallback
from thermo_lightning.cli import main
from thermo_lightning.data import DigitsDataModule
from thermo_lightning.models import ClassificationTask, ScaleInvariantConvNet
from thermo_lightning.report import Exclusion, Regime, classify_regime, find_runs, make_report

LRS = np.logspace(-3, -1, 5)


def test_lightning_version_folders_are_one_run_each(tmp_path: Path) -> None:
    # three plain Lightning runs (default TensorBoard logger) at three learning rates
    for lr in (0.05, 0.1, 0.2):
        model = ClassificationTask(ScaleInvariantConvNet(2, in_channels=1), lr=lr)
        cb = ThermoCallback(window=10, k=3, schedule=10, snr=None)
        quiet_trainer(strategy="sphere_projection", max_steps=60, callbacks=[cb],
                      logger=True, default_root_dir=tmp_path).fit(
            model, DigitsDataModule(batch_size=16))
    logs = tmp_path / "lightning_logs"
    assert [p.name for p in find_runs(logs)] == ["version_0", "version_1", "version_2"]
    result = make_report(logs, tmp_path / "report")
    runs = result.runs.set_index("run")
    assert runs.loc[["version_0", "version_1", "version_2"], "lr"].tolist() == [0.05, 0.1, 0.2]
    # each run's U is its own: the three differ
    assert runs["U"].nunique() == 3


def _truncated_run(root: Path, lr: float, cut: float) -> Path:
    _, u, s = canonical(lr)
    hist = history(u, s)
    run = write_run(root, lr, hist, info={"global_step": 2000, "last_logged_step": 2000})
    text = (run / "history.csv").read_text()
    (run / "history.csv").write_text(text[: int(cut * len(text))])
    return run


def test_a_history_cut_mid_write_is_marked_and_left_out(tmp_path: Path) -> None:
    for lr in LRS:
        _, u, s = canonical(lr)
        write_run(tmp_path / "runs", lr, history(u, s),
                  info={"global_step": 2000, "last_logged_step": 2000})
    _truncated_run(tmp_path / "other", 0.0123, cut=0.6)
    result = make_report(tmp_path / "runs", tmp_path / "rep")
    assert result.runs["regime"].eq("stationary").all()
    # the same sweep with one more run whose history.csv was cut at 60%
    cut = _truncated_run(tmp_path / "runs", 0.0123, cut=0.6)
    result = make_report(tmp_path / "runs", tmp_path / "rep", force=True)
    text = "\n".join(result.messages)
    assert f"{cut.name}: history.csv ends mid-line" in text
    assert "run logged up to step 2000" in text
    assert result.runs.set_index("lr").loc[0.0123, "regime"] == "incomplete"
    assert 0.0123 not in result.temperature["lr"].tolist()
    assert len(result.temperature) == len(LRS)


def test_seeds_at_one_learning_rate_are_averaged(tmp_path: Path) -> None:
    for seed in (0, 1):
        for i, lr in enumerate(LRS):
            _, u, s = canonical(lr)
            write_run(tmp_path / f"seed{seed}", lr, history(u + 0.001 * seed, s, seed=i))
    result = make_report(tmp_path, tmp_path / "rep")
    assert len(result.runs) == 10
    temp = result.temperature
    assert temp["lr"].tolist() == pytest.approx(list(LRS)) and (temp["n_runs"] == 2).all()
    runs = result.runs
    for lr, row in temp.set_index("lr").iterrows():
        assert row["U"] == pytest.approx(runs.loc[np.isclose(runs["lr"], lr), "U"].mean(),
                                         rel=0.05)  # smoothing over neighbouring LRs aside
    # folders named seed0/seed1, but no seed in their settings: repeats, not said to be seeds
    assert any("2 runs (repeats without seeds) averaged" in m for m in result.messages)


@pytest.mark.slow  # 5-9 s: the quick suite stays near 4 minutes
def test_a_run_read_twice_is_counted_once(tmp_path: Path) -> None:
    # a new user's trial: the same training in two folders (no seeds) was averaged as
    # "2 runs (seeds)" with a standard error of 0 and no note
    import shutil

    for i, lr in enumerate(LRS):
        _, u, s = canonical(lr)
        write_run(tmp_path / "a", lr, history(u, s, noise=1e-3, seed=i))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    once = make_report(tmp_path / "a", tmp_path / "once")
    twice = make_report(tmp_path, tmp_path / "twice")
    assert len(twice.runs) == 2 * len(LRS) and (twice.temperature["n_runs"] == 1).all()
    copies = [m for m in twice.messages if "to the last digit" in m]
    assert len(copies) == len(LRS) and all("counted once" in m and "no seed" in m
                                           for m in copies)
    assert not any("averaged into one T(eta) row" in m for m in twice.messages)
    for col in ("T", "U_se", "S_se", "T_ci_lo", "T_ci_hi"):  # no standard error of 0
        np.testing.assert_allclose(twice.temperature[col], once.temperature[col], rtol=1e-12)
    assert (twice.temperature["U_se"] > 0).all()
    # runs.csv says why each copy is out of T(eta) (its reason was empty, as if it were in),
    # and one name takes "repeats"
    reasons = twice.runs.set_index("run")["reason"]
    for i, lr in enumerate(LRS):
        name = f"lr={lr:.2e}"
        assert reasons[f"b/{name}"] == f"a copy of a/{name} (the same U and S to the last " \
            "digit): counted once"
        assert reasons[f"a/{name}"] == "" and f"b/{name} repeats a/{name}" in copies[i]


def test_hand_edited_metadata_is_noted_not_fatal(tmp_path: Path) -> None:
    for lr in LRS[:3]:
        _, u, s = canonical(lr)
        write_run(tmp_path, lr, history(u, s))
    bad = write_run(tmp_path, 0.5, history(1.0, 1.0))
    meta = json.loads((bad / "run.json").read_text())
    meta["hparams"].update(lr="abc", window=[1], k="many")
    (bad / "run.json").write_text(json.dumps(meta))
    lightning_run = tmp_path / "lightning" / "version_0"
    lightning_run.mkdir(parents=True)
    history(0.3, -2.0).to_csv(lightning_run / "metrics.csv", index=False)
    (lightning_run / "hparams.yaml").write_text("lr: [0.1, 0.2]\nwindow: x\n")
    other = tmp_path / "lightning" / "version_1"
    other.mkdir()
    history(0.3, -2.0).to_csv(other / "metrics.csv", index=False)
    (other / "hparams.yaml").write_text("- not\n- a mapping\n")
    result = make_report(tmp_path, tmp_path / "rep")
    text = "\n".join(result.messages)
    assert "lr=5.00e-01: learning rate 'abc' is not a positive number" in text
    assert "lightning/version_0: learning rate [0.1, 0.2] is not a positive number" in text
    assert "lightning/version_1: hparams.yaml does not hold a mapping" in text
    assert len(result.temperature) == 3


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--tail", "nan"], "--tail"),
        (["--tail", "0"], "--tail"),
        (["--tail", "1.5"], "--tail"),
        (["--eps", "-1"], "--eps"),
        (["--lr-range", "0.1", "0.01"], "--lr-range"),
    ],
)
def test_bad_report_arguments_are_errors_not_tracebacks(tmp_path: Path, capsys, argv: list,
                                                        match: str) -> None:
    for lr in LRS[:3]:
        write_run(tmp_path / "runs", lr, history(0.5, -3.0))
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), *argv]) == 2
    assert match in capsys.readouterr().err


def test_a_bad_construction_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    for lr in LRS[:3]:
        write_run(tmp_path / "runs", lr, history(0.5, -3.0))
    with pytest.raises(ValueError, match=r"`construction` \(--construction\) must be one of"):
        make_report(tmp_path / "runs", tmp_path / "rep", construction="hull")
    assert not (tmp_path / "rep").exists()


def test_report_out_pointing_at_a_file(tmp_path: Path, capsys) -> None:
    for lr in LRS[:3]:
        write_run(tmp_path / "runs", lr, history(0.5, -3.0))
    (tmp_path / "file.txt").write_text("not a folder")
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "file.txt")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_relaxing_is_not_converging() -> None:
    # an under-parameterised net still falling toward equilibrium (train accuracy 0.13) is
    # "relaxing"; "converging" is kept for nets that fit the data
    assert classify_regime(-12, -12, 950.0, 1274.0, 1530, train_acc=0.13) == "relaxing"
    assert classify_regime(-12, -12, 950.0, 1274.0, 1530, train_acc=1.0) == "converging"
    assert classify_regime(-12, -12, 0.0, None, None, u_mean=2.5, u_random=5.7) == "relaxing"
    assert classify_regime(-12, -12, 0.0, None, None, u_mean=0.01, u_random=5.7) == "converging"


def test_a_sweep_without_any_positive_temperature_still_reports(tmp_path: Path) -> None:
    # equal U and S at every LR: no bracket has a positive T (the figure once crashed on its
    # log axis)
    for lr in LRS:
        write_run(tmp_path, lr, history(0.5, -3.0))
    result = make_report(tmp_path, tmp_path / "rep")
    assert not result.temperature["valid"].any()
    assert len(pd.read_csv(tmp_path / "rep" / "runs.csv")) == len(LRS)
    assert (tmp_path / "rep" / "temperature.png").stat().st_size > 2000


def test_reason_column_low_ess_flag_and_final_stride_tail(tmp_path: Path) -> None:
    from thermo_lightning.meter import WindowSpec

    spec = WindowSpec(200, 50, 49, (10,), "auto", 1.0, "knn_graph").as_hparams()
    for i, lr in enumerate(LRS):
        _, u, s = canonical(lr)
        hist = history(u, s, seed=i, extra={"thermo/ess": 120.0 if i else 10.0})
        write_run(tmp_path, lr, hist, info={"window_spec": spec})
    # a run whose stride changed late: only the points at its final stride are averaged
    _, u, s = canonical(0.5)
    hist = history(u, s, seed=9)
    hist["thermo/stride"] = [1.0] * (len(hist) - 10) + [4.0] * 10
    hist.loc[hist["thermo/stride"] == 1.0, "thermo/S"] -= 5.0  # correlated windows: S low
    write_run(tmp_path, 0.5, hist, info={"window_spec": spec})
    result = make_report(tmp_path, tmp_path / "rep")
    runs = result.runs.set_index("lr")
    assert bool(runs.loc[LRS[0], "low_ess"]) and not bool(runs.loc[LRS[1], "low_ess"])
    assert any("low ESS (10 of 200)" in m for m in result.messages)
    assert runs.loc[0.5, "S"] == pytest.approx(s, abs=1e-9)
    assert runs.loc[0.5, "tail_points"] == 5
    # the low-ESS run is left out of T(eta) by default, with its reason; every other
    # stationary run is used
    assert runs.loc[LRS[0], "reason"].startswith("low ESS")
    low = next(r for r in result.summaries.values() if r.lr == LRS[0])
    assert low.exclusion is Exclusion.LOW_ESS and low.in_t_eta == "no (low ESS)"
    assert set(runs.drop(index=LRS[0])["reason"]) == {""}
    assert LRS[0] not in set(result.temperature["lr"])
    kept = make_report(tmp_path, tmp_path / "rep2", include_low_ess=True)
    assert LRS[0] in set(kept.temperature["lr"]) and set(kept.runs["reason"]) == {""}
    assert runs.loc[0.5, "S_uniform"] > runs["S"].max()  # from the window spec, radius 1
    assert not any("had windows with a low ESS" in m for m in result.messages)


def test_a_run_warned_of_a_low_ess_mid_run_but_used_is_said_so(tmp_path: Path) -> None:
    # a new user saw the callback warn of a low ESS in 4 of the demo's network runs, and then
    # all 21 used in T(eta) without a word: their tails' ESS was above a quarter of N
    from thermo_lightning.meter import WindowSpec

    spec = WindowSpec(200, 50, 49, (10,), "auto", 1.0, "knn_graph").as_hparams()
    for i, lr in enumerate(LRS):
        _, u, s = canonical(lr)
        hist = history(u, s, seed=i, extra={"thermo/ess": 120.0, "thermo/low_ess": 0.0})
        if i in (1, 3):
            hist.loc[hist.index[:5], "thermo/low_ess"] = 1.0  # early windows only
        if i == 3:  # ... and a stride capped below half the correlation time: left out
            hist["thermo/stride"], hist["thermo/corr_time"] = 2.0, 10.0
        write_run(tmp_path, lr, hist, info={"window_spec": spec})
    result = make_report(tmp_path, tmp_path / "rep", tensorboard=False)
    (note,) = [m for m in result.messages if "had windows with a low ESS" in m]
    assert note.startswith(f"1 run(s) (lr={LRS[1]:.2e})") and "ESS is 120 of 200" in note
    assert len(result.temperature) == len(LRS) - 1  # all but the capped one


def test_known_temperature_runs_get_t_true_and_the_fit_needs_three_interior_rows(
        tmp_path: Path) -> None:
    import json

    for lr in LRS:  # five runs: three interior rows
        _, u, s = canonical(lr)
        run = write_run(tmp_path / "five", lr, history(u, s))
        meta = json.loads((run / "run.json").read_text())
        meta["hparams"].update(model="langevin", noise_std=0.5)
        (run / "run.json").write_text(json.dumps(meta))
    result = make_report(tmp_path / "five", tmp_path / "rep5", smoothing=None)
    temp = result.temperature
    np.testing.assert_allclose(temp["T_true"], temp["lr"] * 0.25 / 2)
    assert result.power_law is not None
    csv = pd.read_csv(tmp_path / "rep5" / "temperature.csv")
    assert "T_true" in csv.columns
    for lr in LRS[:4]:  # four runs: two interior rows, not enough for a power law
        _, u, s = canonical(lr)
        write_run(tmp_path / "four", lr, history(u, s))
    result = make_report(tmp_path / "four", tmp_path / "rep4", smoothing=None)
    assert result.power_law is None and "T_true" not in result.temperature
    assert any("found 2, needs 3" in m for m in result.messages)


def test_trend_and_critical_values_match_independent_references() -> None:
    from thermo_lightning.report.summary import t_critical, trend

    # published two-sided 1% critical values of Student's t (dof 1, 10, 20)
    assert t_critical(3) == pytest.approx(63.657, abs=1e-3)
    assert t_critical(12) == pytest.approx(3.169, abs=1e-3)
    assert t_critical(22) == pytest.approx(2.845, abs=1e-3)
    assert t_critical(2) == math.inf
    # the slope against ln(step) and its t-statistic, by the normal equations
    rng = np.random.default_rng(0)
    steps = np.geomspace(100, 10_000, 30)
    values = 0.3 * np.log(steps) + rng.normal(0, 0.1, 30)
    x = np.log(steps)
    a, b = np.polyfit(x, values, 1)
    se = math.sqrt(((values - a * x - b) ** 2).sum() / 28 / ((x - x.mean()) ** 2).sum())
    slope, t = trend(steps, values)
    assert slope == pytest.approx(a) and t == pytest.approx(a / se)
    assert trend(steps, 2.0 * x) == (pytest.approx(2.0), math.inf)  # an exact line


# ------------------------------------------------------------------ overlapping windows
def _overlapping_run(seed: int, drift: float = 0.0):
    """A run logged every 10 steps whose windows span 100 steps (50 snapshots, stride 2):
    U and S are window means, so their noise is a moving average over 10 logging points,
    shared by U and S (as a Langevin run's are). ``drift``: both fall with ln(step)."""
    from thermo_lightning.runs.read import RunData
    from thermo_lightning.spec import WindowSpec

    rng = np.random.default_rng(seed)
    steps = np.arange(100, 3001, 10, dtype=float)
    noise = np.convolve(rng.standard_normal(len(steps) + 9), np.ones(10) / 10, "valid")
    trend_ = -drift * np.log(steps)
    history = pd.DataFrame({"step": steps, "thermo/U": 1.0 + 0.02 * noise + 0.02 * trend_,
                            "thermo/S": -50.0 + noise + trend_, "thermo/stride": 2.0})
    spec = WindowSpec(50, 100, 99, (5,), 2, 1.0, "knn_graph")
    return RunData(f"seed={seed}", Path(f"/nowhere/{seed}"),
                   {"lr": 0.1, **spec.as_hparams()}, history)


def test_overlapping_windows_of_a_stationary_run_are_not_a_trend() -> None:
    # the least-squares t over overlapping windows counted one window's noise ten times:
    # stationary runs were called "converging" (3 of 10 Langevin runs in the issue)
    from thermo_lightning.report.summary import classify, summarize_run

    regimes = [classify(summarize_run(_overlapping_run(seed)), _overlapping_run(seed),
                        (None, None), tail=0.15, include_low_ess=False, messages=[])[0].regime
               for seed in range(40)]
    assert sum(r is Regime.CONVERGING for r in regimes) <= 2  # a 1% test: 0.4 expected
    summary = summarize_run(_overlapping_run(0))
    assert summary.trend_points == 6  # the last point and five more, a window span apart


def test_overlapping_windows_still_show_a_real_trend() -> None:
    from thermo_lightning.report.summary import classify, summarize_run

    regimes = [classify(summarize_run(_overlapping_run(seed, drift=20.0)),
                        _overlapping_run(seed, drift=20.0), (None, None), tail=0.15,
                        include_low_ess=False, messages=[])[0].regime for seed in range(10)]
    assert all(r is Regime.CONVERGING for r in regimes)


def test_runs_whose_stride_was_capped_are_left_out(tmp_path: Path) -> None:
    # at the CLI's --steps 2000 the stride is capped at 18 against correlation times of
    # 21-61 steps: the windows are correlated, S biased low (T 21-23% low), yet their ESS
    # stayed above N / 4, so the report used to keep them
    for lr in LRS:
        _, u, s = canonical(lr)
        capped = lr < 0.05  # the three lowest rates: stride 18 < tau 40 / 2
        hist = history(u, s, extra={"thermo/stride": 18.0,
                                    "thermo/corr_time": 40.0 if capped else 12.0})
        write_run(tmp_path / "runs", lr, hist)
    result = make_report(tmp_path / "runs", tmp_path / "report", tensorboard=False)
    runs = result.runs.set_index("lr")
    assert runs["stride_capped"].tolist() == [lr < 0.05 for lr in LRS]
    assert all(r.startswith("capped stride") for r in runs.loc[runs["stride_capped"], "reason"])
    assert result.temperature.empty  # two uncapped rates are too few for T(eta)
    assert any("stride capped below half" in m for m in result.messages)
    kept = make_report(tmp_path / "runs", tmp_path / "kept", tensorboard=False,
                       include_low_ess=True)
    assert len(kept.temperature) == len(LRS)


def test_every_run_left_out_of_the_table_is_said(tmp_path: Path, capsys) -> None:
    # the demo said "6 learning rates" and printed 5: the sixth was "relaxing", said only in
    # runs.csv (issue 30). Every run left out of T(eta) gets a printed line saying why
    for lr in LRS:
        _, u, s = canonical(lr)
        falling = lr == LRS[2]  # still falling: converging
        steps = history(u, s)["step"].to_numpy()
        hist = history(u - (0.05 * np.log(steps) if falling else 0),
                       s - (2.0 * np.log(steps) if falling else 0))
        write_run(tmp_path / "runs", lr, hist)
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"),
                 "--no-tensorboard"]) == 0
    runs = pd.read_csv(tmp_path / "report" / "runs.csv")
    left = runs[runs["reason"].fillna("") != ""]
    assert len(left) == 1
    printed = capsys.readouterr().out
    assert f"note: {left['run'].iloc[0]}: left out of T(eta) (converging" in printed


def test_a_window_refilled_inside_the_tail_is_said(tmp_path: Path, capsys) -> None:
    # a run resumed near its end without save_window=True logs U but no S while its window
    # refills (as ThermoCallback does after Lightning's resume: steps 45-55 of 80 with
    # window 6 and stride 3); the tail then averages fewer points, which nothing said
    for lr in LRS:
        _, u, s = canonical(lr)
        hist = history(u, s, noise=1e-4)
        if lr == LRS[1]:
            hist.loc[hist.index[-6:-3], "thermo/S"] = np.nan
        write_run(tmp_path / "runs", lr, hist)
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"),
                 "--no-tensorboard"]) == 0
    runs = pd.read_csv(tmp_path / "report" / "runs.csv").set_index("lr")
    assert runs["tail_without_S"].fillna(0).tolist() == [3 if lr == LRS[1] else 0
                                                         for lr in LRS]
    printed = capsys.readouterr().out
    assert "1 run(s) (lr=" in printed and "refilled inside the tail" in printed
    # the refilled run keeps its place in T(eta): its other tail points are sound
    assert len(pd.read_csv(tmp_path / "report" / "temperature.csv")) == len(LRS)


def test_no_table_says_why_and_contradicts_no_other_line(tmp_path: Path, capsys) -> None:
    # a new user read "3 run(s) are taken as stationary" and then "needs at least 3
    # stationary learning rates, found 0" (the three were low-ESS), and "(no temperature
    # table)" beside a temperature.csv that was written
    from thermo_lightning.meter import WindowSpec

    spec = WindowSpec(200, 50, 49, (10,), "auto", 1.0, "knn_graph").as_hparams()
    for lr in LRS[:3]:
        _, u, s = canonical(lr)
        write_run(tmp_path / "runs", lr, history(u, s, extra={"thermo/ess": 5.0}),
                  info={"window_spec": spec})
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"),
                 "--no-tensorboard"]) == 0
    printed = capsys.readouterr().out
    assert "needs at least 3 learning rates with runs in it (stationary, without a low ESS" \
        in printed
    assert "stationary learning rates, found" not in printed
    assert "temperature.csv holds its header only" in printed
    table = pd.read_csv(tmp_path / "report" / "temperature.csv")
    assert table.empty and {"lr", "U", "S", "T", "valid"} <= set(table.columns)


def test_a_log_cut_while_the_window_refilled_after_the_pilot_is_too_short(
        tmp_path: Path, capsys) -> None:
    # a trial's fit (Lightning's own folders, never resumed) was cut after the pilot: its
    # entropies were all of the pilot's stride 1, then the window refilled at stride 7. The
    # report took the pilot's points as its tail and said the run was "resumed without its
    # window"; it has no S at the stride it ended at
    for lr in LRS:
        _, u, s = canonical(lr)
        hist = history(u, s, noise=1e-4)
        hist["thermo/stride"] = 1.0
        if lr == LRS[1]:
            hist.loc[hist.index[-20:], "thermo/stride"] = 7.0
            hist.loc[hist.index[-20:], "thermo/S"] = np.nan
        write_run(tmp_path / "runs", lr, hist)
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report"),
                 "--no-tensorboard"]) == 0
    printed = capsys.readouterr().out
    assert "resumed without their window" not in printed
    assert "no logging point with S at its final stride 7" in printed
    runs = pd.read_csv(tmp_path / "report" / "runs.csv").set_index("lr")
    assert runs.loc[LRS[1], "reason"] == "too few logging points with U and S"
    assert "tail_without_S" not in runs or runs["tail_without_S"].isna().all()


def test_a_copy_outside_its_sweep_is_the_copy(tmp_path: Path) -> None:
    # a new user's trial: a run copied out of its sweep into extra/ (which sorts first) kept
    # the copy and called the sweep's own run "a copy of extra/..."
    import shutil

    names = []
    for i, lr in enumerate(LRS):
        _, u, s = canonical(lr)
        names.append(write_run(tmp_path / "sweepA", lr, history(u, s, noise=1e-3, seed=i)).name)
    (tmp_path / "sweepA" / "plan.json").write_text(
        json.dumps({"runs": [{"name": n, "lr": lr} for n, lr in zip(names, LRS, strict=True)]}))
    shutil.copytree(tmp_path / "sweepA" / names[1], tmp_path / "extra" / names[1])
    result = make_report(tmp_path, tmp_path / "report", tensorboard=False)
    reasons = result.runs.set_index("run")["reason"]
    assert reasons[f"extra/{names[1]}"].startswith(f"a copy of sweepA/{names[1]} ")
    assert reasons[f"sweepA/{names[1]}"] == ""
