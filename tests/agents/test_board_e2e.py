"""End to end: `python -m agents run` on a fake Jetson Nano tree (EDGEPROF_AGENT_ROOT), meter ina3221,
board setup through a fake sudo; the energy record carries POM_5V_IN, its rule, and net < gross."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from agent_helpers import REPO, read_lines, task, write_job
from fake_boards import NANO_I2C, install_tools, make_board

IDLE_MW = 4122  # POM_5V_IN in the fake tree (the Nano tegrastats line of board-formats.md 1.2.1)
BUSY_MW = 5300


def set_power(root, mw):
    path = Path(root) / NANO_I2C.lstrip("/") / "iio:device0/in_power0_input"
    tmp = path.with_name(".power.tmp")
    tmp.write_text(f"{mw}\n")
    os.replace(str(tmp), str(path))  # a reader sees the old or the new value, never half a file


def raise_power_when_the_task_starts(job_dir, root, stop):
    """The 'model' draws more than idle: raise POM_5V_IN once the runner starts the first task."""
    status = Path(job_dir) / "status.json"
    while not stop.is_set():
        try:
            if json.loads(status.read_text()).get("current") == "t1":
                set_power(root, BUSY_MW)
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.005)


def test_run_on_a_fake_nano(tmp_path):
    root = make_board(tmp_path / "board", "nano")
    bin_dir = install_tools(tmp_path / "bin", nvpmodel=True, jetson_clocks=True, sudo="ok")
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "m.bin").write_bytes(b"x")
    job = write_job(
        job_dir,
        [task("t1", "m.bin", {"x": [1, 8]}, backend="debug", options={"latency_ms": 2.0})],
        protocol={"max_time_s": 0.3},
        meter={"kind": "ina3221", "rail": None, "rate_hz": 200.0, "idle_s": 0.3},
        setup={"nvpmodel_mode": 0, "jetson_clocks": True},
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["EDGEPROF_AGENT_ROOT"] = root
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    stop = threading.Event()
    watcher = threading.Thread(target=raise_power_when_the_task_starts, args=(job_dir, root, stop))
    watcher.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "agents", "run", str(job)],
            cwd=str(tmp_path),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        stop.set()
        watcher.join()
    assert proc.returncode == 0, proc.stderr
    (r,) = read_lines(job_dir / "results.jsonl")
    assert r["status"] == "ok", r["error"]
    e = r["energy"]
    assert e["rail"] == "POM_5V_IN" and "jetson-stats #51" in e["rule"]
    assert e["idle_power_mw"] == pytest.approx(IDLE_MW)
    assert IDLE_MW <= e["mean_power_mw"] <= BUSY_MW
    assert 0 <= e["net_mj"] < e["gross_mj"]
    assert e["n_samples"] >= 5 and e["sample_rate_hz"] > 50 and isinstance(e["extended"], bool)
    assert e["n_runs"] >= r["latency_ms"]["n"]
    env_rec = r["environment"]
    assert env_rec["setup"]["applied"] is True
    assert env_rec["setup"]["after"]["nvpmodel"]["mode"] == "MAXN"
    assert env_rec["setup"]["after"]["jetson_clocks"]["clocks_locked"] is True
    assert env_rec["idle_power"]["rail"] == "POM_5V_IN" and env_rec["idle_power"]["n_samples"] >= 20
    assert env_rec["power_meter"]["channels"][0]["device"] == "6-0040"
    assert env_rec["l4t"] == "32.7.1" and env_rec["soc"] == "tegra210"
    assert env_rec["emc"]["cur_hz"] == 1600000000
    assert not [w for w in r["warnings"] if "energy" in w or "setup" in w], r["warnings"]
