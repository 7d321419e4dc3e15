"""The report's TensorBoard view: one entry per run (its free energy, stationary means and
hparams session written back into its own folder) and one for the report (T(eta), the
free-energy family, eta*), read back from the event files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.report.synthetic import canonical, history, write_run
from thermo_lightning.report import make_report, read_run
from thermo_lightning.report import tensorboard_view as board

LRS = np.logspace(-3, -1, 6)


def _scalars(folder: Path) -> dict[str, pd.Series]:
    """Every scalar tag of the event files directly in ``folder``: tag -> values by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        out[tag] = pd.Series([e.value for e in events], index=[e.step for e in events])
    return out


def _plugin_content(folder: Path, tag: str) -> bytes | None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    try:
        return acc.SummaryMetadata(tag).plugin_data.content
    except KeyError:
        return None


def _text(folder: Path, tag: str) -> str:
    """The text summary ``tag`` of the event files in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    acc.Reload()
    (event,) = acc.Tensors(f"{tag}/text_summary")
    return event.tensor_proto.string_val[0].decode()


def _sweep(root: Path, fmt: str = "tb") -> Path:
    for i, lr in enumerate(LRS):
        _, u, s = canonical(lr)
        write_run(root, lr, history(u, s, noise=1e-4, seed=i,
                                    extra={"thermo/stoch_grad_norm": 2.0}), fmt=fmt)
    return root


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A synthetic sweep of TensorBoard runs and its report (read, not changed, by tests)."""
    runs = _sweep(tmp_path_factory.mktemp("view") / "runs")
    return runs, make_report(runs, smoothing=None)


def test_one_entry_per_run_plus_the_report(reported: tuple[Path, Any]) -> None:
    runs, result = reported
    out = runs / "report"
    folders = sorted({p.parent for p in runs.rglob("events.out.tfevents*")})
    # the runs' own folders and the report's: nothing per run under the report
    assert folders == sorted([*(runs.glob("lr=*/tensorboard")), out / "tensorboard"])
    for folder in runs.glob("lr=*/tensorboard"):
        assert len(list(folder.glob(f"*{board.WRITEBACK_SUFFIX}"))) == 1
    table = result.runs.set_index("run")
    curves = pd.read_csv(out / "free_energy.csv")
    for name, row in table.iterrows():
        tags = _scalars(runs / name / "tensorboard")
        # F along training: the same values as free_energy.csv, at the same steps
        mine = curves[curves["run"] == name]
        mark = "" if row["T_valid"] else "_not_valid"
        f = tags[f"thermo/F{mark}"]
        np.testing.assert_array_equal(f.index, mine["step"].astype(int))
        np.testing.assert_allclose(f.to_numpy(), mine["F"], rtol=1e-5, atol=1e-7)
        # the stationary part: from the run's final stride, a subset of the F curve's steps
        assert set(tags["stationary/U"].index) <= set(f.index)
        # flat lines over the averaged tail hold the runs.csv values; a row whose T is not
        # valid (here the end rows) has its T under a tag that says so (issue 30: it was
        # drawn as if valid)
        assert f"stationary/T{'_not_valid' if not mark else ''}" not in tags
        for tag, col in (("stationary/U_mean", "U"), ("stationary/S_mean", "S"),
                         (f"stationary/T{mark}", "T"), ("stationary/snr_mean", "snr")):
            series = tags[tag]
            assert list(series.index) == [int(row["first_tail_step"]), int(row["last_step"])]
            np.testing.assert_allclose(series.to_numpy(), row[col], rtol=1e-6)
        # the hparams session of this run lives in its own entry
        ssi = _plugin_content(runs / name / "tensorboard", "_hparams_/session_start_info")
        assert ssi is not None
        from tensorboard.plugins.hparams import metadata

        info = metadata.parse_session_start_info_plugin_data(ssi)
        assert info.hparams["lr"].number_value == pytest.approx(row["lr"])
        assert info.hparams["regime"].string_value == row["regime"]
        assert info.hparams["in_T_eta"].string_value == ("yes" if row["T_valid"]
                                                          else "yes, T not valid")

    report = _scalars(out / "tensorboard")
    temp = result.temperature.sort_values("lr").reset_index(drop=True)
    np.testing.assert_allclose(report["sweep/lr"].to_numpy(), temp["lr"], rtol=1e-6)
    assert list(report["sweep/lr"].index) == list(range(len(temp)))
    valid = temp["valid"].to_numpy(bool)
    assert 0 < valid.sum() < len(temp)  # the end rows are not valid
    np.testing.assert_allclose(report["sweep/T"].to_numpy(), temp["T"][valid], rtol=1e-5)
    assert list(report["sweep/T"].index) == list(np.flatnonzero(valid))
    for i in np.flatnonzero(~valid):  # one point each: no line joins the end rows
        assert list(report[f"sweep/T_not_valid_{i}"].index) == [i]
        assert report[f"sweep/T_not_valid_{i}"].iloc[0] == pytest.approx(temp["T"][i], rel=1e-5)
    assert sum(tag.startswith("sweep/T_not_valid") for tag in report) == int((~valid).sum())
    text = _text(out / "tensorboard", "sweep/steps")
    assert "| valid |" in text and text.count("| no (end row") == int((~valid).sum())
    family = sorted(t for t in report if t.startswith("free_energy/row"))
    assert len(family) == int(temp["valid"].sum())
    for tag in family:
        i = int(re.match(r"free_energy/row(\d+)_T=", tag).group(1))
        t = temp["T"][i]
        assert float(tag.split("_T=")[1]) == pytest.approx(t, rel=1e-3)  # 4 digits
        expected = temp["U"] - t * temp["S"]
        np.testing.assert_allclose(report[tag].to_numpy(), expected - expected.min(),
                                   rtol=1e-4, atol=1e-7)
    # the paper's consistency: each interior row's own eta minimises F at its T
    eta_star = report["report/eta_star"]
    interior = temp["T_lo"].notna() & temp["T_hi"].notna()
    for i in np.flatnonzero(interior):
        assert eta_star[i] == pytest.approx(temp["lr"][i], rel=1e-5)
    # the hparams table's columns: the settings, axes, regime -> the flat lines
    from tensorboard.plugins.hparams import metadata

    exp = metadata.parse_experiment_plugin_data(
        _plugin_content(out / "tensorboard", "_hparams_/experiment"))
    assert [m.name.tag for m in exp.metric_infos] == list(board.HPARAM_METRICS)
    assert {"lr", "regime", "in_T_eta", "model", "steps"} <= {h.name for h in exp.hparam_infos}


def test_layouts_match_what_is_written(reported: tuple[Path, Any]) -> None:
    from tensorboard.plugins.custom_scalar import layout_pb2

    runs, _ = reported
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(runs / "report" / "tensorboard"))
    acc.Reload()
    proto = acc.Tensors("custom_scalars__config__")[0].tensor_proto
    layout = layout_pb2.Layout()
    layout.ParseFromString(proto.string_val[0])
    written = set(_scalars(runs / "report" / "tensorboard"))
    for folder in runs.glob("lr=*/tensorboard"):
        written |= set(_scalars(folder))
    charts = {c.title: list(c.multiline.tag) + [s.value for s in c.margin.series]
              for cat in layout.category for c in cat.chart}
    assert set(charts) == {title for cat in board.report_layout().values() for title in cat}
    empty = [title for title, patterns in charts.items()
             if not any(re.match(p, t) for p in patterns for t in written)]
    assert not empty, empty  # every chart of the layout has a series to draw


def test_a_second_report_replaces_the_write_back(tmp_path: Path) -> None:
    runs = _sweep(tmp_path / "runs")
    first = make_report(runs, smoothing=None)
    before = read_run(runs / f"lr={LRS[2]:.2e}").history
    second = make_report(runs, smoothing=None, force=True)
    for folder in runs.glob("lr=*/tensorboard"):
        assert len(list(folder.glob(f"*{board.WRITEBACK_SUFFIX}"))) == 1
    # the write-back is not read as the run's history: the same numbers again
    after = read_run(runs / f"lr={LRS[2]:.2e}").history
    pd.testing.assert_frame_equal(before, after)
    pd.testing.assert_frame_equal(first.temperature, second.temperature)
    f = _scalars(runs / f"lr={LRS[2]:.2e}" / "tensorboard")["thermo/F"]
    assert not f.index.duplicated().any()  # one F per step, not one per report


def test_no_tensorboard_writes_nothing_into_the_runs(tmp_path: Path) -> None:
    runs = _sweep(tmp_path / "runs")
    make_report(runs, smoothing=None, tensorboard=False)
    assert not list(runs.rglob(f"*{board.WRITEBACK_SUFFIX}"))
    assert not (runs / "report" / "tensorboard").exists()


def test_runs_without_tensorboard_are_named(tmp_path: Path) -> None:
    runs = _sweep(tmp_path / "runs", fmt="csv")
    result = make_report(runs, smoothing=None)
    assert any("have no TensorBoard log" in m and "free_energy.csv" in m
               for m in result.messages)
    assert (runs / "report" / "tensorboard").is_dir()  # the report's own entry still is


def test_a_grid_gets_one_series_per_group(tmp_path: Path) -> None:
    root = tmp_path / "grid"
    for b, scale in ((32, 1.0), (64, 0.5)):
        for i, lr in enumerate(LRS[:4]):
            _, u, s = canonical(lr * scale)
            run = write_run(root / f"bs{b}", lr, history(u, s, noise=1e-4, seed=i))
            meta = json.loads((run / "run.json").read_text())
            meta["axes"] = {"lr": lr, "batch_size": b}
            meta["hparams"]["batch_size"] = b
            (run / "run.json").write_text(json.dumps(meta))
    result = make_report(root, smoothing=None)
    report = _scalars(root / "report" / "tensorboard")
    for group in result.temperature["group"].unique():
        assert f"sweep/T@{group}" in report and f"sweep/lr@{group}" in report
        assert any(t.startswith("free_energy/row") and t.endswith(f"@{group}")
                   for t in report)


@pytest.mark.parametrize("hp_metric", [False, True])
def test_lightning_version_folders(tmp_path: Path, hp_metric: bool) -> None:
    # a user's runs: Lightning's TensorBoardLogger in lightning_logs/version_N, lr logged as
    # a hyperparameter; with its default default_hp_metric=True it writes its own session
    from lightning.pytorch.loggers import TensorBoardLogger

    for i, lr in enumerate(LRS[:5]):
        logger = TensorBoardLogger(tmp_path, default_hp_metric=hp_metric)
        logger.log_hyperparams({"lr": float(lr)})
        _, u, s = canonical(lr)
        for _, row in history(u, s, noise=1e-4, seed=i).iterrows():
            logger.log_metrics({k: float(v) for k, v in row.items() if k != "step"},
                               step=int(row["step"]))
        logger.finalize("success")
    result = make_report(tmp_path / "lightning_logs", smoothing=None)
    assert len(result.runs) == 5 and result.runs["T"].notna().all()
    folder = tmp_path / "lightning_logs" / "version_0"
    assert board.run_event_folder(folder) == folder
    row = result.runs.set_index("run").loc["version_0"]
    mark = "" if row["T_valid"] else "_not_valid"  # (an end row: its T is not valid)
    assert f"thermo/F{mark}" in _scalars(folder)  # the free energy is written back either way
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    ours = next(folder.glob(f"*{board.WRITEBACK_SUFFIX}"))
    written = {v.tag for e in EventFileLoader(str(ours)).Load() for v in e.summary.value}
    noted = any("own hparams session" in m and "default_hp_metric=False" in m
                for m in result.messages)
    # the logger's own session wins in TensorBoard: the report says so instead of adding one
    assert ("_hparams_/session_start_info" in written) is not hp_metric
    assert noted is hp_metric


def test_the_callback_leaves_the_runs_hparams_session_to_the_module(tmp_path: Path) -> None:
    # Lightning's default TensorBoardLogger writes a session per log_hyperparams call and
    # TensorBoard shows a run's first: the callback's window spec must not be that one (it
    # hid the module's lr); the spec still reaches hparams.yaml, where the report reads it
    import lightning.pytorch as pl
    import torch
    import yaml
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import metadata
    from torch.utils.data import DataLoader, TensorDataset

    from tests.helpers.trainers import quiet_trainer
    from thermo_lightning import SphereProjectionStrategy, ThermoCallback

    class NoForward(pl.LightningModule):  # no forward: as users write them
        def __init__(self, lr: float = 0.1) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.body = torch.nn.Sequential(torch.nn.Linear(4, 8, bias=False),
                                            torch.nn.BatchNorm1d(8, affine=False))
            self.head = torch.nn.Linear(8, 3).requires_grad_(False)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.head(self.body(x)), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    data = TensorDataset(torch.randn(64, 4), torch.randint(0, 3, (64,)))
    logger = TensorBoardLogger(tmp_path)  # default_hp_metric=True, as users have it
    quiet_trainer(strategy=SphereProjectionStrategy(), logger=logger, max_steps=40,
                  log_every_n_steps=4,
                  callbacks=[ThermoCallback(window=8, k=3, schedule=10, snr=None)]
                  ).fit(NoForward(lr=0.1), DataLoader(data, batch_size=16, shuffle=True))
    folder = Path(logger.log_dir)
    sessions = [metadata.parse_session_start_info_plugin_data(v.metadata.plugin_data.content)
                for f in sorted(folder.glob("events.out.tfevents*"))
                for e in EventFileLoader(str(f)).Load() for v in e.summary.value
                if v.tag == "_hparams_/session_start_info"]
    assert sessions and "lr" in sessions[0].hparams  # the module's, shown by TensorBoard
    assert not any(k.startswith("thermo_spec/") for s in sessions for k in s.hparams)
    saved = yaml.safe_load((folder / "hparams.yaml").read_text())
    assert saved["lr"] == 0.1 and saved["thermo_spec/window"] == 8
