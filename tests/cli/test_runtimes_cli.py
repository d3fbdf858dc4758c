"""Runtimes seen from the host: per-layer profiles, the torch backend fed from the space itself, board setup in jobs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cli_helpers import run_here

from profiler.config import load_config, parse_config
from profiler.jobs import ModelTask, build_job

REPO = Path(__file__).resolve().parents[2]


def edgeprof(*args: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (cli_helpers.run_here): these tests check exit codes and output, not startup."""
    return run_here(*args)


def test_layer_profiles_map_onto_the_space(fast_cpu_config: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    r = edgeprof("profile", str(fast_cpu_config), "--space", "nb201", "--n", "2", "--layers", "5", "--db", db, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["measured_ok"] == 2
    t = edgeprof("dataset", "layers", "--db", db, "--device", "fast-cpu", "--space", "nb201", "--json")
    assert t.returncode == 0, t.stderr
    table = json.loads(t.stdout)
    groups = {g["group"]: g for g in table["groups"]}
    assert table["models"] == 2
    assert {"stem", "classifier", "reduction1", "reduction2"} <= set(groups)
    assert any(k.startswith("cell0.") for k in groups)
    assert abs(sum(g["share"] for g in table["groups"]) - 1) < 0.01
    by_op = json.loads(edgeprof("dataset", "layers", "--db", db, "--device", "fast-cpu", "--space", "nb201",
                                "--by", "op_type", "--json").stdout)
    assert "Conv" in {g["group"] for g in by_op["groups"]}
    missing = edgeprof("dataset", "layers", "--db", db, "--device", "fast-cpu", "--space", "mbconv-small")
    assert missing.returncode == 2 and "--layers" in missing.stderr


def test_torch_backend_runs_the_space_module_eagerly(tmp_path: Path) -> None:
    cfg = tmp_path / "torch-cpu.toml"
    cfg.write_text(f'name = "torch-cpu"\nkind = "cpu"\n[connection]\nworkdir = "{tmp_path / "w"}"\n'
                   '[runtime]\nbackend = "torch"\n[runtime.options]\ndevice = "cpu"\nthreads = 1\n'
                   "[protocol]\nwarmup_min_runs = 2\nwarmup_min_s = 0.05\nmin_runs = 5\nmax_runs = 20\n"
                   "target_rel_ci = 0.05\n")
    db = str(tmp_path / "x.db")
    r = edgeprof("profile", str(cfg), "--space", "nb201", "--n", "2", "--db", db, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["measured_ok"] == 2, rep["errors"]
    assert sorted(p.suffix for p in (tmp_path / "w" / "models").iterdir()) == [".zip", ".zip"]
    (g,) = json.loads(edgeprof("dataset", "summary", "--db", db, "--json").stdout)["groups"]
    assert g["backend"] == "torch" and "torch" in g["environment"]["libraries"]


def test_setup_goes_into_the_job_only_when_configured() -> None:
    nano = load_config(REPO / "device_configs" / "nano.toml")
    job = build_job(nano, [ModelTask("a" * 64, (1, 3, 32, 32))], batch=1)
    assert job["setup"] == {"nvpmodel_mode": 0, "jetson_clocks": True}
    assert job["tasks"][0]["backend"] == "tensorrt" and job["tasks"][0]["options"]["workspace_mb"] == 512
    plain = parse_config({"name": "p", "kind": "cpu"})
    assert "setup" not in build_job(plain, [ModelTask("a" * 64, (1, 3, 32, 32))], batch=1)
