"""The package's dependencies point one way (ast over otf_spin/**/*.py, nothing imported).

Checks, each a function of the package root so that it can be shown failing on a
planted violation (the ``test_*_fails_*`` tests below):

- no import cycle among the package's modules (module-level imports);
- no function-level import of a package module (function-level imports are for optional
  heavy dependencies only: mpi4py, matplotlib, ...);
- no access ``x._name`` to a private name another module defines (``x`` not ``self`` or
  ``cls``, ``_name`` not defined in the module itself); allowed: :data:`PRIVATE_ALLOWED`;
- ``otf_spin/core.py`` imports nothing of the package.
"""
from __future__ import annotations

import ast
import os
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "otf_spin"

#: (module, "x._name") pairs that may touch another module's private name; keep empty
PRIVATE_ALLOWED: set[tuple[str, str]] = set()
#: underscore names that are public API of the standard library or numpy
PUBLIC_UNDERSCORE = {"_exit", "_replace", "_asdict", "_fields", "_make"}


def modules(root) -> dict[str, tuple[Path, ast.Module]]:
    """Module name -> (path, parsed tree) of every .py file under the package ``root``."""
    root = Path(root)
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name,) + path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = (path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return out


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module name of a (possibly relative) ``from ... import``."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[:len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, node, names: set[str], is_package: bool) -> set[str]:
    """Package modules an import statement ``node`` of ``module`` loads."""
    found = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            found.add(alias.name)
    else:
        base = _absolute(module, node, is_package)
        for alias in node.names:     # ``from pkg import submodule`` loads the submodule
            found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base)
    return {n for n in found if n in names}


def _function_nodes(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield node


def _function_level(tree) -> set[int]:
    """ids of the import statements inside a function body."""
    return {id(sub) for fn in _function_nodes(tree) for sub in ast.walk(fn)
            if isinstance(sub, (ast.Import, ast.ImportFrom))}


def import_graph(root) -> dict[str, set[str]]:
    """Module -> package modules it imports at module level (not inside functions)."""
    mods = modules(root)
    names = set(mods)
    graph = {}
    for name, (path, tree) in mods.items():
        inner = _function_level(tree)
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in inner:
                edges |= _imports(name, node, names, path.name == "__init__.py")
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(root) -> list[list[str]]:
    """Import cycles among the package's modules (strongly connected components of more
    than one module, each as a sorted list)."""
    graph = import_graph(root)
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):                                       # Tarjan, iterative over edges
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, edges = work[-1]
            for w in edges:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def function_level_imports(root) -> list[str]:
    """'module:line: imported' for every import of a package module inside a function."""
    mods = modules(root)
    names = set(mods)
    out = []
    for name, (path, tree) in mods.items():
        for fn in _function_nodes(tree):
            for sub in ast.walk(fn):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    hit = _imports(name, sub, names, path.name == "__init__.py")
                    if hit:
                        out.append((name, sub.lineno, max(hit)))
    return [f"{m}:{line}: {target}" for m, line, target in sorted(set(out))]


def _defined_private(tree) -> set[str]:
    """Underscore names a module defines: functions, classes, attributes it assigns."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and \
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def private_access(root) -> list[str]:
    """'module:line: x._name' for every access to a private name another module defines."""
    out = []
    for name, (_, tree) in modules(root).items():
        own = _defined_private(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            attr = node.attr
            if not attr.startswith("_") or attr.startswith("__") or attr in own \
                    or attr in PUBLIC_UNDERSCORE:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            shown = f"{ast.unparse(node.value)}.{attr}"
            if (name, shown) not in PRIVATE_ALLOWED:
                out.append((name, node.lineno, shown))
    return [f"{m}:{line}: {shown}" for m, line, shown in sorted(out)]


def core_imports(root, core: str = "core") -> list[str]:
    """Package modules the core module imports (at any level); must be none."""
    mods = modules(root)
    name = f"{Path(root).name}.{core}"
    if name not in mods:
        return [f"{name}: missing"]
    path, tree = mods[name]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == Path(root).name}
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(name, node, False)
            if node.level or target.split(".")[0] == Path(root).name:
                found.add(target or ".")
    return sorted(found)


# --- the package --------------------------------------------------------------------------

def test_no_import_cycles():
    assert cycles(ROOT) == []


def test_no_function_level_imports_of_package_modules():
    assert function_level_imports(ROOT) == []


def test_no_access_to_other_modules_private_names():
    assert private_access(ROOT) == []


def test_core_imports_nothing_of_the_package():
    assert core_imports(ROOT) == []


def test_the_graph_sees_the_package():
    """The walk finds the modules and their edges (an empty graph passes every check)."""
    graph = import_graph(ROOT)
    assert len(graph) > 50
    assert "otf_spin.core" in graph["otf_spin.config.engine"]


# --- each check fails on a planted violation ----------------------------------------------

def _tree(tmp_path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", "core.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_cycle_check_fails_on_a_planted_cycle(tmp_path):
    root = _tree(tmp_path, {"a.py": "from pkg.b import f\n", "b.py": "import pkg.c\n",
                            "c.py": "from pkg import a\n", "d.py": "from pkg.a import x\n"})
    assert cycles(root) == [["pkg.a", "pkg.b", "pkg.c"]]
    root = _tree(tmp_path / "rel", {"sub/__init__.py": "", "sub/a.py": "from . import b\n",
                                    "sub/b.py": "from .a import g\n"})
    assert cycles(root) == [["pkg.sub.a", "pkg.sub.b"]]


def test_cycle_check_ignores_function_level_imports(tmp_path):
    """(they are caught by the function-level check instead)"""
    root = _tree(tmp_path, {"a.py": "import pkg.b\n", "b.py": "def f():\n    import pkg.a\n"})
    assert cycles(root) == []
    assert function_level_imports(root) == ["pkg.b:2: pkg.a"]


def test_function_level_check_fails_on_a_planted_import(tmp_path):
    root = _tree(tmp_path, {"a.py": """\
        import json


        def f():
            import numpy                   # third party: allowed
            from pkg.core import Frame
            return Frame


        class C:
            def g(self):
                from . import core
                return core
        """})
    assert function_level_imports(root) == ["pkg.a:6: pkg.core", "pkg.a:12: pkg.core"]


def test_private_check_fails_on_a_planted_access(tmp_path):
    root = _tree(tmp_path, {"a.py": """\
        class A:
            def __init__(self):
                self._mine = 1

            def same(self, other):
                return other._mine           # defined here: allowed


        def f(model, provider):
            provider._last = None
            return model._solve(), model.__class__
        """})
    assert private_access(root) == ["pkg.a:10: provider._last", "pkg.a:11: model._solve"]


def test_core_check_fails_on_a_planted_import(tmp_path):
    root = _tree(tmp_path, {"core.py": "import os\nfrom pkg.system import X\n",
                            "system.py": ""})
    assert core_imports(root) == ["pkg.system"]
    root = _tree(tmp_path / "rel", {"core.py": "from . import system\n", "system.py": ""})
    assert core_imports(root) == ["pkg"]


@pytest.mark.parametrize("check", [cycles, function_level_imports, private_access])
def test_checks_pass_on_a_clean_tree(tmp_path, check):
    root = _tree(tmp_path, {"a.py": "import os\nfrom pkg.core import X\n\n\ndef f():\n"
                                    "    import mpi4py\n    return os.sep\n"})
    assert check(root) == []
    assert core_imports(root) == []
