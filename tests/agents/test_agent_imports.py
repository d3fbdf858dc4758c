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
