"""The noise-robust temperature construction (issue 27) against exact answers: clean convex
points (the paper's construction's values), a noisy convex curve whose slope is known, and a
real kink."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from thermo_lightning.functional import infer_temperature
from thermo_lightning.functional.convex_temperature import convex_temperature

LRS = np.geomspace(0.01, 0.2, 8)
T_TRUE = 0.004 * LRS**0.85  # a Gibbs family: U = 3 T, S = 3 ln T, so dU/dS = T exactly


def test_clean_convex_points_give_the_papers_temperatures() -> None:
    u, s = 3 * T_TRUE, 3 * np.log(T_TRUE)
    fitted = convex_temperature(LRS, u, s)
    brackets = infer_temperature(LRS, u, s, smoothing=None)
    np.testing.assert_allclose(fitted["T"], brackets["T"], rtol=1e-8)
    assert fitted["valid"].all() and fitted.attrs["chi2"] < 1e-12
    assert fitted["end"].tolist() == [True] + [False] * 6 + [True]


def test_a_noisy_convex_curve_keeps_its_rows_and_its_slope() -> None:
    # noise comparable to the steps between points (S: 0.15 against steps of 0.38 nats) pushes
    # points off the convex curve: the paper's brackets then go empty; the fit keeps them
    rng = np.random.default_rng(0)
    u, s = 3 * T_TRUE, 3 * np.log(T_TRUE)
    se_u, se_s = 0.03 * u, np.full(len(LRS), 0.15)
    kept_fit = kept_brackets = 0
    errors = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from the solver's trial steps
        for _ in range(100):
            un = u + se_u * rng.standard_normal(len(LRS))
            sn = s + se_s * rng.standard_normal(len(LRS))
            fitted = convex_temperature(LRS, un, sn, se_u, se_s)
            brackets = infer_temperature(LRS, un, sn, smoothing=None)
            inner = ~fitted["end"].to_numpy()
            kept_fit += int(fitted["valid"][inner].sum())
            kept_brackets += int(brackets["valid"][inner].sum())
            errors += list(fitted["T"][inner] / T_TRUE[inner] - 1)
    # measured: 600 of 600 interior rows kept against the brackets' 497; median |error| 6.4%,
    # median error +1.2%
    assert kept_fit >= 0.98 * 600 and kept_brackets < 0.9 * 600
    assert np.median(np.abs(errors)) < 0.1
    assert abs(np.median(errors)) < 0.03  # no bias to speak of


def test_a_kink_far_beyond_the_errors_is_rejected() -> None:
    u, s = 3 * T_TRUE, 3 * np.log(T_TRUE)
    u = u.copy()
    u[4] += 20 * 0.03 * u[4]  # twenty standard errors up: not convex there
    fitted = convex_temperature(LRS, u, s, 0.03 * 3 * T_TRUE, np.full(len(LRS), 0.15))
    assert not fitted["valid"][4] and "reject a convex" in fitted["reason"][4]
    assert fitted["valid"].sum() >= 6  # the kink, and at most a neighbour it pulls along


def test_a_slope_the_data_do_not_determine_is_not_valid() -> None:
    # equal points fit any slope: the solver's start came back as T = 1.0 on every row,
    # valid (a sweep whose S does not move with the learning rate)
    flat = convex_temperature(LRS, np.full(8, 0.5), np.full(8, -3.0))
    assert not flat["valid"].any()
    assert "do not determine its slope" in flat["reason"][3]
    # S resolved on one side only: the rows whose neighbours straddle the step stay valid
    s = np.where(np.arange(8) < 4, -3.0, 3.0) + 0.01 * np.arange(8)
    u = np.where(np.arange(8) < 4, 0.5, 2.0) + 0.001 * np.arange(8)
    fitted = convex_temperature(LRS, u, s, np.full(8, 0.01), np.full(8, 0.1))
    assert fitted["valid"].tolist() == [False, False, False, True, True, False, False, False]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"lrs": [0.1, 0.2], "energies": [1.0, 2.0], "entropies": [0.0, 1.0]}, "at least 3"),
    ({"lrs": [0.1, 0.1, 0.2]}, "distinct"),
    ({"energies": [1.0, float("nan"), 2.0]}, "NaN"),
    ({"reject": 0.0}, "reject"),
    ({"resolve": -1.0}, "resolve"),
    ({"energy_se": [1.0, 2.0]}, "energy_se"),
])
def test_bad_input_is_said(kwargs: dict, match: str) -> None:
    args = {"lrs": [0.1, 0.2, 0.4], "energies": [1.0, 2.0, 3.5],
            "entropies": [0.0, 1.0, 1.8], **kwargs}
    with pytest.raises(ValueError, match=match):
        convex_temperature(**args)


def test_the_reason_names_the_unit_the_distance_is_in() -> None:
    # a new user's trial: without standard errors every point weighs 1% of the spread, but
    # the reason still said "more than 3 standard errors off the curve"
    lr = np.array([0.01, 0.02, 0.04, 0.08, 0.16])
    u, s = np.array([1.0, 2.0, 3.5, 3.6, 5.0]), 10 * np.log(lr)
    plain = convex_temperature(lr, u, s)["reason"]
    assert (plain.str.contains("3% of the sweep's spread off the curve; no standard errors")
            ).sum() >= 1 and not plain.str.contains("standard errors off").any()
    weighed = convex_temperature(lr, u, s, energy_se=[0.01] * 5, entropy_se=[0.1] * 5)["reason"]
    assert weighed.str.contains("more than 3 standard errors off the curve").any()
