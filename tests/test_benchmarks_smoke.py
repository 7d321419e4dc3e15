"""Benchmarks stay out of CI except this smoke run: each script executes at a tiny size."""

from __future__ import annotations

import pytest

from tests.helpers.scripts import load_script


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("kl_gaussian_accuracy", ["--seeds", "2", "--n", "200", "--dims", "1", "3"]),
        ("known_temperature_accuracy", ["--seeds", "1", "--chains", "20", "--samples", "3"]),
    ],
)
def test_benchmark_runs(name: str, argv: list[str], capsys) -> None:
    table = load_script("benchmarks", name).main(argv)
    assert len(table) > 0
    assert capsys.readouterr().out.strip()
