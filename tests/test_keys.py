"""The pure module of names shared by writers and readers."""

from __future__ import annotations

import ast
from pathlib import Path

import thermo_lightning
from thermo_lightning import keys


def test_keys_is_pure() -> None:
    path = Path(thermo_lightning.__file__).parent / "keys.py"
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "collections"}


def test_contract_names() -> None:
    # ARCHITECTURE.md: the keys every logger receives
    for name in ("U", "S", "snr", "grad_norm", "stoch_grad_norm", "elr", "weight_norm", "ess",
                 "T_local"):
        assert f"thermo/{name}" in keys.METRICS
    assert keys.entropy_key(50) == "thermo/S_k50"
    assert len(set(keys.METRICS)) == len(keys.METRICS)


def test_layout_charts_only_known_keys() -> None:
    layout = keys.custom_scalars_layout([50, 20])
    charted = {tag for chart in layout["thermo"].values() for tag in chart[1]}
    assert charted <= set(keys.METRICS) | {keys.entropy_key(50), keys.entropy_key(20)}
    assert {keys.ENERGY, keys.SNR, keys.ESS} <= charted


def test_the_report_reads_the_same_names() -> None:
    from thermo_lightning import report

    assert (report.U, report.S, report.SNR) == (keys.ENERGY, keys.ENTROPY, keys.SNR)
    assert set(report.NEEDED_TAGS) <= set(keys.METRICS) | {keys.TRAIN_ACC}
