"""Helpers for the agent tests: tiny ONNX models, job bundles, and running `python -m agents`."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]

# Short protocol so that a real end-to-end run takes a fraction of a second per task
FAST = {"warmup_min_runs": 3, "warmup_min_s": 0.05, "min_runs": 5, "max_runs": 30, "timeout_s": 60.0}


def _save(model, path):
    import onnx

    onnx.checker.check_model(model)
    data = model.SerializeToString()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def make_conv_model(path, batch="N"):
    """Conv(3->8, 3x3) + Relu on 1x3x16x16 (or a symbolic batch dimension)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    w = helper.make_tensor(
        "W", TensorProto.FLOAT, [8, 3, 3, 3], rng.standard_normal(8 * 27).astype(np.float32)
    )
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "W"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["out"]),
        ],
        "conv_relu",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, 8, 16, 16])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7  # readable by old runtimes too (ORT 1.10 on Python 3.6)
    return _save(model, path)


def make_matmul_model(path):
    """x[1,64] @ W[64,32]."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(1)
    w = helper.make_tensor("W", TensorProto.FLOAT, [64, 32], rng.standard_normal(64 * 32).astype(np.float32))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return _save(model, path)


def task(task_id, model, inputs, backend="onnxruntime", sha=None, **extra):
    t = {"task_id": task_id, "model": str(model), "inputs": inputs, "backend": backend}
    if sha:
        t["model_sha256"] = sha
    t.update(extra)
    return t


def write_job(folder, tasks, protocol=None, job_id="job-test", **extra):
    """Write job.json into folder and return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    proto = dict(FAST)
    proto.update(protocol or {})
    job = {
        "schema": "edgeprof.job/1",
        "job_id": job_id,
        "device": "test-cpu",
        "protocol": proto,
        "tasks": tasks,
    }
    job.update(extra)
    path = folder / "job.json"
    path.write_text(json.dumps(job, indent=1))
    return path


def agent_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    return env


def run_agent(args, cwd, timeout=120, python=None):
    """`python -m agents ARGS` as a subprocess from cwd (outside the repo), agents found via PYTHONPATH."""
    return subprocess.run(
        [python or sys.executable, "-m", "agents", *[str(a) for a in args]],
        cwd=str(cwd),
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def read_lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
