"""README's usage example runs, and its set-up block has the two commands CI relies on."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_setup_block_has_main_job_and_test_command() -> None:
    text = README.read_text()
    block = text.split("<!-- setup:begin -->")[1].split("<!-- setup:end -->")[0]
    commands = [line for line in block.splitlines() if line.startswith("pip install")]
    assert len(commands) == 2
    assert "pytest" in commands[1] and "pytest" not in commands[0]


@pytest.mark.slow  # 16 s: the README's usage blocks train; CI's slow stage runs it
def test_usage_examples_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # Lightning writes lightning_logs/ here
    text = README.read_text()
    usage = text.split("## Usage")[1].split("## Documentation")[0]
    blocks = re.findall(r"```python\n(.*?)```", usage, re.S)
    assert len(blocks) == 2
    namespace: dict = {}
    exec(compile(blocks[0], "README.md[0]", "exec"), namespace)
    assert namespace["table"]["valid"].dtype == bool
    assert namespace["ess"] > 500  # i.i.d. snapshots: nearly every one counts
    assert 0 < namespace["snr"] < 10
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(blocks[1], "README.md[1]", "exec"), namespace)
    thermo = namespace["thermo"]
    history = thermo.history
    messages = [str(w.message) for w in caught]
    # the net learns: its loss ends far below that of random weights and below a uniform
    # guess (ln 10), and nothing warns that it did not
    assert history["thermo/U"].iloc[-1] < min(0.5 * thermo.random_loss, math.log(10))
    assert not [m for m in messages if "has not learned" in m]
    # thinned by its own correlation time, with windows not flagged as correlated
    assert thermo.meter.stride > 1 and thermo.meter.correlation_time > 1
    tail = history.dropna(subset=["thermo/S"]).tail(10)
    assert len(tail) == 10 and (tail["thermo/stride"] == thermo.meter.stride).all()
    # (single windows may dip below N / 4; the report, like this check, uses the tail's mean)
    assert tail["thermo/ess"].mean() >= 30 / 4 and tail["thermo/low_ess"].mean() < 0.5
    assert (tmp_path / "lightning_logs").is_dir()
