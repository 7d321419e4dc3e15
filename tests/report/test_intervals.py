"""Intervals: over seeds (pooled Student's t on ln T, t on the exponents) and within one run
(the moving-block bootstrap of the tail, through the whole bracket construction)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter
from scipy.stats import t as student_t

from thermo_lightning.functional import infer_temperature
from thermo_lightning.report import make_report
from thermo_lightning.report.intervals import (
    MIN_BLOCKS,
    SeedIntervals,
    bootstrap_intervals,
    pooled_log_intervals,
    seed_intervals,
    t_interval,
    tail_block_length,
    tail_bootstrap,
)
from thermo_lightning.report.temperature import _exponent_around, power_law_or_none

from .synthetic import canonical, history, write_run

LRS = [0.01, 0.02, 0.04, 0.08, 0.16]


def _gibbs_rows(k: float, seed: int) -> pd.DataFrame:
    """One seed's sweep: a Gibbs family with T = k lr (U = 3 T, S = 3 ln T)."""
    t = np.array(LRS) * k
    return pd.DataFrame({"seed": seed, "lr": LRS, "U": 3 * t, "S": 3 * np.log(t)})


def test_t_interval_is_students() -> None:
    v = np.array([1.0, 1.2, 0.9, 1.1])
    half = student_t.ppf(0.975, 3) * v.std(ddof=1) / 2
    assert t_interval(v) == pytest.approx((v.mean() - half, v.mean() + half))
    assert all(math.isnan(x) for x in t_interval(np.array([1.0])))
    with pytest.raises(ValueError, match="`level`"):
        t_interval(v, level=95)


def test_seed_intervals_spread_over_seeds() -> None:
    # three seeds whose temperatures are 0.9, 1.0 and 1.1 times lr: at every interior LR the
    # interval is lr (1 +- t_{0.975,2} 0.1 / sqrt 3), and every exponent is 1
    chosen = pd.concat([_gibbs_rows(k, s) for s, k in enumerate([0.9, 1.0, 1.1])])
    out = seed_intervals(
        chosen, lambda r: infer_temperature(r["lr"], r["U"], r["S"], smoothing=None),
        power_law_or_none)
    assert set(out.per_seed["seed"]) == {0, 1, 2}
    # every seed's T is k times the same construction's value (U and S of a Gibbs family
    # scale exactly), so ln T deviates by ln k - mean at every LR: the pooled standard
    # deviation is that of ln(0.9, 1.0, 1.1), with 5 * 2 degrees of freedom
    logs = np.log([0.9, 1.0, 1.1])
    half = student_t.ppf(0.975, 10) * logs.std(ddof=1) / math.sqrt(3)
    one = infer_temperature(LRS, *(_gibbs_rows(1.0, 0)[c] for c in ("U", "S")),
                            smoothing=None)["T"].to_numpy()
    geo = np.exp(logs.mean())
    for i, row in out.temperature.iterrows():
        assert row["n_seeds"] == 3
        assert row["T_seed_mean"] == pytest.approx(geo * one[i], rel=1e-9)
        assert row["T_ci_lo"] == pytest.approx(geo * one[i] * math.exp(-half), rel=1e-9)
        assert row["T_ci_hi"] == pytest.approx(geo * one[i] * math.exp(half), rel=1e-9)
    assert out.exponents.keys() == {0, 1, 2}
    lo, hi = out.a_ci
    assert lo <= 1.0 <= hi and hi - lo < 1e-6  # the same exponent for every seed
    single = seed_intervals(chosen[chosen["seed"] == 0], lambda r: infer_temperature(
        r["lr"], r["U"], r["S"]), power_law_or_none)
    assert single.temperature["T_ci_lo"].isna().all() and math.isnan(single.a_ci[0])


def test_pooled_intervals_do_not_collapse_where_seeds_agree_by_chance() -> None:
    # at lr 0.02 the three seeds agree exactly; the other LRs carry the spread: the pooled
    # interval there is as wide as anywhere, where a per-row t interval would be empty
    rows = []
    for lr, ks in ((0.01, (0.9, 1.0, 1.1)), (0.02, (1.0, 1.0, 1.0)), (0.04, (0.85, 1.0, 1.1))):
        rows += [{"seed": s, "lr": lr, "T": k * lr, "valid": True} for s, k in enumerate(ks)]
    rows.append({"seed": 3, "lr": 0.08, "T": 0.08, "valid": True})  # one seed: no interval
    rows.append({"seed": 0, "lr": 0.16, "T": 0.16, "valid": False})
    out = pooled_log_intervals(pd.DataFrame(rows)).set_index("lr")
    width = np.log(out["T_ci_hi"] / out["T_ci_lo"])
    assert width[0.02] == pytest.approx(width[0.01]) and width[0.02] > 0.1
    assert out.loc[0.02, "T_seed_mean"] == pytest.approx(0.02)
    assert out.loc[0.08, "n_seeds"] == 1 and math.isnan(out.loc[0.08, "T_ci_lo"])
    assert out.loc[0.16, "n_seeds"] == 0 and math.isnan(out.loc[0.16, "T_seed_mean"])


def test_block_length_covers_window_overlap_and_autocorrelation() -> None:
    steps = np.arange(100) * 10.0
    white = np.random.default_rng(0).standard_normal(100)
    assert tail_block_length(steps, white) <= 3  # 2 tau, tau about 1
    assert tail_block_length(steps, white, span=95.0) == 10  # a window spans 10 points
    ar = lfilter([1.0], [1.0, -0.9], np.random.default_rng(1).standard_normal(20_000))
    # AR(1) with phi = 0.9: tau = (1 + phi) / (1 - phi) = 19; L = 2 tau
    assert 30 <= tail_block_length(np.arange(20_000.0), ar) <= 50


@pytest.mark.parametrize("phi", [0.0, 0.8])
def test_tail_bootstrap_standard_error(phi: float) -> None:
    # the bootstrap's standard error of the mean against the exact one of an AR(1):
    # sigma_x sqrt(tau / n), tau = (1 + phi) / (1 - phi)
    rng = np.random.default_rng(2)
    n, reps = 3000, 40
    ratios = []
    for _ in range(reps):
        x = lfilter([1.0], [1.0, -phi], rng.standard_normal(n))
        boot = tail_bootstrap(np.arange(n, dtype=float), np.c_[x, -x], draws=300, rng=rng)
        assert boot.means is not None and boot.means.shape == (300, 2)
        exact = math.sqrt(1 / (1 - phi**2)) * math.sqrt((1 + phi) / (1 - phi) / n)
        ratios.append(boot.se[0] / exact)
        assert boot.se[1] == pytest.approx(boot.se[0])
    assert 0.85 < float(np.median(ratios)) < 1.1


def test_tail_bootstrap_refuses_a_tail_of_few_blocks() -> None:
    steps = np.arange(20) * 100.0
    boot = tail_bootstrap(steps, np.random.default_rng(0).standard_normal((20, 2)),
                          span=1000.0)  # a window spans 10 points: 2 blocks
    assert boot.block == 10 and boot.blocks == 2 < MIN_BLOCKS
    assert boot.means is None and boot.se is None


def test_bootstrap_intervals_rerun_the_construction_on_every_draw() -> None:
    # 5 runs of a Gibbs family with T = lr; each run's resampled tail means scatter by 1% in
    # U and 0.01 in S about the exact values: the intervals hold T and the exponent 1
    rng = np.random.default_rng(3)
    lrs = np.array(LRS)
    draws = 200
    means = {}
    for lr in lrs:
        u, s = 3 * lr, 3 * np.log(lr)
        means[f"r{lr}"] = np.c_[u * (1 + 0.01 * rng.standard_normal(draws)),
                                s + 0.01 * rng.standard_normal(draws)]
    runs = pd.DataFrame({"run": [f"r{lr}" for lr in lrs], "lr": lrs})
    out = bootstrap_intervals(
        runs, means, lambda r: infer_temperature(r["lr"], r["U"], r["S"], smoothing=None),
        power_law_or_none)
    assert out.per_seed["seed"].nunique() == draws
    exact = infer_temperature(lrs, 3 * lrs, 3 * np.log(lrs), smoothing=None)["T"].to_numpy()
    t = out.temperature
    assert (t["T_ci_lo"] < exact).all() and (exact < t["T_ci_hi"]).all()
    assert ((t["T_ci_hi"] - t["T_ci_lo"]) / exact < 0.2).all()
    assert out.a_ci[0] < 1.0 < out.a_ci[1]


def _noisy_history(lr: float, seed: int, points: int = 400) -> pd.DataFrame:
    _, u, s = canonical(lr)
    rng = np.random.default_rng(seed)
    steps = np.arange(1, points + 1) * 10.0
    return pd.DataFrame({"step": steps, "thermo/U": u * (1 + 0.01 * rng.standard_normal(points)),
                         "thermo/S": s + 0.05 * rng.standard_normal(points)})


def test_report_one_seed_gets_bootstrap_intervals(tmp_path) -> None:
    lrs = [0.01, 0.02, 0.04, 0.08, 0.16]
    for i, lr in enumerate(lrs):
        write_run(tmp_path / "runs", lr, _noisy_history(lr, i))
    result = make_report(tmp_path / "runs", tmp_path / "report", tensorboard=False)
    runs, t = result.runs, result.temperature
    assert (runs["blocks"] >= MIN_BLOCKS).all() and runs["U_se"].notna().all()
    # 60 tail points of white noise: the standard error is sd / sqrt(60)
    assert runs["S_se"].median() == pytest.approx(0.05 / math.sqrt(60), rel=0.3)
    assert (t["ci_method"] == "bootstrap").all()
    assert t["U_se"].tolist() == pytest.approx(runs["U_se"].tolist())
    truth = np.array([canonical(lr)[0] for lr in lrs])
    interior = slice(1, -1)
    assert ((t["T_ci_lo"] <= truth * 1.03) & (truth <= t["T_ci_hi"] * 1.03))[interior].all()
    assert result.fit is not None and result.fit["ci_method"] == "bootstrap"
    assert result.fit["a_ci_lo"] < 0.85 < result.fit["a_ci_hi"]


def test_report_says_why_one_seed_has_no_interval(tmp_path, capsys) -> None:
    lrs = [0.01, 0.02, 0.04, 0.08, 0.16]
    for i, lr in enumerate(lrs):
        # a window of 200 snapshots at stride 20 spans 4000 steps: the 60-point tail
        # (600 steps) is a fraction of one window
        write_run(tmp_path / "runs", lr, _noisy_history(lr, i),
                  info={"window_spec": {"thermo_spec/window": 200,
                                        "thermo_spec/num_parameters": 10,
                                        "thermo_spec/dim": 9, "thermo_spec/k": [5],
                                        "thermo_spec/stride": 20, "thermo_spec/radius": None,
                                        "thermo_spec/estimator": "knn_graph",
                                        "thermo_spec/sketch_dim": None,
                                        "thermo_spec/shards": 1}})
    result = make_report(tmp_path / "runs", tensorboard=False)  # into runs/report
    assert (result.runs["blocks"] == 0).all()
    assert result.runs[["U_se", "S_se"]].isna().all().all()  # the columns, empty
    assert result.temperature["T_ci_lo"].isna().all()
    said = [m for m in result.messages if "within-run bootstrap needs at least 3" in m]
    # one block is 400 points (a window spans 4000 steps, 10 apart); the run has 400
    assert len(said) == 1 and "not even the whole run" in said[0] and "--seeds" in said[0]
    # no standard errors at all: no row can be checked against its errors (a 2000-step
    # sweep of the known-temperature problem read 1.34 of the truth at a valid row): every
    # interior row is marked unchecked, with a note
    t = result.temperature
    assert t["unchecked"].tolist() == (~t["end"]).tolist()
    assert sum("no row can be checked" in m for m in result.messages) == 1
    # ... and the table the CLI prints shows the mark (a new user read only the note)
    from thermo_lightning.cli import _print_table

    capsys.readouterr()
    _print_table(t)
    header, *rows = capsys.readouterr().out.splitlines()
    assert "unchecked" in header.split() and "near_uniform" not in header.split()
    assert [r.split()[header.split().index("unchecked")] for r in rows] == [
        str(v) for v in t["unchecked"]]
    # fit.json is strict JSON: the missing interval is null, not NaN
    text = (tmp_path / "runs" / "report" / "fit.json").read_text()
    fit = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in fit.json"))
    assert fit["a_ci_lo"] is None and fit["ci_method"] is None


def test_report_says_which_tail_gives_the_bootstrap_its_blocks(tmp_path) -> None:
    lrs = [0.01, 0.02, 0.04, 0.08]
    spec = {"thermo_spec/window": 10, "thermo_spec/num_parameters": 10, "thermo_spec/dim": 9,
            "thermo_spec/k": [5], "thermo_spec/stride": 10, "thermo_spec/radius": None,
            "thermo_spec/estimator": "knn_graph", "thermo_spec/sketch_dim": None,
            "thermo_spec/shards": 1}
    for i, lr in enumerate(lrs):
        # a window spans 100 steps, 10 points: the 60-point tail holds 6 blocks, a 0.05
        # tail (20 points) only 2
        write_run(tmp_path / "runs", lr, _noisy_history(lr, i), info={"window_spec": spec})
    short = make_report(tmp_path / "runs", tmp_path / "a", tail=0.05, tensorboard=False)
    # 3 blocks of 10 points need 30 of the 400: a tail of 0.075, rounded up
    said = [m for m in short.messages if "within-run bootstrap" in m]
    assert len(said) == 1 and "--tail 0.08 would give every run enough" in said[0]
    full = make_report(tmp_path / "runs", tmp_path / "b", tail=0.15, tensorboard=False)
    assert (full.runs["blocks"] == 6).all() and (full.temperature["ci_method"] == "bootstrap"
                                                  ).all()


def test_every_interval_is_about_its_own_point(tmp_path) -> None:
    # T comes from the seed-averaged U and S, the spread from each seed's own T(eta), and the
    # chords are ratios: the mean of the seeds' T is not the T of their mean. Here the seeds
    # agree except at lr 0.08, whose S they scatter (-2, +1, +1): the averaged S is the
    # canonical one, the seeds' own T about it are not. An interval about the seeds' mean
    # is off-centre (two digits rows' excluded their own T); each must be about its T
    lrs = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32]
    for seed, shift in enumerate((-2.0, 1.0, 1.0)):
        for lr in lrs:
            _, u, s = canonical(lr)
            write_run(tmp_path / f"seed{seed}", lr, history(u, s + (shift if lr == 0.08 else 0)),
                      info={"hparams": {"lr": lr, "seed": seed, "window": 200, "k": [10],
                                        "estimator": "knn_graph", "model": "synthetic"}})
    result = make_report(tmp_path, tmp_path / "report", tensorboard=False, smoothing=None)
    t = result.temperature
    with_ci = t[t["T_ci_lo"].notna()]
    assert len(with_ci) == 4 and (with_ci["ci_method"] == "seeds").all()
    assert t.loc[t["end"], "T_ci_lo"].isna().all()  # the end rows: not valid, no interval
    # the seeds' interval is log-symmetric: its geometric centre is the row's own T
    centre = np.sqrt(with_ci["T_ci_lo"] * with_ci["T_ci_hi"])
    assert centre.to_numpy() == pytest.approx(with_ci["T"].to_numpy(), rel=1e-9)
    truth = np.array([canonical(lr)[0] for lr in t["lr"]])
    assert np.allclose(t["T"][1:-1], truth[1:-1], rtol=0.05)  # averaged: the canonical T
    # the exponent likewise: its interval (from the seeds' own exponents) holds the fitted a
    fit = result.fit
    assert fit is not None and fit["ci_method"] == "seeds"
    assert fit["a_ci_lo"] <= fit["a"] <= fit["a_ci_hi"]


def test_the_exponents_interval_is_about_the_fitted_exponent() -> None:
    # the seeds' own exponents average 1.1; the seed-averaged rows' power law gave 0.8 (the
    # construction is not linear): the interval keeps its width and moves to hold 0.8
    spread = SeedIntervals(pd.DataFrame(), pd.DataFrame(), {0: 1.0, 1: 1.2, 2: 1.1},
                           (0.95, 1.25))
    lo, hi = _exponent_around(0.8, spread)
    assert (lo, hi) == pytest.approx((0.65, 0.95))
    assert math.isnan(_exponent_around(0.8, None)[0])



def test_missing_seed_intervals_are_said(tmp_path) -> None:
    # a new user's trial: runs left out of T(eta) thinned two seeds' sweeps to 2 learning
    # rates each; rows and the exponent had no interval, and nothing said why
    lrs = [0.01, 0.02, 0.04, 0.08, 0.16]
    for seed in range(3):
        for i, lr in enumerate(lrs if seed == 0 else lrs[1:3]):
            _, u, s = canonical(lr)
            write_run(tmp_path / f"seed{seed}", lr, history(u, s, noise=1e-3, seed=10 * seed + i),
                      info={"hparams": {"lr": lr, "seed": seed, "window": 200, "k": [10],
                                        "estimator": "knn_graph", "model": "synthetic"}})
    result = make_report(tmp_path, tmp_path / "report", tensorboard=False)
    said = "\n".join(result.messages)
    assert "fewer than 2 seeds have a valid T there (seed(s) 1, 2 have fewer than 3" in said
    assert "the exponent's interval: none, 1 seed(s) have a power law of their own" in said
    assert result.fit is not None and math.isnan(result.fit["a_ci_lo"])
