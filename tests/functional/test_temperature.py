"""Temperature inference: a canonical Gibbs family with known T, brackets against a loop
reference, convexity flags, local temperature, power-law fit and free-energy curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from thermo_lightning.functional import (
    fit_power_law,
    free_energy_curves,
    infer_temperature,
    local_temperature,
    smooth_across_lrs,
    smoothing_weights,
    trend_temperature,
)

COLUMNS = {"lr", "U", "S", "T", "T_lo", "T_hi", "valid"}


def canonical_family(lrs: np.ndarray, b: float = 3.9e-3, a: float = 0.85, c: float = 7.0,
                     s0: float = -2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """U = c T, S = c ln T + s0 with T = b eta^a: a family with dU/dS = T exactly."""
    t = b * lrs**a
    return t, c * t, c * np.log(t) + s0


def _reference_brackets(u: np.ndarray, s: np.ndarray, eps: float) -> tuple[list, list]:
    """Obvious loops over the definition (points sorted by S, no ties)."""
    order = np.argsort(s)
    lo, hi = [math.nan] * len(u), [math.nan] * len(u)
    for pos, i in enumerate(order):
        below = [(u[i] - u[j] - eps) / (s[i] - s[j]) for j in order[:pos]]
        above = [(u[i] - u[j] - eps) / (s[i] - s[j]) for j in order[pos + 1 :]]
        lo[i] = max(below) if below else math.nan
        hi[i] = min(above) if above else math.nan
    return lo, hi


def test_canonical_family_recovers_temperature_and_power_law() -> None:
    lrs = np.logspace(-3, -1, 31)  # 15 per decade, as the paper's dense grid
    t_true, u, s = canonical_family(lrs)
    df = infer_temperature(lrs, u, s, smoothing=None)
    assert set(df.columns) >= COLUMNS
    interior = df.iloc[1:-1]
    np.testing.assert_allclose(interior["T"], t_true[1:-1], rtol=0.01)
    assert df["valid"].all()
    b, a = fit_power_law(interior["lr"], interior["T"])
    assert b == pytest.approx(3.9e-3, rel=0.01)
    assert a == pytest.approx(0.85, rel=0.01)


def test_brackets_equal_loop_reference_with_slack() -> None:
    rng = np.random.default_rng(0)
    lrs = np.logspace(-4, 0, 12)
    _, u, s = canonical_family(lrs)
    u = u * (1 + rng.normal(0, 1e-3, len(u)))
    for eps in (0.0, 1e-3):
        df = infer_temperature(lrs, u, s, eps=eps, smoothing=None)
        lo, hi = _reference_brackets(u, s, eps)
        np.testing.assert_allclose(df["T_lo"], lo, rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(df["T_hi"], hi, rtol=1e-12, equal_nan=True)
        inner = df.iloc[1:-1]  # both bounds exist
        ok = ((inner["T_lo"] > 0) & (inner["T_hi"] > 0)).to_numpy()
        assert ok.sum() >= (10 if eps == 0 else 3)
        np.testing.assert_allclose(
            inner["T"][ok], np.sqrt(inner["T_lo"][ok] * inner["T_hi"][ok]), rtol=1e-12
        )
        # a non-positive lower bound (slack larger than the energy gap) leaves T undefined
        assert inner["T"][~ok].isna().all()
        assert not inner["valid"][~ok].any()


def test_missing_bound_takes_the_other() -> None:
    lrs = np.array([0.01, 0.02, 0.04, 0.08])
    _, u, s = canonical_family(lrs)
    df = infer_temperature(lrs, u, s, smoothing=None)
    assert math.isnan(df["T_lo"].iloc[0]) and df["T"].iloc[0] == df["T_hi"].iloc[0]
    assert math.isnan(df["T_hi"].iloc[-1]) and df["T"].iloc[-1] == df["T_lo"].iloc[-1]


def test_non_convex_points_flag_exactly_the_violating_rows() -> None:
    lrs = np.logspace(-3, -1, 9)
    _, u, s = canonical_family(lrs)
    u = u.copy()
    # lift two interior points above the chord of their neighbours: no supporting line
    for i in (3, 6):
        u[i] = 0.5 * (u[i - 1] + u[i + 1]) + 0.2 * (u[i + 1] - u[i - 1])
    df = infer_temperature(lrs, u, s, smoothing=None)
    assert df.index[~df["valid"]].tolist() == [3, 6]
    assert (df["T_lo"] > df["T_hi"])[[3, 6]].all()
    assert df.loc[3, "reason"].startswith("empty bracket")
    assert (df.loc[df["valid"], "reason"] == "").all()


def test_non_positive_temperature_is_invalid() -> None:
    # U falls while S rises: only a negative T would make these points minimisers
    df = infer_temperature([0.1, 0.2, 0.3], [3.0, 2.0, 1.0], [0.0, 1.0, 2.0], smoothing=None)
    assert not df["valid"].any()
    assert df["T"].isna().all()


def test_equal_entropies_are_handled() -> None:
    df = infer_temperature([0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 2.5, 4.0], [0.0, 1.0, 1.0, 2.0],
                           smoothing=None)
    assert not df.loc[2, "valid"] and "equal entropy" in df.loc[2, "reason"]
    assert df.loc[1, "valid"]


def test_unsorted_lrs_give_the_same_table() -> None:
    lrs = np.logspace(-3, -1, 10)
    _, u, s = canonical_family(lrs)
    perm = np.random.default_rng(1).permutation(10)
    a = infer_temperature(lrs, u, s)
    b = infer_temperature(lrs[perm], u[perm], s[perm])
    pd.testing.assert_frame_equal(a, b)


def test_smoothing_kernel() -> None:
    lrs = np.logspace(-3, 0, 16)
    w = smoothing_weights(lrs, 0.3)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    np.testing.assert_array_equal(w[0], np.eye(16)[0])
    np.testing.assert_array_equal(w[-1], np.eye(16)[-1])
    x = np.log(lrs)
    for i in range(1, 15):  # loop reference for interior rows
        raw = np.maximum(0.3 - np.abs(x[i] - x), 0)
        np.testing.assert_allclose(w[i], raw / raw.sum())
    # symmetric kernel on a uniform log grid: a linear function of ln(eta) is kept
    np.testing.assert_allclose(smooth_across_lrs(lrs, 2 * x + 1), 2 * x + 1, rtol=1e-12)
    # and the smoothed columns are what infer_temperature reports
    _, u, s = canonical_family(lrs)
    df = infer_temperature(lrs, u, s, smoothing=0.3)
    np.testing.assert_allclose(df["U"], w @ u)
    np.testing.assert_allclose(df["U_raw"], u)
    assert infer_temperature(lrs, u, s, smoothing=0)["U"].equals(df["U_raw"])


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([0.1, 0.2], [1, 2], [1, 2]), {}, "at least 3"),
        (([0.1, 0.2, 0.3], [1, 2], [1, 2, 3]), {}, "equal lengths"),
        (([0.1, 0.2, 0.3], [1, float("nan"), 3], [1, 2, 3]), {}, r"NaN or Inf at lrs \[0.2\]"),
        (([0.1, 0.2, 0.3], [1, 2, 3], [1, 2, float("inf")]), {}, r"lrs \[0.3\]"),
        (([0.1, -0.2, 0.3], [1, 2, 3], [1, 2, 3]), {}, "`lrs`"),
        (([0.1, 0.1, 0.3], [1, 2, 3], [1, 2, 3]), {}, "repeated"),
        (([0.1, 0.2, 0.3], [1, 2, 3], [1, 2, 3]), {"eps": -1}, "`eps`"),
        (([0.1, 0.2, 0.3], [1, 2, 3], [1, 2, 3]), {"smoothing": -0.3}, "`smoothing`"),
    ],
)
def test_bad_input(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        infer_temperature(*args, **kwargs)


def test_local_temperature_exact_for_linear_path_and_nan_at_ends() -> None:
    s = np.linspace(0.0, 5.0, 30) ** 1.5
    u = 0.3 + 0.02 * s  # U = a + T0 S: dU/dS = 0.02 everywhere
    t = local_temperature(u, s, lag=2)
    assert np.isnan(t[:2]).all() and np.isnan(t[-2:]).all()
    np.testing.assert_allclose(t[2:-2], 0.02, rtol=1e-10)


def test_local_temperature_follows_a_cooling_run() -> None:
    # a run cooling through the canonical family: T(t) decays, U = c T, S = c ln T
    temps = 1e-3 * np.exp(-np.linspace(0, 3, 200))
    t = local_temperature(7 * temps, 7 * np.log(temps), lag=2)
    np.testing.assert_allclose(t[2:-2], temps[2:-2], rtol=1e-3)


def test_local_temperature_short_and_bad_input() -> None:
    assert np.isnan(local_temperature([1, 2, 3], [1, 2, 3], lag=2)).all()
    assert np.isnan(local_temperature([1, 1, 1, 1, 1], [2, 2, 2, 2, 2], lag=1)).all()
    with pytest.raises(ValueError, match="`lag`"):
        local_temperature([1, 2, 3], [1, 2, 3], lag=0)
    with pytest.raises(ValueError, match="equal lengths"):
        local_temperature([1, 2, 3], [1, 2], lag=1)


def test_fit_power_law_ignores_unusable_points() -> None:
    lrs = np.array([1e-3, 1e-2, 1e-1, 1.0, 2.0])
    t = 2.5e-4 * lrs**0.86
    t[3], t[4] = np.nan, -1.0
    b, a = fit_power_law(lrs, t)
    assert b == pytest.approx(2.5e-4, rel=1e-9) and a == pytest.approx(0.86, rel=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        fit_power_law([1e-3, 1e-2], [1.0, np.nan])


def test_free_energy_curves_have_their_minimum_at_the_source_lr() -> None:
    lrs = np.logspace(-3, -1, 15)
    _, u, s = canonical_family(lrs)
    df = infer_temperature(lrs, u, s, smoothing=None)
    interior = df.iloc[1:-1]
    curves = free_energy_curves(lrs[::-1], u[::-1], s[::-1], interior["T"])
    np.testing.assert_array_equal(curves.lr_at_min, interior["lr"].to_numpy())
    np.testing.assert_allclose(curves.free_energy[0], u - interior["T"].iloc[0] * s)
    long = curves.to_frame()
    assert len(long) == len(interior) * 15 and long["is_min"].sum() == len(interior)
    with pytest.raises(ValueError, match="temperatures"):
        free_energy_curves(lrs, u, s, [])


def test_trend_temperature_follows_a_joint_drift_and_stays_silent_when_stationary() -> None:
    rng = np.random.default_rng(0)
    steps = np.unique(np.geomspace(10, 100_000, 120).round())
    n = len(steps)
    # U and S fall together (a collapse) with T = dU/dS = 0.02, plus noise
    s_path = -3.0 * np.log(steps) + rng.normal(0, 0.05, n)
    u_path = 0.02 * s_path + rng.normal(0, 0.001, n)
    t = trend_temperature(steps, u_path, s_path)
    inner = t[4:-4]
    assert np.isfinite(inner).mean() > 0.95
    assert np.nanmedian(inner) == pytest.approx(0.02, rel=0.05)
    # stationary: U and S fluctuate around constants; the finite difference is a ratio of
    # noise terms (values of both signs), the trend temperature logs (almost) nothing
    u_flat = 0.5 + rng.normal(0, 0.01, n)
    s_flat = -40.0 + rng.normal(0, 0.5, n)
    noise = local_temperature(u_flat, s_flat)
    assert (noise[np.isfinite(noise)] < 0).mean() > 0.3
    assert np.isfinite(trend_temperature(steps, u_flat, s_flat)).mean() <= 0.02
    # only one of the two drifting: no temperature either
    assert np.isfinite(trend_temperature(steps, u_flat, s_path)).mean() <= 0.02


def test_trend_temperature_bad_input() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        trend_temperature([1, 2, 3], [1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="`half_width`"):
        trend_temperature([1, 2, 3], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], half_width=0)
    with pytest.raises(ValueError, match="`alpha`"):
        trend_temperature([1, 2, 3], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], alpha=1.5)
