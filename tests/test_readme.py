"""README's usage example runs, and its set-up block has the two commands CI relies on."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_setup_block_has_main_job_and_test_command() -> None:
    text = README.read_text()
    block = text.split("<!-- setup:begin -->")[1].split("<!-- setup:end -->")[0]
    commands = [line for line in block.splitlines() if line.startswith("pip install")]
    assert len(commands) == 2
    assert "pytest" in commands[1] and "pytest" not in commands[0]


def test_usage_example_runs() -> None:
    text = README.read_text()
    usage = text.split("## Usage")[1]
    code = re.search(r"```python\n(.*?)```", usage, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["table"]["valid"].dtype == bool
    assert namespace["ess"] > 500  # i.i.d. snapshots: nearly every one counts
    assert 0 < namespace["snr"] < 10
