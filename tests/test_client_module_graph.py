"""The modules of ``postdicom/`` import each other in one direction only, and each imports on its own.

The graph is read from the source with ``ast``, imports under
``TYPE_CHECKING`` included: a cycle hidden from the interpreter is still one
for the reader (and the next edit turns it into a real one).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

PACKAGE = "postdicom"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
MODULES = sorted(f"{PACKAGE}.{p.stem}" for p in ROOT.glob("*.py") if p.stem != "__init__")


def _imported(module: str) -> set[str]:
    """The ``postdicom`` modules ``module`` imports (the package's ``__init__`` left out)."""
    tree = ast.parse((ROOT / f"{module.rsplit('.', 1)[1]}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = PACKAGE if node.level else ""
            target = ".".join(part for part in (base, node.module or "") if part) if node.level <= 1 else ""
            names = [target] + [f"{target}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in MODULES)
    return found - {module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, each as the path of modules that closes it."""
    found: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                found.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_the_graph_reader_sees_a_cycle_when_there_is_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_graph_reader_finds_relative_and_absolute_imports():
    assert f"{PACKAGE}.http" in _imported(f"{PACKAGE}.stow")  # under TYPE_CHECKING
    assert f"{PACKAGE}.errors" in _imported(f"{PACKAGE}.http")
    assert _imported(f"{PACKAGE}.client") >= {f"{PACKAGE}.dicomweb", f"{PACKAGE}.urls"}


def test_no_import_cycle_inside_postdicom():
    graph = {module: _imported(module) for module in MODULES}
    assert _cycles(graph) == []


def test_upload_uses_stow_and_qido_and_they_know_nothing_of_uploads():
    graph = {module: _imported(module) for module in MODULES}
    assert {f"{PACKAGE}.stow", f"{PACKAGE}.qido"} <= graph[f"{PACKAGE}.upload"]
    for module in ("stow", "qido", "wado", "part10", "urls"):
        assert f"{PACKAGE}.upload" not in graph[f"{PACKAGE}.{module}"]
        assert f"{PACKAGE}.dicomweb" not in graph[f"{PACKAGE}.{module}"]


_IMPORT_EACH_ALONE = """
import importlib, sys
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "postdicom" or m.startswith("postdicom.")]:
        del sys.modules[loaded]
    importlib.import_module(name)
"""


def test_each_module_imports_on_its_own():
    """Each from a state where no ``postdicom`` module is loaded, so an import that only works after another shows up."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH_ALONE, *MODULES],
        cwd=ROOT.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_postdicom_never_imports_prefect():
    for module in MODULES:
        importlib.import_module(module)
    tree_imports = {
        alias.name.split(".")[0]
        for path in ROOT.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert "prefect" not in tree_imports
