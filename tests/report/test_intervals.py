"""Intervals over seeds: Student's t on the seeds' own T(eta) and exponents."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from thermo_lightning.functional import infer_temperature
from thermo_lightning.intervals import seed_intervals, t_interval
from thermo_lightning.report import _power_law_or_none

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
        _power_law_or_none)
    assert set(out.per_seed["seed"]) == {0, 1, 2}
    half = student_t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    for _, row in out.temperature.iloc[1:-1].iterrows():  # the interior rows
        assert row["n_seeds"] == 3
        # each seed's T is its k lr to the construction's 2% (geometric-mean chords)
        assert row["T_ci_lo"] == pytest.approx(row["lr"] * (1 - half), rel=0.03)
        assert row["T_ci_hi"] == pytest.approx(row["lr"] * (1 + half), rel=0.03)
    assert out.exponents.keys() == {0, 1, 2}
    lo, hi = out.a_ci
    assert lo <= 1.0 <= hi and hi - lo < 1e-6  # the same exponent for every seed
    single = seed_intervals(chosen[chosen["seed"] == 0], lambda r: infer_temperature(
        r["lr"], r["U"], r["S"]), _power_law_or_none)
    assert single.temperature["T_ci_lo"].isna().all() and math.isnan(single.a_ci[0])
