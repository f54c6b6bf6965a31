"""No import cycle among loram_core's modules: neither at import time nor through the imports that functions
make when they run (a lazy cycle is still two modules that need each other, as prune and publish once did)."""

import ast
import sys

import pytest

from loram_test_helpers import REPO

ROOT = REPO / "loram_core"

def module_names():
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    return mods

def imports(path, mods, lazy):
    tree = ast.parse(path.read_text())
    out = set()
    def visit(nodes, top):
        for n in nodes:
            if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
                continue  # names for type checkers only
            if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] == "loram_core" and n.level == 0:
                subs = [f"{n.module}.{a.name}" for a in n.names if f"{n.module}.{a.name}" in mods]
                out.update(subs)
                if len(subs) < len(n.names):
                    out.add(n.module)
            elif isinstance(n, ast.Import):
                out.update(a.name for a in n.names if a.name in mods)
            if lazy or top:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    child = getattr(n, field, None)
                    if isinstance(child, list) and (lazy or isinstance(n, (ast.If, ast.Try, ast.With))):
                        visit(child, top and not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))
    visit(tree.body, True)
    return out & set(mods)

def cycles(lazy: bool) -> list[list[str]]:
    mods = module_names()
    # The package itself is a façade: ``loram_core.run()`` imports the runner when called, and modules take
    # ``hookimpl`` / ``__version__`` from it; an edge into it is not two modules needing each other.
    return strongly_connected({m: imports(p, mods, lazy) - {m, "loram_core"} for m, p in mods.items()})


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of two or more modules that reach each other."""
    index, low, stack, on, found = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)
    def strong(v):
        index[v] = low[v] = len(index); stack.append(v); on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: found.append(sorted(comp))
    for v in graph:
        if v not in index: strong(v)
    return found


@pytest.mark.parametrize("lazy", [False, True], ids=["at-import", "with-function-imports"])
def test_no_import_cycle(lazy):
    assert cycles(lazy) == []


def test_a_cycle_is_found(tmp_path):
    """The walk itself: two modules written to need each other (one lazily) are reported."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    (tmp_path / "a.py").write_text("from loram_core.b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from loram_core.a import y\n")
    mods = {"loram_core.a": tmp_path / "a.py", "loram_core.b": tmp_path / "b.py"}
    graph = lambda lazy: {m: imports(p, mods, lazy) for m, p in mods.items()}  # noqa: E731
    assert strongly_connected(graph(False)) == [] and strongly_connected(graph(True)) == [["loram_core.a", "loram_core.b"]]


def test_adapter_file_names_are_pefts():
    from peft.utils.constants import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME

    from loram_core.adapters import files

    assert (files.WEIGHTS, files.CONFIG) == (SAFETENSORS_WEIGHTS_NAME, CONFIG_NAME)
