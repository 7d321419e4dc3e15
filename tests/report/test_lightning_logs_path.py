"""The same runs read through a user's own Lightning log folders (``version_N`` with
TensorBoard events and ``hparams.yaml``) give the report the CLI's sweep gives (issue 27: the
TensorBoard path lacked ``thermo/stride``, so it averaged windows of the pilot's stride)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
import yaml

from thermo_lightning.report import make_report
from thermo_lightning.runs import find_runs
from thermo_lightning.sweep import SweepConfig, run_sweep


def _as_lightning_logs(sweep: Path, logs: Path) -> None:
    """Each run's TensorBoard folder as a ``version_N`` of a user's ``lightning_logs``, its
    ``hparams.yaml`` holding the module's settings (``lr``, ...) as ``save_hyperparameters``
    would write them."""
    for i, run in enumerate(find_runs(sweep)):
        version = logs / f"version_{i}"
        shutil.copytree(run / "tensorboard", version)
        record = json.loads((run / "run.json").read_text())
        hparams = yaml.safe_load((version / "hparams.yaml").read_text()) or {}
        (version / "hparams.yaml").write_text(yaml.safe_dump({**hparams, **record["hparams"]}))


@pytest.mark.slow  # 12 s: a sweep read through Lightning's logs
def test_lightning_logs_give_the_sweeps_table(tmp_path: Path) -> None:
    # stride "auto": the pilot's stride-1 windows come before the tail's, as at the defaults
    cfg = SweepConfig(model="langevin", dim=6, noise_std=0.5, lrs=[0.03, 0.05, 0.08, 0.13],
                      steps=3000, schedule=40, window=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_sweep(cfg, tmp_path / "sweep", progress=False)
        _as_lightning_logs(tmp_path / "sweep", tmp_path / "lightning_logs")
        cli = make_report(tmp_path / "sweep", tmp_path / "cli")
        own = make_report(tmp_path / "lightning_logs", tmp_path / "own")
    runs = [t.sort_values("lr").reset_index(drop=True) for t in (cli.runs, own.runs)]
    assert runs[0]["regime"].tolist() == runs[1]["regime"].tolist()
    assert runs[0]["tail_points"].tolist() == runs[1]["tail_points"].tolist()
    for col in ("U", "S"):  # TensorBoard keeps float32
        assert runs[1][col].to_numpy() == pytest.approx(runs[0][col].to_numpy(), rel=1e-6)
    # the windows that had a low ESS during training are read on both paths (a user's own
    # logs lacked thermo/low_ess: no note said why those runs were used)
    seen = [sorted((s.lr, s.low_ess_seen) for s in r.summaries.values()) for r in (cli, own)]
    assert seen[0] == seen[1] and all(v is not None for _, v in seen[1])
    temps = [t.set_index("lr")["T"] for t in (cli.temperature, own.temperature)]
    pd.testing.assert_series_equal(temps[1], temps[0], check_exact=False, rtol=1e-5)
