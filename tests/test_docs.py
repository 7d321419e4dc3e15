"""Every ```python block in docs/*.md runs (blocks of one page share a namespace)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = sorted((Path(__file__).resolve().parents[1] / "docs").glob("*.md"))
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from thermo_lightning.sweep import recipes

    monkeypatch.chdir(tmp_path)  # examples may write logs
    monkeypatch.setattr(recipes, "RECIPES", dict(recipes.RECIPES))  # a page's own recipes
    namespace: dict = {}
    for i, code in enumerate(BLOCK.findall(page.read_text())):
        exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)


def test_api_reference_is_up_to_date() -> None:
    from tests.helpers.scripts import load_script

    page = Path(__file__).resolve().parents[1] / "docs" / "api.md"
    render = load_script("docs", "gen_api").render
    assert page.read_text() == render(), "run: python docs/gen_api.py > docs/api.md"
