"""The report's figures, rendered from small tables (PNG bytes, no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from thermo_lightning import figures
from thermo_lightning.functional import infer_temperature


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
