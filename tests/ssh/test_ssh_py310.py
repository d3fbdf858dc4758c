"""`edgeprof trust` (and `deploy`) from a Python 3.10 host without torch, against a loopback sshd.

The 3.10 host part of tests/test_py310.py that needs this folder's sshd fixtures; EDGEPROF_PY310 as there.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from sshd import SshServer, write_board

pytestmark = pytest.mark.ssh
PY310 = os.environ.get("EDGEPROF_PY310")


@pytest.mark.skipif(not PY310, reason="set EDGEPROF_PY310 to a Python 3.10 interpreter (make .venv310/.installed)")
def test_trust_and_deploy_under_310(sshd: SshServer, user_key: Path, tmp_path: Path) -> None:
    assert PY310 is not None
    edgeprof = str(Path(PY310).parent / "edgeprof")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([edgeprof, *args], cwd=tmp_path, env=os.environ.copy(), capture_output=True,
                              text=True, timeout=300, check=False)

    board = write_board(tmp_path, sshd, "orin", user_key, trusted=False)
    r = run("trust", str(board), "--yes", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert (rep["state"], rep["recorded"]) == ("trusted", True)
    assert f"[127.0.0.1]:{sshd.port}" in (tmp_path / "known_hosts-orin").read_text()
    r = run("deploy", str(board), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["agent_uploaded"] is True
