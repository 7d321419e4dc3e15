"""Rows whose S sits near the uniform sphere's (k-NN differences read large there) are marked
and not valid, unless the run is saturated (then it is left out already); the k-NN entropy's
differences against laws of known entropy (von Mises-Fisher) are what the marking rests on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.report.synthetic import history, write_run
from thermo_lightning.functional import uniform_sphere_knn_entropy
from thermo_lightning.report import make_report
from thermo_lightning.report.near_uniform import NEAR_UNIFORM

LRS = np.logspace(-2, -0.5, 7)
N, D, K = 200, 50, 10  # the window spec of every run below


def _sweep(root: Path, gaps: list[float], random_loss: float) -> float:
    """Runs whose S is ``gaps[i] * d`` below the uniform reference, U convex in S (T rising);
    returns the reference."""
    from thermo_lightning.meter import WindowSpec

    dim = D - 1
    s_uniform = float(uniform_sphere_knn_entropy(N, D, K, dim=dim))
    spec = WindowSpec(N, D, dim, (K,), "auto", 1.0, "knn_graph").as_hparams()
    for i, (lr, gap) in enumerate(zip(LRS, gaps, strict=True)):
        s = s_uniform - gap * dim
        u = 0.05 * np.exp((s - s_uniform) / 10.0)  # dU/dS = U / 10 > 0, rising
        write_run(root, float(lr), history(u, s, seed=i),
                  info={"window_spec": spec, "random_loss": random_loss})
    return s_uniform


def test_a_stationary_run_near_the_uniform_sphere_marks_its_row_and_the_one_below(
        tmp_path: Path) -> None:
    gaps = [1.4, 1.1, 0.8, 0.55, 0.35, 0.2, 0.1]  # the last below NEAR_UNIFORM (0.15)
    s_uniform = _sweep(tmp_path / "runs", gaps, random_loss=1.0)  # U << random: not saturated
    result = make_report(tmp_path / "runs", tmp_path / "report", tensorboard=False)
    runs = result.runs.set_index("lr")
    assert (runs["regime"] == "stationary").all()
    np.testing.assert_allclose(runs["uniform_gap"], gaps, rtol=1e-9)
    np.testing.assert_allclose(runs["S_uniform"], s_uniform, rtol=1e-12)
    t = result.temperature
    assert t["near_uniform"].tolist() == [False] * 5 + [True] * 2
    assert not t["valid"][t["near_uniform"]].any()
    assert t["valid"][~t["near_uniform"] & ~t["end"]].all()
    reasons = t["reason"][t["near_uniform"]].tolist()  # the last is an end row: says so
    assert "upper chord" in reasons[0] and reasons[1].startswith("end row")
    notes = [m for m in result.messages if "near_uniform and not valid" in m]
    assert len(notes) == 1 and f"lr={LRS[-1]:.3g} (gap 0.100)" in notes[0]
    written = pd.read_csv(tmp_path / "report" / "temperature.csv")
    assert written["near_uniform"].tolist() == t["near_uniform"].tolist()


def test_a_saturated_run_is_left_out_and_marks_nothing(tmp_path: Path) -> None:
    gaps = [1.4, 1.1, 0.8, 0.55, 0.35, 0.2, 0.1]
    _sweep(tmp_path / "runs", gaps, random_loss=0.032)  # U >= 0.9 random weights': saturated
    result = make_report(tmp_path / "runs", tmp_path / "report", tensorboard=False)
    assert result.runs.set_index("lr")["regime"].iloc[-1] == "saturated"
    assert len(result.temperature) == 6 and not result.temperature["near_uniform"].any()
    assert not any("near_uniform" in m for m in result.messages)


def test_rows_far_from_uniform_and_runs_without_a_sphere_are_not_marked(tmp_path: Path
                                                                        ) -> None:
    _sweep(tmp_path / "a", [1.4, 1.1, 0.8, 0.55, 0.35, 0.25, 0.16], random_loss=1.0)
    result = make_report(tmp_path / "a", tmp_path / "ra", tensorboard=False)
    assert not result.temperature["near_uniform"].any()
    for i, lr in enumerate(LRS):  # no window spec: no uniform reference, no gap
        write_run(tmp_path / "b", float(lr), history(0.01 * (i + 1), float(i), seed=i))
    result = make_report(tmp_path / "b", tmp_path / "rb", tensorboard=False)
    assert "uniform_gap" not in result.runs or result.runs["uniform_gap"].isna().all()
    assert not result.temperature["near_uniform"].any()


@pytest.mark.slow  # ~9 s
@pytest.mark.parametrize("n", [1000])
def test_knn_entropy_differences_against_von_mises_fisher_laws(n: int) -> None:
    # What the marking rests on (python benchmarks/near_uniform_bias.py, 3 draws each; here
    # 2): on S^30 at the meter's defaults (k = N / 20), adjacent concentrations a factor 1.5
    # apart, the estimated differences of S over the exact ones are 1.0 +- 0.05 far from
    # uniform, larger near it (1.04-1.12 where uniform_gap is 0.05-0.15), and the rows the
    # report marks are the ones below NEAR_UNIFORM
    from tests.helpers.scripts import load_script

    bench = load_script("benchmarks", "near_uniform_bias")
    kappas = 2.0 * 1.5 ** np.arange(14)  # 2 .. 583 (uniform_gap ~0 .. ~1.2)
    table = bench.measure(31, n, 2, kappas)
    far = table[table["gap_lo"] >= 0.3]
    near = table[(table["gap_lo"] >= 0.05) & (table["gap_lo"] < NEAR_UNIFORM)]
    assert len(far) >= 4 and len(near) >= 1
    assert far["ratio"].between(0.95, 1.06).all()
    assert near["ratio"].min() > 1.03  # what the flag is for: T reads low there
    assert near["ratio"].mean() > far["ratio"].mean() + 0.02
