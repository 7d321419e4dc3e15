"""Benchmarks stay out of CI except this smoke run: each script executes at a tiny size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("kl_gaussian_accuracy", ["--seeds", "2", "--n", "200", "--dims", "1", "3"]),
        ("known_temperature_accuracy", ["--seeds", "1", "--chains", "20", "--samples", "3"]),
    ],
)
def test_benchmark_runs(name: str, argv: list[str], capsys) -> None:
    table = _load(name).main(argv)
    assert len(table) > 0
    assert capsys.readouterr().out.strip()
