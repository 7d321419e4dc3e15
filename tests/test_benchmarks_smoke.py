"""Benchmarks stay out of CI except this smoke run: each script executes at a tiny size."""

from __future__ import annotations

import pytest

from tests.helpers.scripts import load_script


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("kl_gaussian_accuracy", ["--seeds", "2", "--n", "200", "--dims", "1", "3"]),
        ("known_temperature_accuracy", ["--seeds", "1", "--chains", "20", "--samples", "3"]),
        ("callback_overhead", ["--steps", "30", "--repeats", "1", "--window", "20", "--k", "5",
                               "--snr-batches", "2"]),
        pytest.param("entropy_speed", ["--sizes", "100x500", "--repeats", "1"],
                     marks=pytest.mark.slow),  # ~17 s: it compares backends at every size
        ("known_temperature_defaults", ["--seeds", "1", "--steps", "2000", "--dim", "6",
                                        "--sigma", "0.5", "--curvature", "1", "--lrs", "0.05",
                                        "0.07", "0.1", "--protocols", "auto"]),
        ("snr_cost", ["--train-steps", "5", "--paper-batches", "6", "--k", "4", "--repeats",
                      "2", "--width", "2", "--toy-points", "4"]),
        ("conf_accuracy", ["--seeds", "2", "--steps", "400", "--every", "40", "--k", "4",
                           "--lrs", "0.04"]),
        ("conf_chain_reference", ["--chains", "4", "--steps", "200", "--burn-in", "50",
                                  "--lrs", "0.04"]),
        ("conf_cost", ["--train-steps", "5", "--repeats", "2", "--k", "2", "--width", "2"]),
        ("ci_coverage", ["--groups", "1", "--seeds", "2", "--steps", "1500", "--lrs", "3"]),
        ("sketch_temperature", ["--d", "300", "--n", "40", "--seeds", "2", "--sketch-dims",
                                "32", "--kappa", "1"]),
        ("window_memory", ["--d", "500", "--n", "30", "--seeds", "1", "--sketch-dims", "16"]),
        ("scaling", ["--n", "40", "80", "--d", "300", "600", "--repeats", "1"]),
        ("near_uniform_bias", ["--p", "6", "--n", "60", "--seeds", "1", "--step", "4"]),
    ],
)
def test_benchmark_runs(name: str, argv: list[str], capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # figures land here
    result = load_script("benchmarks", name).main(argv)
    tables = result if isinstance(result, tuple) else (result,)
    assert all(len(t) > 0 for t in tables)
    assert capsys.readouterr().out.strip()
