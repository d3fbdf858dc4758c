"""`edgeprof deploy` through the local transport: what the board offers and how to get what it lacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def deploy(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeprof", "deploy", str(config), "--json"], capture_output=True,
                          text=True, cwd=REPO, env=os.environ.copy(), check=False, timeout=300)


def test_deploy_reports_runtimes_and_missing_pieces_with_how_to_get_them(tmp_path: Path) -> None:
    ok = tmp_path / "cpu.toml"
    ok.write_text(f'name = "cpu"\nkind = "cpu"\n[connection]\nworkdir = "{tmp_path / "w"}"\n')
    r = deploy(ok)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["backends"]["onnxruntime"]["available"] and rep["missing"] == []
    assert rep["info"]["python"]["version"]

    trt = tmp_path / "trt.toml"
    trt.write_text(f'name = "trt"\nkind = "gpu"\n[connection]\nworkdir = "{tmp_path / "w"}"\n'
                   '[runtime]\nbackend = "tensorrt"\n[meter]\nkind = "rapl"\n')
    r = deploy(trt)
    assert r.returncode == 1
    missing = {m["what"]: m for m in json.loads(r.stdout)["missing"]}
    assert "backend tensorrt" in missing and "JetPack" in missing["backend tensorrt"]["how"]
    assert "power meter rapl" in missing and "5.10" in missing["power meter rapl"]["how"]
