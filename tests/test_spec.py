"""The window's size from the run's length and its description (thermo_lightning.spec)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from thermo_lightning import keys
from thermo_lightning.spec import (
    WindowSpec,
    check_stride,
    check_window_arguments,
    resolve_window,
)


def test_auto_window_and_k_follow_the_run_length() -> None:
    assert resolve_window("auto", "auto", 20_000) == (100, (5,))  # one slot per 200 steps
    assert resolve_window("auto", "auto", 1_600_000) == (1000, (50,))  # the paper's N and k
    assert resolve_window("auto", "auto", 3_000) == (50, (3,))  # the floors
    assert resolve_window("auto", "auto", None) == (1000, (50,))
    assert resolve_window("auto", (60,), 3_000) == (121, (60,))  # N > k always
    assert resolve_window(40, "auto", None) == (40, (3,))


def test_window_arguments_are_checked_with_the_argument_named() -> None:
    assert check_window_arguments("40", [3, 5]) == (40, (3, 5))
    assert check_window_arguments("auto", "auto") == ("auto", "auto")
    with pytest.raises(ValueError, match=r"`window` \(5\) must be larger than the largest `k`"):
        check_window_arguments(5, 5)
    with pytest.raises(ValueError, match="`window` must be a positive integer"):
        check_window_arguments(0, "auto")
    with pytest.raises(ValueError, match="`k` has repeated values"):
        check_window_arguments("auto", [3, 3])
    assert check_stride("7") == 7 and check_stride("auto") == "auto"
    with pytest.raises(ValueError, match="`stride` must be an integer >= 1 or 'auto'"):
        check_stride(0)


def test_window_spec_round_trips_through_hparams() -> None:
    spec = WindowSpec(1000, 24408, 24407, (50, 20), "auto", 1.0, "knn_graph", None, 2)
    hp = spec.as_hparams()
    assert all(k.startswith(keys.SPEC_PREFIX) for k in hp) and hp["thermo_spec/k"] == [50, 20]
    assert WindowSpec.from_hparams({**hp, "lr": 0.1}) == spec
    assert WindowSpec.from_hparams({"lr": 0.1}) is None
    assert WindowSpec.from_hparams({**hp, "thermo_spec/window": "many"}) is None


def test_the_spec_imports_no_torch() -> None:
    code = ("import sys, thermo_lightning.spec; "
            "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_the_builtin_estimators_are_registered() -> None:
    from thermo_lightning.functional.entropy import get_estimator
    from thermo_lightning.spec import BUILTIN_ESTIMATORS

    assert [get_estimator(name).name for name in BUILTIN_ESTIMATORS] == list(BUILTIN_ESTIMATORS)
