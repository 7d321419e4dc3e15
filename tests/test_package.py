"""Package surface: public names of the contract, no lightning import in functional/, doctests."""

from __future__ import annotations

import doctest
import importlib
import inspect
import sys
from pathlib import Path

import pytest

import thermo_lightning
from thermo_lightning import functional

DOCTEST_MODULES = [
    "thermo_lightning.functional.entropy",
    "thermo_lightning.functional.temperature",
    "thermo_lightning.functional.snr",
    "thermo_lightning.functional.sphere",
    "thermo_lightning.models.langevin",
    "thermo_lightning.models.convnet",
    "thermo_lightning.models.resnet",
    "thermo_lightning.data.sampling",
    "thermo_lightning.data.modules",
]


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0


def test_contract_signatures() -> None:
    sig = inspect.signature(functional.knn_entropy)
    assert list(sig.parameters)[:6] == ["x", "k", "estimator", "dim", "backend", "center"]
    assert sig.parameters["k"].default == 50
    assert sig.parameters["estimator"].default == "knn_graph"
    assert sig.parameters["backend"].default == "auto"
    assert sig.parameters["center"].default is True
    sig = inspect.signature(functional.infer_temperature)
    assert sig.parameters["eps"].default == 0.0 and sig.parameters["smoothing"].default == 0.3
    assert inspect.signature(functional.local_temperature).parameters["lag"].default == 2
    for name in ("knn_entropy", "infer_temperature", "local_temperature", "fit_power_law",
                 "gradient_snr", "free_energy_curves"):
        assert getattr(thermo_lightning, name) is getattr(functional, name)


def test_missing_optional_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from thermo_lightning import _availability

    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    with pytest.raises(ModuleNotFoundError, match=r"thermo-lightning\[cpu\]"):
        _availability.require("faiss")


def test_packaging_metadata() -> None:
    from importlib.metadata import version

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    # one source for the version: pyproject reads thermo_lightning/_version.py
    assert "version" not in project and project["dynamic"] == ["version"]
    assert version("thermo-lightning") == thermo_lightning.__version__
    # typed: py.typed ships with the package
    assert (Path(thermo_lightning.__file__).parent / "py.typed").exists()
    # the test extra holds no FAISS, so `.[gpu,test]` resolves to one FAISS wheel
    extras = project["optional-dependencies"]
    assert not any(req.startswith("faiss") for req in extras["test"])
    assert extras["cpu"] == ["faiss-cpu>=1.8"] and extras["gpu"] == ["faiss-gpu>=1.8"]
    assert any(req.startswith("tqdm") for req in project["dependencies"])
    assert {"Framework :: Lightning", "Typing :: Typed"} <= set(project["classifiers"])
    assert {"Documentation", "Issues", "Source"} <= set(project["urls"])


def _python(code: str) -> str:
    import subprocess

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_import_and_help_load_neither_torch_nor_lightning() -> None:
    # `import thermo_lightning` and the command line's help stay light (no torch, no
    # Lightning); the public names load on first use
    out = _python(
        "import sys, contextlib, io, thermo_lightning\n"
        "from thermo_lightning.cli import main\n"
        "for argv in (['--help'], ['sweep', '--help'], ['report', '--help']):\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main(argv)\n"
        "print(sorted(m for m in ('torch', 'lightning', 'pandas') if m in sys.modules))\n"
        "print(thermo_lightning.ThermoMeter.__name__, 'torch' in sys.modules)")
    assert out.splitlines() == ["[]", "ThermoMeter True"]


@pytest.mark.parametrize("order", ["package first", "lightning first"])
def test_strategy_names_are_registered_whichever_is_imported_first(order: str) -> None:
    imports = ["import thermo_lightning", "import lightning.pytorch"]
    if order == "lightning first":
        imports.reverse()
    out = _python("\n".join(imports) + "\n"
                  "from lightning.pytorch.strategies import StrategyRegistry\n"
                  "print('sphere_projection' in StrategyRegistry,"
                  " 'ddp_sphere_projection' in StrategyRegistry)")
    assert out == "True True"


def test_nothing_imports_ray_or_submitit_until_a_launcher_needs_them() -> None:
    import subprocess
    import sys

    code = ("import sys, thermo_lightning, thermo_lightning.sweep.runner, "
            "thermo_lightning.report, thermo_lightning.launch, thermo_lightning.cli; "
            "print(sorted(m for m in ('ray', 'submitit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_old_module_paths_stay_for_one_release() -> None:
    # one-line re-exports of the modules' new homes (docs/architecture.md)
    from thermo_lightning import launch, runs, sweep
    from thermo_lightning.report import figures, intervals, tensorboard_view

    pairs = [("thermo_lightning.sweep_config", "SweepConfig", sweep.SweepConfig),
             ("thermo_lightning.sweep_config", "RunSpec", runs.RunSpec),
             ("thermo_lightning.launchers", "LocalLauncher", launch.LocalLauncher),
             ("thermo_lightning.launchers", "LAUNCHERS", launch.LAUNCHERS),
             ("thermo_lightning.intervals", "seed_intervals", intervals.seed_intervals),
             ("thermo_lightning.figures", "render_report_figures",
              figures.render_report_figures),
             ("thermo_lightning.tensorboard_view", "write_report_entry",
              tensorboard_view.write_report_entry),
             ("thermo_lightning.meter", "WindowSpec", thermo_lightning.WindowSpec)]
    for module, name, new in pairs:
        assert getattr(importlib.import_module(module), name) is new, (module, name)
