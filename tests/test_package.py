"""Package surface: public names of the contract, no lightning import in functional/, doctests."""

from __future__ import annotations

import doctest
import importlib
import inspect
import subprocess
import sys

import pytest

import thermo_lightning
from thermo_lightning import functional

DOCTEST_MODULES = [
    "thermo_lightning.functional.entropy",
    "thermo_lightning.functional.temperature",
    "thermo_lightning.functional.snr",
    "thermo_lightning.functional.sphere",
    "thermo_lightning.models.langevin",
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


def test_functional_and_knn_never_import_lightning() -> None:
    code = (
        "import sys, thermo_lightning.functional, thermo_lightning.knn, "
        "thermo_lightning.models.langevin; "
        "print(any(m == 'lightning' or m.startswith(('lightning.', 'pytorch_lightning')) "
        "for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_missing_optional_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from thermo_lightning import _availability

    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` fail
    with pytest.raises(ModuleNotFoundError, match=r"thermo-lightning\[cpu\]"):
        _availability.require("faiss")
