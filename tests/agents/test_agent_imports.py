"""The agent is copied alone to boards: it may import only the stdlib, numpy and itself at module level."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AGENTS = REPO / "agents"
FORBIDDEN = {"spaces", "profiler", "predictors", "hwsearch", "edgeprof"}
RUNTIMES = {"onnxruntime", "tensorrt", "torch", "pycuda", "cuda", "pynvml", "onnx"}


def imports(tree, top_level_only):
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0], node.lineno


SOURCES = sorted(AGENTS.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(REPO)) for p in SOURCES])
def test_no_imports_from_the_rest_of_the_repository(path):
    tree = ast.parse(path.read_text())
    bad = [(m, ln) for m, ln in imports(tree, top_level_only=False) if m in FORBIDDEN]
    assert not bad, f"{path}: imports {bad}"


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(REPO)) for p in SOURCES])
def test_module_level_imports_are_stdlib_or_numpy(path):
    stdlib = getattr(sys, "stdlib_module_names", None)
    if stdlib is None:
        pytest.skip("needs Python 3.10+")
    tree = ast.parse(path.read_text())
    bad = [
        (m, ln)
        for m, ln in imports(tree, top_level_only=True)
        if m not in stdlib and m not in ("numpy", "agents")
    ]
    assert not bad, f"{path}: module-level imports {bad}; import runtimes lazily inside functions"


def test_importing_the_agent_loads_no_runtime():
    code = (
        "import sys, agents.runner, agents.info, agents.worker, agents.__main__; "
        f"print(sorted(m for m in {sorted(RUNTIMES)!r} if m in sys.modules))"
    )
    out = subprocess.check_output([sys.executable, "-c", code], cwd=str(REPO), universal_newlines=True)
    assert out.strip() == "[]"


def _module_name(path):
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _agent_imports(path):
    """Agent modules that `path` imports anywhere (function-level imports too: a cycle hidden in a function
    is still a cycle)."""
    this = _module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    known = {_module_name(p) for p in SOURCES}
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level > 1:
                base = base[: -(node.level - 1)]
            base = ".".join(base) if node.level else ""
            module = ".".join(x for x in (base, node.module or "") if x)
            names = [module] + [f"{module}.{a.name}" for a in node.names]
        for name in names:
            if name in known and name != this:
                yield name


def find_cycle(graph):
    """One import cycle of graph {module: imported modules} as a list of names, or None."""
    state = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_find_cycle_sees_a_cycle_hidden_in_a_function():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_between_agent_modules():
    graph = {_module_name(p): set(_agent_imports(p)) for p in SOURCES}
    assert "agents.environment" not in graph["agents.board"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
