"""The package's layers as docs/architecture.md draws them: no import cycle, dependencies that
point one way, the run folder's contract and the report's reading free of torch and
Lightning, and small modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import thermo_lightning

PACKAGE = Path(thermo_lightning.__file__).parent
ROOT = PACKAGE.parent
MAX_LINES = 550  #: "about 500 lines" per module


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _statements(tree: ast.AST, at_import: bool) -> list[ast.AST]:
    """The import statements of a module: those that run when it is imported
    (``at_import``: not in a function body), or all of them (a function's lazy import too);
    never those under ``if TYPE_CHECKING:``."""
    out: list[ast.AST] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                continue
            if at_import and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                out.append(child)
            walk(child)

    walk(tree)
    return out


def _imports(path: Path, at_import: bool = False) -> set[str]:
    """The package's modules ``path`` imports (:func:`_statements`): ``from pkg import
    name`` is ``pkg.name`` when that is a module, else ``pkg``."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found = set()
    for node in _statements(ast.parse(path.read_text()), at_import):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.add(name if name in MODULES else base)
    return {m for m in found if m in MODULES and m != here}


GRAPH = {name: _imports(path) for name, path in MODULES.items()}
#: what importing each module imports (no function's lazy import)
AT_IMPORT = {name: _imports(path, at_import=True) for name, path in MODULES.items()}


def _third_party(path: Path, at_import: bool = True) -> set[str]:
    """The libraries ``path`` imports (:func:`_statements`)."""
    names = set()
    for node in _statements(ast.parse(path.read_text()), at_import):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_import_cycle() -> None:
    # re-exports of a package's own modules in its __init__ are the package's surface,
    # not a dependency: an edge into a package __init__ from its own submodule is a cycle
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def _reaches(start: str, graph: dict[str, set[str]] = GRAPH) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _in(package: str) -> list[str]:
    return [m for m in MODULES if m == package or m.startswith(package + ".")]


@pytest.mark.parametrize(("package", "forbidden"), [
    # the run folder's contract is read by all and reads nothing above it
    ("thermo_lightning.runs", ("thermo_lightning.sweep", "thermo_lightning.launch",
                               "thermo_lightning.report", "thermo_lightning.meter",
                               "thermo_lightning.callback", "thermo_lightning.strategy")),
    ("thermo_lightning.spec", ("thermo_lightning.meter", "thermo_lightning.sweep",
                               "thermo_lightning.report")),
    # the report reads runs; it never imports the sweep, the launchers or the meter
    ("thermo_lightning.report", ("thermo_lightning.sweep", "thermo_lightning.launch",
                                 "thermo_lightning.meter", "thermo_lightning.callback",
                                 "thermo_lightning.strategy")),
    # launchers are handed the runner as a callable; they never import it back
    ("thermo_lightning.launch", ("thermo_lightning.sweep", "thermo_lightning.report",
                                 "thermo_lightning.meter", "thermo_lightning.callback")),
    ("thermo_lightning.functional", ("thermo_lightning.meter", "thermo_lightning.callback",
                                     "thermo_lightning.sweep", "thermo_lightning.report")),
    ("thermo_lightning.meter", ("thermo_lightning.callback", "thermo_lightning.strategy",
                                "thermo_lightning.sweep", "thermo_lightning.report")),
])
def test_dependencies_point_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    bad = {m: sorted(r for r in _reaches(m) if any(r == f or r.startswith(f + ".")
                                                   for f in forbidden))
           for m in _in(package)}
    assert {m: r for m, r in bad.items() if r} == {}


@pytest.mark.parametrize("package", ["thermo_lightning.runs", "thermo_lightning.spec",
                                     "thermo_lightning.launch", "thermo_lightning.sweep.config",
                                     "thermo_lightning.sweep.recipes",
                                     "thermo_lightning.sweep.plan",
                                     "thermo_lightning.sweep.errors"])
def test_pure_layers_import_neither_torch_nor_lightning(package: str) -> None:
    # what importing them imports (a recipe's functions load torch when they run)
    modules = [m for m in _in(package) for m in (m, *sorted(_reaches(m, AT_IMPORT)))]
    heavy = {m: sorted(_third_party(MODULES[m]) & {"torch", "lightning"}) for m in modules}
    assert {m: h for m, h in heavy.items() if h} == {}


# Only these modules may import lightning, anywhere in them (the LightningModule and
# LightningDataModule classes need their base classes)
LIGHTNING_ALLOWED = {
    "thermo_lightning.strategy", "thermo_lightning.callback", "thermo_lightning.loggers",
    "thermo_lightning.sweep.runner", "thermo_lightning.cli", "thermo_lightning",
    "thermo_lightning.models.lightning_modules", "thermo_lightning.data.modules",
}


def test_only_the_adapters_import_lightning() -> None:
    offenders = [m for m, path in MODULES.items() if m not in LIGHTNING_ALLOWED
                 and _third_party(path, at_import=False) & {"lightning", "pytorch_lightning"}]
    assert offenders == []


def _loaded_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", "import sys\n" + code + "\nprint(sorted(m for m "
                          "in ('torch', 'lightning') if m in sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return eval(out.splitlines()[-1])


def test_reading_runs_loads_neither_torch_nor_lightning() -> None:
    fixture = ROOT / "tests" / "fixtures" / "old_format"
    assert _loaded_after(
        "from thermo_lightning.runs import find_runs, read_run\n"
        f"runs = [read_run(p) for p in find_runs({str(fixture)!r})]\n"
        "assert len(runs) > 20 and all(not r.history.empty for r in runs)") == []
    # the sweep's settings and plan, and the launchers: no torch either
    assert _loaded_after("import thermo_lightning.sweep, thermo_lightning.sweep.plan, "
                         "thermo_lightning.launch\n"
                         "thermo_lightning.sweep.SweepConfig(model='langevin', lrs=[0.1, 0.2])"
                         ) == []
    # the report needs torch for the uniform-sphere reference and its TensorBoard writer,
    # never Lightning: `thermo-lightning report` on a sweep loads none
    assert "lightning" not in _loaded_after("import thermo_lightning.report")


def test_the_report_command_loads_no_lightning(tmp_path: Path) -> None:
    import shutil

    logdir = tmp_path / "seeds"
    shutil.copytree(ROOT / "tests" / "fixtures" / "old_format" / "seeds", logdir)
    loaded = _loaded_after(
        "from thermo_lightning.cli import main\n"
        f"assert main(['report', {str(logdir)!r}]) == 0")
    assert loaded == ["torch"]


def test_modules_are_small() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines()))
            > MAX_LINES}
    assert long == {}


def test_the_design_lives_in_the_repository() -> None:
    # docs/architecture.md is the project's own; nothing points at design files outside it
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    for package in ("runs/", "sweep/", "launch/", "report/", "functional/", "knn/"):
        assert package in architecture, package
    outside = []
    for path in [*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md"),
                 *PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py"),
                 *(ROOT / "examples").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]:
        text = path.read_text()
        if "ARCHITECTURE" + ".md" in text or "METHOD" + ".md" in text:
            outside.append(str(path.relative_to(ROOT)))
    assert outside == []
