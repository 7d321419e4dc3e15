"""Every example runs at a tiny size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_known_temperature_example(capsys) -> None:
    table = _load("known_temperature").main(["--chains", "40", "--samples", "4"])
    out = capsys.readouterr().out
    assert "fit T =" in out and "Without thinning" in out
    assert list(table["lr"]) == sorted(table["lr"])
    ratio = (table["T_graph"] / table["T_true"]).iloc[1:-1]
    assert np.all(np.abs(ratio - 1) < 0.25)  # tiny run: 160 points per LR
