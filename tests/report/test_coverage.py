"""Coverage of the report's intervals on the known-temperature problem (the error-bar
issue's acceptance check): repeated 3-seed sweeps, true T inside [T_ci_lo, T_ci_hi]."""

from __future__ import annotations

import pytest

from tests.helpers.scripts import load_script


@pytest.mark.slow
def test_seed_intervals_cover_the_known_temperature(capsys) -> None:
    # 5 sweeps x 3 seeds x 5 LRs x 20,000 steps (benchmarks/ci_coverage.py; ~1.5 min):
    # 15 interior rows, each with a 95% interval from its sweep's 3 seeds, at the report's
    # default (convex) construction. The reference is the discrete chain's exact dU/dS
    # (measured 2026-12-05: 13 of 15; the benchmark's 10 sweeps: 28 of 30, either
    # construction). The first-order T = eta sigma^2 / 2 sits 1.3-2.6% below it, which
    # intervals of about 10% partly miss (11 of 15; 10 sweeps: 25 of 30)
    table = load_script("benchmarks", "ci_coverage").main(["--groups", "5"])
    assert len(table) == 15
    assert table["inside_chain"].mean() >= 0.8  # against the discrete chain's exact dU/dS
    assert table["inside"].mean() >= 0.6  # against T = eta sigma^2 / 2, biased low
    assert table["width/T"].median() < 0.5
    # the rows are not trivially covered: the intervals are a few percent to tens of
    # percent wide, not the whole axis
    assert table["width/T"].max() < 1.0
    assert "coverage by the 95% interval" in capsys.readouterr().out
