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


PLUGIN = """
import time

from agents.backends import BACKENDS, Backend
from agents.options import Option


@BACKENDS.register("sleepy")
class Sleepy(Backend):
    name = "sleepy"
    OPTIONS = {"ms": Option(0.5, "number", "sleep per run")}

    def load(self, model_path, inputs, dtype="float32", precision="fp32"):
        return self

    def run_once(self):
        time.sleep(self.options["ms"] / 1000.0)
"""


@needs_py36
def test_a_bundled_plugin_runs_under_python36(tmp_path):
    """The bundle as a transport lays it out (agents + the plugin), run by a real Python 3.6."""
    import shutil

    from profiler.transports.base import agent_files

    plugin = tmp_path / "sleepy.py"
    plugin.write_text(PLUGIN)
    bundle = tmp_path / "bundle"
    for rel, src in agent_files([plugin]):
        (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(str(src), str(bundle / rel))
    (tmp_path / "m.bin").write_bytes(b"x")
    job = write_job(tmp_path, [task("s", "m.bin", {"x": [1]}, backend="sleepy", options={"ms": 0.2})])
    env = dict(os.environ, PYTHONPATH=str(bundle))
    proc = subprocess.run([PY36, "-m", "agents", "run", str(job)], cwd=str(bundle), env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    (r,) = read_lines(tmp_path / "results.jsonl")
    assert (r["status"], r["backend"]) == ("ok", "sleepy") and 0.2 <= r["latency_ms"]["median"] < 50
    assert r["environment"]["python"]["version"].startswith("3.6")
    info = subprocess.run([PY36, "-m", "agents", "info", "--json"], cwd=str(bundle), env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    assert json.loads(info.stdout)["plugins"] == {"sleepy.py": None}
