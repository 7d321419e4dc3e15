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
    exec(compile(blocks[1], "README.md[1]", "exec"), namespace)
    history = namespace["thermo"].history
    assert history["step"].tolist() == [25.0, 50.0, 75.0, 100.0]
    assert history["thermo/S"].notna().sum() == 3  # the 50-snapshot window is full from step 50
    assert (tmp_path / "lightning_logs").is_dir()
