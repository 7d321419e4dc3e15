"""Synthetic sweeps with known answers, written as runs the report reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from thermo_lightning.schedules import LogSpacedSchedule

U, S = "thermo/U", "thermo/S"


def canonical(lr: float, b: float = 3.9e-3, a: float = 0.85, c: float = 7.0) -> tuple:
    """Stationary U, S of a Gibbs family with T = b lr^a (dU/dS = T exactly)."""
    t = b * lr**a
    return t, c * t, c * np.log(t) - 2.0


def history(u: float | np.ndarray, s: float | np.ndarray, steps: int = 2000,
            noise: float = 0.0, seed: int = 0, extra: dict | None = None) -> pd.DataFrame:
    """A history on the paper's log schedule; constant (u, s) or arrays over the points."""
    pts = np.array(LogSpacedSchedule(steps, num_points=60).steps[1:], dtype=float)
    rng = np.random.default_rng(seed)
    u_arr = np.broadcast_to(u, pts.shape) + noise * rng.standard_normal(len(pts))
    s_arr = np.broadcast_to(s, pts.shape) + noise * rng.standard_normal(len(pts))
    df = pd.DataFrame({"step": pts, U: u_arr, S: s_arr, "thermo/snr": 0.5})
    for k, v in (extra or {}).items():
        df[k] = v
    return df


def write_run(root: Path, lr: float, hist: pd.DataFrame, fmt: str = "csv",
              info: dict | None = None) -> Path:
    """A run folder ``root/lr=...`` as the sweep writes it (``fmt="csv"``: run.json and
    history.csv) or as bare TensorBoard events in an ``lr=...`` folder (``fmt="tb"``)."""
    run = root / f"lr={lr:.2e}"
    run.mkdir(parents=True)
    if fmt == "csv":
        meta = {"status": "done", "hparams": {"lr": lr, "window": 200, "k": [10],
                                              "estimator": "knn_graph", "model": "synthetic"}}
        meta.update(info or {})
        (run / "run.json").write_text(json.dumps(meta))
        hist.to_csv(run / "history.csv", index=False)
    else:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(run / "tensorboard")) as writer:
            for _, row in hist.iterrows():
                for key, value in row.items():
                    if key != "step" and np.isfinite(value):
                        writer.add_scalar(key, float(value), int(row["step"]))
            writer.add_image("junk_image", np.zeros((3, 4, 4)), 0)  # must not be needed
    return run
