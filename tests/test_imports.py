"""The package's import structure: no cycles, one-way I/O registration, no upward utils."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import m31clusters

ROOT = Path(m31clusters.__file__).parent


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _top_level_imports(tree):
    """Import statements run when the module is imported (not inside functions)."""
    found = []

    def walk(body):
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(node)
            elif isinstance(node, ast.If | ast.Try | ast.With):
                for field in ("body", "orelse", "finalbody"):
                    walk(getattr(node, field, []))
                for handler in getattr(node, "handlers", []):
                    walk(handler.body)

    walk(tree.body)
    return found


def _import_graph():
    """Module -> the m31clusters modules it imports at import time."""
    graph = {}
    for name, path in MODULES.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in _top_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1])
                    base += f".{node.module}" if node.module else ""
                else:
                    base = node.module
                # "from pkg import sub" imports the submodule; "from pkg import name"
                # needs pkg itself.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                           for a in node.names]
            deps.update(t for t in targets if t in MODULES and t != name)
        graph[name] = deps
    return graph


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_imports():
    # The parser must find the imports it checks, or the tests below pass vacuously.
    graph = _import_graph()
    assert "m31clusters.catalog" in graph["m31clusters"]
    assert "m31clusters.io" in graph["m31clusters"]
    assert {"m31clusters.catalog", "m31clusters.utils._tables"} <= \
        graph["m31clusters.io.cds.read"]
    assert "m31clusters.io.cds.connect" in graph["m31clusters.io"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    cycles = _cycles(_import_graph())
    assert cycles == [], f"modules that import each other at import time: {cycles}"


def test_io_registration_is_one_way():
    # The formats import the core class and register themselves; the core
    # never imports a format (nor its connector), even lazily.
    graph = _import_graph()
    assert not {d for d in graph["m31clusters.catalog"] if d.startswith("m31clusters.io")}
    tree = ast.parse(MODULES["m31clusters.catalog"].read_text(encoding="utf-8"))
    lazy = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
            and (n.module or "").split(".")[0] in ("io", "m31clusters") and
            (n.module or "").removeprefix("m31clusters.").split(".")[0] == "io"]
    assert lazy == []
    importers = {name for name, deps in graph.items()
                 if any(d.endswith(".connect") for d in deps)}
    assert importers == {"m31clusters.io"}


def test_utils_import_nothing_above_them():
    graph = _import_graph()
    allowed = ("m31clusters.utils", "m31clusters.exceptions", "m31clusters._version")
    upward = {name: sorted(d for d in deps if not d.startswith(allowed))
              for name, deps in graph.items() if name.startswith("m31clusters.utils")}
    assert {k: v for k, v in upward.items() if v} == {}


_IMPORT_EACH = """
import importlib, json, sys, warnings
warnings.simplefilter("error")


def purge():
    for mod in [m for m in sys.modules if m == "m31clusters" or m.startswith("m31clusters.")]:
        del sys.modules[mod]


failures = {}
names = json.loads(sys.argv[1])
importlib.import_module(names[0])
with_package = sorted(m for m in sys.modules if m.startswith("m31clusters"))
for name in names[1:]:
    if name in with_package:
        continue
    purge()
    try:
        importlib.import_module(name)
    except BaseException as exc:  # SystemExit too: a module must not exit on import
        failures[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"with_package": with_package, "failures": failures}))
"""


def test_every_module_imports_first_in_a_fresh_interpreter(tmp_path):
    # Python imports a module's parent packages before it, so importing any
    # module first runs ``m31clusters/__init__`` first: a module that the
    # package import loads is imported first by importing the package in a
    # fresh interpreter.  Every other module (cli, benchmarks helpers...) is
    # then imported first on its own, with every m31clusters module dropped.
    names = ["m31clusters.io.cds.read"] + [n for n in MODULES if not n.endswith("__main__")]
    out = subprocess.run([sys.executable, "-c", _IMPORT_EACH, json.dumps(names)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "KERAS_HOME": str(tmp_path), "MPLBACKEND": "Agg"})
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["failures"] == {}
    # The package import loads what the static graph says it imports.
    graph = _import_graph()
    reached, todo = set(), ["m31clusters"]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(graph[name])
    assert reached <= set(result["with_package"])
    assert "m31clusters.io.pandas_ascd.connect" in result["with_package"]


def test_a_module_imported_first_registers_the_formats(tmp_path):
    code = ("import m31clusters.utils._tables\n"
            "from astropy.io import registry\n"
            "from m31clusters.catalog import Catalog\n"
            "print(registry.get_writer('cds', Catalog).__module__,"
            " registry.get_reader('pandas-ascd', Catalog).__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "KERAS_HOME": str(tmp_path)}, check=True,
                         timeout=300)
    assert out.stdout.split() == ["m31clusters.io.cds.connect",
                                  "m31clusters.io.pandas_ascd.connect"]


def _public_names_defined(path):
    """Public functions, classes and constants a module defines itself."""
    defined = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
    return {name for name in defined if not name.startswith("_")}


@pytest.mark.parametrize("name", [
    "m31clusters.catalog", "m31clusters.io.cds.read", "m31clusters.io.cds.write",
    "m31clusters.io.pandas_ascd.read", "m31clusters.io.pandas_ascd.write",
    "m31clusters.utils._io", "m31clusters.utils._tables", "m31clusters.utils._validation",
    "m31clusters.utils._sphere",
])
def test_module_all_is_the_public_names_defined(name):
    import importlib

    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(_public_names_defined(MODULES[name]))
    assert len(module.__all__) == len(set(module.__all__))
