"""Every example runs at a tiny size."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.scripts import load_script


def test_known_temperature_example(capsys) -> None:
    table = load_script("examples", "known_temperature").main(["--chains", "40", "--samples", "4"])
    out = capsys.readouterr().out
    assert "fit T =" in out and "Without thinning" in out
    assert list(table["lr"]) == sorted(table["lr"])
    ratio = (table["T_graph"] / table["T_true"]).iloc[1:-1]
    assert np.all(np.abs(ratio - 1) < 0.25)  # tiny run: 160 points per LR


def test_toy_sphere_example(tmp_path: Path) -> None:
    tables = load_script("examples", "toy_sphere").main(
        ["--num-lrs", "6", "--steps", "2000", "--out", str(tmp_path / "toy.png")])
    assert set(tables) == {"op", "up"}
    assert (tmp_path / "toy.png").stat().st_size > 2000
    assert (tables["up"]["loss"] >= 0.04 / 1.04 - 1e-9).all()  # never below the minimum


def test_custom_model_example(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    thermo = load_script("examples", "custom_model").main(["--steps", "30"])
    out = capsys.readouterr().out
    assert "FAILED" in out and "passed" in out
    assert thermo.history["thermo/S"].notna().any()


def test_lightning_cli_example(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["lightning_cli.py"])  # not pytest's own arguments
    # LightningCLI 2.6 itself calls jsonargparse APIs deprecated in 4.49 (not the example)
    monkeypatch.setenv("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    config = Path(__file__).resolve().parents[1] / "examples" / "lightning_cli.yaml"
    cli = load_script("examples", "lightning_cli").main([
        "fit", "--config", str(config), "--trainer.max_steps", "12",
        "--trainer.callbacks.init_args.window", "6", "--trainer.callbacks.init_args.k", "[3]",
        "--trainer.callbacks.init_args.schedule", "6", "--trainer.enable_progress_bar", "false",
        "--trainer.log_every_n_steps", "6",
    ])
    thermo = next(c for c in cli.trainer.callbacks if type(c).__name__ == "ThermoCallback")
    assert thermo.meter.window == 6 and thermo.history["step"].tolist() == [6.0, 12.0]
    assert type(cli.trainer.strategy).__name__ == "SphereProjectionStrategy"


_NO_LIGHTNING = """
import runpy, sys
class Block:  # importing lightning or pytorch_lightning raises ImportError
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("lightning", "pytorch_lightning"):
            raise ImportError(f"no {name} here")
sys.meta_path.insert(0, Block())
sys.argv = ["plain_pytorch.py", "--steps", "120", "--window", "20", "--k", "3", "--every", "60",
            "--snr-batches", "3"]
import thermo_lightning.meter  # the meter imports without Lightning
history = runpy.run_path(PATH)["main"](sys.argv[1:])
# (torchmetrics, a core dependency, brings lightning_utilities: not Lightning)
assert not [m for m in sys.modules if m.split(".")[0] in ("lightning", "pytorch_lightning")]
assert history["thermo/U"].notna().all() and history["thermo/S"].notna().iloc[-1]
print("OK", len(history))
"""


@pytest.mark.slow  # 5-9 s: the quick suite stays near 4 minutes
def test_plain_pytorch_example_runs_without_lightning() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    code = _NO_LIGHTNING.replace("PATH", repr(str(root / "examples" / "plain_pytorch.py")))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, cwd=root)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK 2" in out.stdout


@pytest.mark.filterwarnings("error::UserWarning")
def test_fabric_example(capsys) -> None:
    history = load_script("examples", "fabric_loop").main(
        ["--steps", "60", "--window", "10", "--k", "3", "--every", "30"])
    assert history["step"].tolist() == [30.0, 60.0]
    assert history["thermo/S"].notna().all()
    # it says what its numbers mean (a loss above chance was printed without a word)
    assert "the net fits the digits" in capsys.readouterr().out


@pytest.mark.filterwarnings("error::UserWarning")
def test_plain_pytorch_example_explains_its_warnings(capsys) -> None:
    history = load_script("examples", "plain_pytorch").main(
        ["--steps", "300", "--every", "100", "--snr-batches", "3"])
    out = capsys.readouterr().out
    assert history["thermo/U"].iloc[-1] < 0.05
    assert "the net fits the digits" in out and "low ESS" in out  # the collapse, explained
    # the warning it explains is printed too (a new user read about one never shown)
    assert "meter: " in out and "effective sample size" in out


@pytest.mark.slow  # 9 s: the example trains two sweeps
def test_digits_up_vs_op_example(tmp_path: Path) -> None:
    results = load_script("examples", "digits_up_vs_op").main(
        ["--quick", "--out", str(tmp_path)])
    assert set(results) == {"UP", "OP"}
    assert (tmp_path / "up_w1" / "report" / "runs.csv").exists()
    # the under-parameterised sweep runs 3 seeds by default: one folder per (LR, seed)
    runs = results["UP"].runs
    assert sorted(runs["seed"].unique()) == [0, 1, 2] and len(runs) == 9
    assert not (runs["run"].str.contains("seed").any() and results["OP"].runs["run"].str
                .contains("seed").any())


def _fake_cifar10(root: Path, n: int = 64) -> None:
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, n).tolist()}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(entry))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list("0123456789")}))


@pytest.mark.parametrize("name", ["cifar_convnet", "cifar_resnet"])
def test_cifar_examples_with_fake_data(tmp_path: Path, monkeypatch, name: str) -> None:
    import torchvision.datasets.cifar as tv_cifar

    _fake_cifar10(tmp_path / "data")
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)  # fake files
    script = load_script("examples", name)
    results = script.main(["--fast", "--regime", "up", "--data-root", str(tmp_path / "data"),
                           "--out", str(tmp_path / "runs"), "--lrs", "0.1", "1.0",
                           "--steps", "6", "--window", "4", "--batch-size", "8"])
    assert set(results) == {"up"}
    assert (tmp_path / "runs" / "cifar10_up" / "report" / "runs.csv").exists()
    runs = results["up"].runs
    assert list(runs["lr"]) == [0.1, 1.0]
    # 6 steps log too few points for a tail: the report says so instead of failing
    assert set(runs["regime"]) == {"unmeasured"}
    assert any("T(eta) needs" in m for m in results["up"].messages)


def test_batch_size_example(tmp_path: Path) -> None:
    report = load_script("examples", "batch_size").main(
        ["--quick", "--out", str(tmp_path), "--workers", "1"])
    runs = report.runs
    assert sorted(runs["batch_size"].unique()) == [32, 64] and len(runs) == 6
    assert (tmp_path / "lr=1.50e-02,batch_size=32" / "run.json").exists()
    assert "group" in report.temperature
