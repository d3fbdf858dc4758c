"""A plugin backend and meter reach a board over SSH: shipped in the agent bundle, imported there."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sshd import FAST, SshServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the plugin sources live with the local test
from test_plugins_agent import write_plugins

from agents.plugins import BUNDLE_DIR

pytestmark = pytest.mark.ssh


def test_profile_over_ssh_with_a_plugin_backend_and_meter(sshd: SshServer, user_key: Path, tmp_path: Path) -> None:
    write_plugins(tmp_path)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_public_key()}\n")
    config = tmp_path / "plugin-board.toml"
    config.write_text(f"""
name = "plugin-board"
kind = "cpu"
[connection]
transport = "ssh"
host = "127.0.0.1"
port = {sshd.port}
user = "{sshd.user}"
identity_file = "{user_key}"
known_hosts = "{known}"
workdir = "{tmp_path / 'remote'}"
python = "{sys.executable}"
[runtime]
backend = "numpy-matmul"
[runtime.options]
size = 32
[meter]
kind = "constant"
rate_hz = 200
idle_s = 0.2
[meter.options]
watts = 2.0
[agent]
plugins = ["plugins/numpy_backend.py", "plugins/constant_meter.py"]
{FAST}
""")
    db = tmp_path / "x.db"
    r = subprocess.run([sys.executable, "-m", "edgeprof", "profile", str(config), "--space", "nb201", "--n", "2",
                        "--db", str(db), "--json"], capture_output=True, text=True, check=False, timeout=300,
                       cwd=tmp_path, env=os.environ.copy())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["measured_ok"] == 2
    rows = sqlite3.connect(db).execute("SELECT backend, status, energy, backend_info FROM measurements").fetchall()
    assert [(b, s) for b, s, _, _ in rows] == [("numpy-matmul", "ok")] * 2
    assert all(json.loads(e)["mean_power_mw"] == pytest.approx(2000.0) for _, _, e, _ in rows)
    assert all(json.loads(i)["size"] == 32 for _, _, _, i in rows)
    (bundle,) = [p for p in (tmp_path / "remote" / "agent").iterdir() if p.is_dir()]
    assert sorted(p.name for p in (bundle / BUNDLE_DIR).glob("*.py")) == ["constant_meter.py", "numpy_backend.py"]
