"""benchmarks/comfort_zone_gpu.sh, the Comfort Zone on a real CUDA GPU (batch 1, ϕ up to 4): refused with a clear
message on a machine without one, and run whole where a GPU is (marker `gpu`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "comfort_zone_gpu.sh"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def run(tmp_path: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out")}
    return subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, check=False,
                          timeout=timeout)


def test_the_script_parses_and_refuses_without_a_gpu(tmp_path: Path) -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, check=False).returncode == 0
    if cuda_available():
        pytest.skip("this machine has a CUDA GPU: the gpu-marked test runs the script")
    r = run(tmp_path, 120)
    assert r.returncode == 1 and "no CUDA backend" in r.stderr, r.stderr
    assert not (tmp_path / "out" / "cz.db").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU on this machine")
def test_the_script_runs_both_sweeps_on_the_gpu(tmp_path: Path) -> None:
    r = run(tmp_path, 900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "conv sweep" in r.stdout and "chosen phi" in r.stdout
    for png in ("conv/conv_sweep.png", "width/width_sweep.png", "conv/roofline_conv.png"):
        assert (tmp_path / "out" / png).stat().st_size > 10_000
