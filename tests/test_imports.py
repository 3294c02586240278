"""The modules form layers: every gpugrad module imports on its own, its imports of other
gpugrad modules stand at its top (none inside a function or after its code, the usual ways
round a cycle), and those imports form no cycle."""
import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "gpugrad"


def _dotted(path):
    """The dotted name below gpugrad of a module file: "ops", "primitives.arithmetic", and
    "primitives" for a subpackage's __init__.py."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(name for name in map(_dotted, PACKAGE.rglob("*.py")) if name)


def _path(name):
    path = PACKAGE.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _tree(name):
    path = _path(name)
    return ast.parse(path.read_text(), filename=str(path.relative_to(PACKAGE.parent)))


def _imported(node, name):
    """The gpugrad modules (dotted names below gpugrad) that an import statement in module
    `name` names (empty for other packages); relative imports resolve against name's package."""
    if isinstance(node, ast.ImportFrom) and node.level:
        package = name.split(".") if _path(name).name == "__init__.py" else name.split(".")[:-1]
        if node.level - 1 > len(package):
            return []
        base = package[:len(package) - (node.level - 1)]
        if node.module:
            return [".".join(base + node.module.split("."))]
        return [".".join(base + [alias.name]) for alias in node.names]
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
    late = [node.lineno for node in tree.body[first_code:] if _imported(node, name)]
    nested = [node.lineno for top in tree.body if not isinstance(top, (ast.Import, ast.ImportFrom))
              for node in ast.walk(top) if _imported(node, name)]
    assert late == [] and nested == [], f"{_path(name).relative_to(PACKAGE.parent)} imports gpugrad modules at lines {late + nested}"


def test_the_module_imports_form_no_cycle():
    graph = {name: {m for node in _tree(name).body for m in _imported(node, name) if m in MODULES} for name in MODULES}
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
