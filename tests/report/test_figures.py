"""The report's figures, rendered from small tables (PNG bytes, no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from thermo_lightning.functional import infer_temperature
from thermo_lightning.report import figures


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    lrs = np.array([0.01, 0.02, 0.04, 0.08])
    u, s = 0.5 * lrs, np.log(lrs)  # T = dU/dS = 0.5 lr
    runs = pd.DataFrame({"lr": lrs, "U": u, "S": s, "snr": 1 / lrs,
                         "regime": ["stationary", "stationary", "relaxing", "saturated"]})
    return runs, infer_temperature(lrs, u, s, smoothing=None)


def test_every_figure_renders_and_saves(tmp_path: Path) -> None:
    runs, temperature = _tables()
    steps = np.array([10.0, 20.0, 40.0])
    rendered = figures.render_report_figures(runs, temperature, (0.5, 1.0),
                                             {0.01: (steps, np.array([1e-3, 5e-4, 2e-4]))})
    assert set(rendered) == {"u_s_vs_lr", "u_vs_s", "temperature", "free_energy",
                             "local_temperature", "snr"}
    for path in figures.save_figures(rendered, tmp_path):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 2000


def test_regimes_have_their_own_colours() -> None:
    runs, _ = _tables()
    colours = figures._regime_colors(runs)
    assert len(set(colours)) == 3 and "black" not in colours


def test_temperature_figure_without_any_positive_temperature(tmp_path: Path) -> None:
    temperature = pd.DataFrame({"lr": [0.01, 0.02], "T": [np.nan, -1.0], "T_lo": [np.nan, 0.0],
                                "T_hi": [0.0, np.nan], "valid": [False, False]})
    fig = figures._fig_temperature(temperature, None)
    fig.savefig(tmp_path / "t.png")
    assert fig.axes[0].get_yscale() == "linear"


def test_grouped_temperature_figure_whose_positive_rows_are_not_valid(tmp_path: Path) -> None:
    # CI's batch-size example: every positive T was in a row not valid; the log axis had no
    # data and tight_layout raised "Data cannot be log-scaled"
    temperature = pd.DataFrame({"group": ["batch_size=32"] * 2 + ["batch_size=64"] * 2,
                                "lr": [0.01, 0.02, 0.01, 0.02], "T": [0.5, -1.0, 0.3, np.nan],
                                "valid": [False, False, False, False]})
    fig = figures._fig_temperature_groups(temperature, "lr")
    fig.savefig(tmp_path / "t.png")
    assert fig.axes[0].get_yscale() == "linear"


def test_no_placeholder_figures() -> None:
    runs, temperature = _tables()
    # no converging run with a positive dU/dS, no SNR: those figures are left out
    rendered = figures.render_report_figures(runs.drop(columns="snr"), temperature, None,
                                             {0.01: (np.arange(3.0), np.full(3, np.nan))})
    assert {"local_temperature", "snr"}.isdisjoint(rendered)


def test_every_free_energy_curve_is_labelled() -> None:
    runs, temperature = _tables()
    figure = figures.render_report_figures(runs, temperature, None, {})["free_energy"]
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert len(labels) == int(temperature["valid"].sum()) >= 3


def test_point_labels_do_not_overlap() -> None:
    # three seeds per learning rate lie close together: one label each, none on another
    rng = np.random.default_rng(0)
    lrs = np.repeat([0.01, 0.02, 0.04, 0.08], 3)
    s = np.log(lrs) + 0.01 * rng.standard_normal(12)
    u = 0.5 * lrs + 1e-4 * rng.standard_normal(12)
    kept = figures._spaced_labels(s, u, [f"{x:.2g}" for x in lrs])
    assert sorted(text for _, text in kept) == ["0.01", "0.02", "0.04", "0.08"]
    points = np.array([p for p, _ in kept])
    span = np.ptp(s), np.ptp(u)
    for i in range(len(points)):
        for j in range(i):
            gap = np.abs(points[i] - points[j]) / span
            assert (gap > 0.06).any()


def test_short_log_axes_get_a_few_labelled_ticks() -> None:
    # 0.015-0.045 (the demo's digits sweep) holds no power of ten: matplotlib's fallback
    # labelled 7 crowded linear ticks; now 2-4 log-spaced ones
    lrs = np.array([0.015, 0.0187, 0.0233, 0.029, 0.0361, 0.045])
    u, s = 0.5 * lrs, np.log(lrs)
    runs = pd.DataFrame({"lr": lrs, "U": u, "S": s, "regime": "stationary"})
    figure = figures.render_report_figures(runs, infer_temperature(lrs, u, s, smoothing=None),
                                           None, {})["temperature"]
    figure.canvas.draw()  # a canvas without pyplot: matplotlib's Agg through savefig's path
    ax = figure.axes[0]
    lo, hi = ax.get_xlim()
    shown = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert 2 <= len(shown) <= 4, shown


def test_a_tie_at_the_minimum_marks_both_points() -> None:
    # issue 30: at an end row's T (the chord to its neighbour) F ties between the two learning
    # rates, and the digits figure marked one of them (0.0187, the curve as low at 0.045)
    lrs = np.array([0.01, 0.02, 0.04, 0.08])
    u, s = 0.5 * lrs, np.log(lrs)
    chord = (u[1] - u[0]) / (s[1] - s[0])
    temperature = pd.DataFrame({"lr": lrs, "U": u, "S": s, "T": [chord, 0.02, 0.04, 0.08],
                                "valid": [True, False, False, False]})
    figure = figures._fig_free_energy(temperature)
    (dots,) = figure.axes[0].collections
    np.testing.assert_allclose(sorted(dots.get_offsets()[:, 0]), lrs[:2])


def test_the_log_axis_of_0_02_to_0_08_gets_more_than_one_label() -> None:
    lrs = np.array([0.02, 0.0283, 0.04, 0.0566, 0.08])
    u, s = 0.5 * lrs, np.log(lrs)
    runs = pd.DataFrame({"lr": lrs, "U": u, "S": s, "regime": "stationary"})
    for name in ("temperature", "free_energy", "u_s_vs_lr"):
        figure = figures.render_report_figures(
            runs, infer_temperature(lrs, u, s, smoothing=None), None, {})[name]
        figure.canvas.draw()
        ax = figure.axes[0]
        lo, hi = ax.get_xlim()
        labels = [t.get_text() for t in ax.get_xticklabels()
                  if lo <= t.get_position()[0] <= hi and t.get_text()]
        assert len(labels) >= 3, (name, labels)  # 0.02, 0.03, 0.05, 0.07: not 0.02, 0.05


def test_rows_of_one_straight_stretch_share_one_curve_tied_along_it() -> None:
    # the convex construction gives rows of a straight stretch of its fitted curve one T: one
    # curve (not one per row, drawn on top of each other), on the fitted points, where F at
    # that T ties along the stretch (on the measured points noise picked one end: the demo's
    # digits figure marked 0.0312 for rows at 0.0216 and 0.026)
    lrs = np.array([0.01, 0.02, 0.04, 0.08, 0.16])
    s_fit = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    u_fit = np.array([0.0, 1.0, 2.0, 3.0, 5.0])  # slope 1 over the first four points
    noise = np.array([0.0, 0.01, -0.01, 0.005, 0.0])
    temperature = pd.DataFrame({"lr": lrs, "U": u_fit + noise, "S": s_fit, "U_fit": u_fit,
                                "S_fit": s_fit, "T": [1.0, 1.0, 1.0, 1.5, 2.0],
                                "valid": [False, True, True, True, False]})
    figure = figures._fig_free_energy(temperature)
    ax = figure.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["T = 1 (2 rows)", "T = 1.5"]
    dots = ax.collections[0].get_offsets()[:, 0]  # T = 1: tied on all four points
    np.testing.assert_allclose(sorted(dots), lrs[:4])
    assert "fitted" in ax.get_ylabel()
