"""The agent runs on boards with Python 3.6 (JetPack 4): check it with vermin, and with a real 3.6 when given.

Set EDGEPROF_PY36 to a Python 3.6 interpreter (with numpy; onnxruntime optional) to also compile every
agent module with it and run a job end to end.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from agent_helpers import read_lines, run_agent, task, write_job

REPO = Path(__file__).resolve().parents[2]


def test_vermin_finds_nothing_newer_than_36():
    # vermin has no __main__ module, so `python -m vermin` cannot run; call its entry point instead
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, vermin; sys.exit(vermin.main())",
            "--target=3.6-",
            "--violations",
            "--no-tips",
            "agents/",
        ],
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out
    assert "Target versions not met" not in out, out
    assert " requires " not in out, out
    assert "Minimum required versions: 3.6" in out or "Minimum required versions: ~" in out, out


PY36 = os.environ.get("EDGEPROF_PY36")
needs_py36 = pytest.mark.skipif(not PY36, reason="set EDGEPROF_PY36 to a Python 3.6 interpreter")


@needs_py36
def test_compiles_and_runs_under_python36(tmp_path):
    version = subprocess.check_output(
        [PY36, "-c", "import sys; print(sys.version_info[:2])"], universal_newlines=True
    )
    assert version.strip() == "(3, 6)"
    files = sorted(str(p) for p in (REPO / "agents").rglob("*.py"))
    subprocess.check_call([PY36, "-m", "py_compile", *files])
    info = run_agent(["info", "--json"], cwd=tmp_path, python=PY36)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["python"]["version"].startswith("3.6")
    (tmp_path / "m.bin").write_bytes(b"x")
    job = write_job(
        tmp_path,
        [
            task("d", "m.bin", {"x": [1]}, backend="debug", options={"latency_ms": 0.5}),
            task("gone", "nope.onnx", {"x": [1]}, backend="debug"),
        ],
    )
    proc = run_agent(["run", job], cwd=tmp_path, python=PY36)
    assert proc.returncode == 0, proc.stderr
    lines = read_lines(tmp_path / "results.jsonl")
    assert [r["status"] for r in lines] == ["ok", "error"]
    assert lines[0]["environment"]["python"]["version"].startswith("3.6")
