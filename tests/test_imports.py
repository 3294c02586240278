"""The modules form layers: every gpugrad module imports on its own, its imports of other
gpugrad modules stand at its top (none inside a function or after its code, the usual ways
round a cycle), and those imports form no cycle."""
import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "gpugrad"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _tree(name):
    return ast.parse((PACKAGE / f"{name}.py").read_text(), filename=f"gpugrad/{name}.py")


def _imported(node):
    """The gpugrad modules an import statement names (empty for other packages)."""
    if isinstance(node, ast.ImportFrom) and node.level == 1:
        return [node.module] if node.module else [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gpugrad"):
        return [node.module.partition(".")[2] or "__init__"]
    if isinstance(node, ast.Import):
        return [alias.name.partition(".")[2] for alias in node.names if alias.name.startswith("gpugrad.")]
    return []


@pytest.mark.parametrize("name", MODULES)
def test_each_module_imports_alone(name):
    run = subprocess.run([sys.executable, "-c", f"import gpugrad.{name}"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("name", MODULES)
def test_gpugrad_imports_stand_at_the_top_of_each_module(name):
    tree = _tree(name)
    first_code = next((i for i, node in enumerate(tree.body)
                       if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.For, ast.If))), len(tree.body))
    late = [node.lineno for node in tree.body[first_code:] if _imported(node)]
    nested = [node.lineno for top in tree.body if not isinstance(top, (ast.Import, ast.ImportFrom))
              for node in ast.walk(top) if _imported(node)]
    assert late == [] and nested == [], f"gpugrad/{name}.py imports gpugrad modules at lines {late + nested}"


def test_the_module_imports_form_no_cycle():
    graph = {name: {m for node in _tree(name).body for m in _imported(node) if m in MODULES} for name in MODULES}
    done, path = set(), []

    def visit(name):
        if name in path:
            raise AssertionError(f"import cycle: {' -> '.join(path[path.index(name):] + [name])}")
        if name in done:
            return
        path.append(name)
        for imported in sorted(graph[name]):
            visit(imported)
        path.pop()
        done.add(name)

    for name in MODULES:
        visit(name)
