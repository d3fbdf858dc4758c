"""Real CUDA paths (marker `gpu`): run where a CUDA GPU is present, skip elsewhere saying why.

Each test drives the real agent (`python -m agents run`) on a real NB201 model, as a board would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spaces import create_space, export_onnx, export_space_package

pytestmark = pytest.mark.gpu
REPO = Path(__file__).resolve().parents[2]
FAST = {"warmup_min_runs": 5, "warmup_min_s": 0.2, "min_runs": 20, "max_runs": 100, "target_rel_ci": 0.02}


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


needs_cuda = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU on this machine")


def run_job(tmp_path: Path, tasks: list[dict], meter: dict | None = None) -> list[dict]:
    job = {"schema": "edgeprof.job/1", "job_id": "gpu-test", "device": "gpu-test", "protocol": FAST,
           "meter": meter or {"kind": "none"}, "tasks": tasks}
    (tmp_path / "job.json").write_text(json.dumps(job))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "agents", "run", str(tmp_path / "job.json")], cwd=tmp_path, env=env,
                       capture_output=True, text=True, check=False, timeout=600)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]


def nb201_model(tmp_path: Path, package: bool = False) -> tuple[Path, dict]:
    space = create_space("nb201")
    arch = space.sample(np.random.default_rng(0))
    m = (export_space_package if package else export_onnx)(space, arch, tmp_path)
    opts = {"model_format": "space", "space": "nb201", "space_config": space.config, "arch": list(arch)}
    return Path(m.path), (opts if package else {})


@needs_cuda
def test_torch_eager_on_cuda_reports_end_to_end_and_device_time(tmp_path: Path) -> None:
    path, opts = nb201_model(tmp_path, package=True)
    (r,) = run_job(tmp_path, [{"task_id": "t", "model": path.name, "inputs": {"input": [1, 3, 32, 32]},
                               "backend": "torch", "options": {**opts, "device": "cuda"}}])
    assert r["status"] == "ok", r["error"]
    assert r["latency_device_ms"]["median"] <= r["latency_ms"]["median"] * 1.05
    assert r["backend_info"]["device"].startswith("cuda")


@needs_cuda
def test_nvml_energy_on_a_real_gpu(tmp_path: Path) -> None:
    path, opts = nb201_model(tmp_path, package=True)
    (r,) = run_job(tmp_path, [{"task_id": "t", "model": path.name, "inputs": {"input": [8, 3, 32, 32]},
                               "backend": "torch", "batch": 8, "options": {**opts, "device": "cuda"}}],
                   meter={"kind": "nvml", "rail": "gpu0", "rate_hz": 100.0, "idle_s": 1.0})
    assert r["status"] == "ok", r["error"]
    e = r["energy"]
    assert e is not None, r["warnings"]
    assert e["gross_mj"] > 0 and e["mean_power_mw"] > 0 and e["idle_power_mw"] > 0
    assert e["net_mj"] <= e["gross_mj"]


@needs_cuda
def test_tensorrt_engine_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("tensorrt", reason="TensorRT Python bindings are not installed")
    path, _ = nb201_model(tmp_path)
    results = run_job(tmp_path, [{"task_id": f"t{i}", "model": path.name, "inputs": {"input": [1, 3, 32, 32]},
                                  "backend": "tensorrt", "precision": p}
                                 for i, p in enumerate(("fp32", "fp16", "fp32"))])
    assert [r["status"] for r in results] == ["ok"] * 3, [r["error"] for r in results]
    assert results[2]["backend_info"]["engine_cached"] is True  # the fp32 engine was built once
    for r in results:
        assert r["latency_device_ms"]["median"] <= r["latency_ms"]["median"]
