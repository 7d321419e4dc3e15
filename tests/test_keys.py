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
    # docs/architecture.md, "Public contract": the keys every logger receives
    for name in ("U", "S", "snr", "grad_norm", "stoch_grad_norm", "elr", "weight_norm", "ess",
                 "T_local"):
        assert f"thermo/{name}" in keys.METRICS
    assert keys.entropy_key(50) == "thermo/S_k50"
    assert len(set(keys.METRICS)) == len(keys.METRICS)


def test_layout_charts_known_keys_one_scale_per_chart() -> None:
    import re

    layout = keys.custom_scalars_layout()
    charts = layout["thermo"]
    known = [*keys.METRICS, keys.entropy_key(50), keys.entropy_key(20), "thermo/F_report"]
    matched: dict[str, set[str]] = {}
    for title, (kind, patterns) in charts.items():
        assert kind == "Multiline"
        matched[title] = set()
        for pattern in patterns:  # custom scalars match tags with re.match
            hits = {k for k in known if re.match(pattern, k)}
            assert hits, (title, pattern)
            matched[title] |= hits
    every = set().union(*matched.values())
    # every k's entropy and the main keys are charted; thermo/S does not match S_k50's chart
    # pattern wrongly (anchored): U and U_window are different charts
    assert {keys.ENERGY, keys.ENERGY_WINDOW, keys.SNR, keys.ESS, keys.entropy_key(50),
            keys.entropy_key(20), keys.FREE_ENERGY} <= every
    energy = next(hits for hits in matched.values() if keys.ENERGY in hits)
    assert energy == {keys.ENERGY}
    # unrelated scales never share a chart (the first layout mixed them)
    for a, b in ((keys.GRAD_NORM, keys.ELR), (keys.ESS, keys.WINDOW_FILL),
                 (keys.GRAD_NORM, keys.WEIGHT_NORM), (keys.SNR, keys.NOISE_SCALE),
                 (keys.ENERGY, keys.FREE_ENERGY)):
        assert not any({a, b} <= hits for hits in matched.values()), (a, b)


def test_the_report_reads_the_same_names() -> None:
    from thermo_lightning.report import summary
    from thermo_lightning.runs import read

    assert (summary.U, summary.S, summary.SNR) == (keys.ENERGY, keys.ENTROPY, keys.SNR)
    assert (read.U, read.S) == (keys.ENERGY, keys.ENTROPY)
    assert set(read.NEEDED_TAGS) <= set(keys.METRICS) | {keys.TRAIN_ACC}
