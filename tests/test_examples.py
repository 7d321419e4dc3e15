"""Every example runs at a tiny size."""

from __future__ import annotations

import numpy as np

from tests.helpers.scripts import load_script


def test_known_temperature_example(capsys) -> None:
    table = load_script("examples", "known_temperature").main(["--chains", "40", "--samples", "4"])
    out = capsys.readouterr().out
    assert "fit T =" in out and "Without thinning" in out
    assert list(table["lr"]) == sorted(table["lr"])
    ratio = (table["T_graph"] / table["T_true"]).iloc[1:-1]
    assert np.all(np.abs(ratio - 1) < 0.25)  # tiny run: 160 points per LR
