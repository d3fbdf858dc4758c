"""The SSH transport against a real OpenSSH server on loopback (marker `ssh`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sshd import FAST, keygen, write_board

from profiler.config import load_config
from profiler.session import profile
from profiler.store import Store
from profiler.transports.base import TransportError
from profiler.transports.ssh import AuthError, HostKeyError, SSHTransport, check_relpath
from spaces import create_space

pytestmark = pytest.mark.ssh
REPO = Path(__file__).resolve().parents[2]


def edgeprof(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=os.environ.copy(), check=False)


def test_deploy_then_redeploy_is_a_no_op(sshd, user_key, tmp_path):
    board = write_board(tmp_path, sshd, "xav", user_key)
    r = edgeprof("deploy", str(board), "--json")
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert first["agent_uploaded"] is True
    assert first["backends"]["onnxruntime"]["available"] is True
    assert first["python"]["version"].startswith("3.")
    assert first["missing"] == []
    agent_dir = tmp_path / "remote-xav" / "agent" / first["agent_hash"]
    assert (agent_dir / "agents" / "runner.py").exists() and (agent_dir / ".complete").exists()
    mtime = (agent_dir / "agents" / "runner.py").stat().st_mtime
    again = json.loads(edgeprof("deploy", str(board), "--json").stdout)
    assert again["agent_uploaded"] is False and again["agent_hash"] == first["agent_hash"]
    assert (agent_dir / "agents" / "runner.py").stat().st_mtime == mtime


def test_profile_over_ssh_and_rerun(sshd, user_key, tmp_path):
    board = write_board(tmp_path, sshd, "nano", user_key)
    db = str(tmp_path / "x.db")
    r = edgeprof("profile", str(board), "--space", "nb201", "--n", "3", "--db", db, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert (rep["measured_ok"], rep["measured_error"]) == (3, 0)
    assert len(list((tmp_path / "remote-nano" / "models").glob("*.onnx"))) == 3
    s = json.loads(edgeprof("dataset", "summary", "--db", db, "--json").stdout)
    (g,) = s["groups"]
    assert (g["device"], g["ok"]) == ("nano", 3)
    r2 = json.loads(edgeprof("profile", str(board), "--space", "nb201", "--n", "4", "--db", db, "--json").stdout)
    assert (r2["already_measured"], r2["measured_ok"]) == (3, 1)


def test_unknown_host_key_is_refused_until_trusted(sshd, user_key, tmp_path):
    board = write_board(tmp_path, sshd, "tx2", user_key, trusted=False)
    r = edgeprof("deploy", str(board))
    assert r.returncode == 1
    assert "is not in" in r.stderr and "edgeprof trust" in r.stderr and "SHA256:" in r.stderr
    t = edgeprof("trust", str(board), "--json")  # no --yes: shows, records nothing
    rep = json.loads(t.stdout)
    assert t.returncode == 1 and rep["state"] == "unknown" and rep["recorded"] is False
    expected = subprocess.run(["ssh-keygen", "-lf", str(sshd.host_key.with_suffix(".pub"))], capture_output=True,
                              text=True, check=True).stdout.split()[1]
    assert rep["fingerprint"] == expected  # the same fingerprint OpenSSH shows
    t = edgeprof("trust", str(board), "--yes", "--json")
    assert t.returncode == 0 and json.loads(t.stdout)["recorded"] is True
    assert edgeprof("deploy", str(board)).returncode == 0
    t = edgeprof("trust", str(board), "--json")
    assert json.loads(t.stdout)["state"] == "trusted"


def test_changed_host_key_is_refused(sshd, user_key, tmp_path):
    board = write_board(tmp_path, sshd, "orin", user_key)
    other = keygen(tmp_path / "other_host_key")
    known = tmp_path / "known_hosts-orin"
    known.write_text(f"[127.0.0.1]:{sshd.port} " + " ".join(other.with_suffix(".pub").read_text().split()[:2]) + "\n")
    with pytest.raises(HostKeyError, match="CHANGED"), SSHTransport(load_config(board)) as t:
        t.prepare()
    r = edgeprof("trust", str(board), "--yes", "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["state"] == "changed"


def test_wrong_user_key_is_a_clear_authentication_error(sshd, user_key, tmp_path):
    stranger = keygen(tmp_path / "stranger")
    board = write_board(tmp_path, sshd, "xav2", stranger)
    with pytest.raises(AuthError, match="authentication failed .* tried .*stranger"), \
            SSHTransport(load_config(board)) as t:
        t.prepare()
    r = edgeprof("deploy", str(board))
    assert r.returncode == 1 and "authorized_keys" in r.stderr


def test_connection_cut_mid_job_resumes_with_every_measurement_once(sshd, user_key, tmp_path):
    n = 6
    slow = FAST.replace("warmup_min_s = 0.05", "warmup_min_s = 0.6")  # the job outlives the cut
    board = write_board(tmp_path, sshd, "flaky", user_key, protocol=slow)
    config = load_config(board)
    db = tmp_path / "x.db"
    cuts: list[int] = []

    def cutter() -> None:
        """Cut every connection once the first result is in, while the job is still running."""
        deadline = time.time() + 120
        while time.time() < deadline:
            with Store(db) as s:
                if s.counts()["measurements"] >= 1:
                    cuts.append(sshd.cut_connections())
                    return
            time.sleep(0.2)

    with Store(db) as store:
        th = threading.Thread(target=cutter)
        th.start()
        rep = profile(config, create_space("nb201"), n=n, seed=1, batch=1, store=store)
        th.join()
        assert cuts and cuts[0] >= 1, "the test must really cut the link"
        assert rep.reconnects >= 1
        assert rep.ok + len(rep.errors) == n and rep.ok == n
        rows = store.db.execute("SELECT m.arch_id, COUNT(*) FROM measurements x JOIN models m "
                                "ON m.sha256 = x.model_sha256 GROUP BY m.arch_id").fetchall()
        assert len(rows) == n and all(c == 1 for _, c in rows)


def test_host_crash_mid_job_rerun_collects_board_results(sshd, user_key, tmp_path):
    """The host dies mid-job; the board keeps measuring; the rerun follows the running job, no duplicates."""
    n = 5
    slow = FAST.replace("warmup_min_s = 0.05", "warmup_min_s = 0.6")
    board = write_board(tmp_path, sshd, "crash", user_key, protocol=slow)
    db = tmp_path / "x.db"
    args = [sys.executable, "-m", "edgeprof", "profile", str(board), "--space", "nb201", "--n", str(n),
            "--db", str(db), "-q"]
    p = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = []
    deadline = time.time() + 120
    while time.time() < deadline and not results:
        results = list((tmp_path / "remote-crash" / "jobs").glob("*/results.jsonl"))
        time.sleep(0.2)
    p.kill()  # no cleanup at all, as in a host crash
    p.wait()
    r = subprocess.run(args + ["--json"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["resumed_jobs"], "the rerun must collect the job the dead host left on the board"
    with Store(db) as s:
        rows = s.db.execute("SELECT m.arch_id, COUNT(*) FROM measurements x JOIN models m "
                            "ON m.sha256 = x.model_sha256 WHERE x.status='ok' GROUP BY m.arch_id").fetchall()
    assert len(rows) == n and all(c == 1 for _, c in rows)


def test_two_boards_in_parallel(sshd_factory, user_key, tmp_path):
    a = write_board(tmp_path, sshd_factory("a"), "board-a", user_key)
    b = write_board(tmp_path, sshd_factory("b"), "board-b", user_key)
    broken = tmp_path / "board-c.toml"
    text = a.read_text().replace('name = "board-a"', 'name = "board-c"')
    text = re.sub(r"(?m)^port = \d+$", "port = 1", text)  # nothing listens there
    broken.write_text(text.replace("reconnect_max_s = 60", "reconnect_max_s = 1"))
    db = str(tmp_path / "x.db")
    r = edgeprof("profile", f"{a},{b},{broken}", "--space", "nb201", "--n", "3", "--db", db, "--json")
    assert r.returncode == 1, r.stderr  # one board failed
    boards = {x["device"]: x for x in json.loads(r.stdout)["boards"]}
    assert boards["board-a"]["measured_ok"] == 3 and boards["board-b"]["measured_ok"] == 3
    assert boards["board-a"]["models_per_hour"] > 0 and boards["board-a"]["remaining"] == 0
    assert boards["board-c"]["status"] == "failed" and "cannot reach" in boards["board-c"]["error"]
    s = json.loads(edgeprof("dataset", "summary", "--db", db, "--json").stdout)
    assert {(g["device"], g["ok"]) for g in s["groups"]} == {("board-a", 3), ("board-b", 3)}


@pytest.mark.parametrize("key, value", [
    ("python", "python3; touch {marker}"),
    ("python", "$(touch {marker})"),
    ("workdir", "w`touch {marker}`"),
    ("workdir", "w'; touch {marker}; echo '"),
])
def test_hostile_config_values_never_run_as_shell(sshd, user_key, tmp_path, key, value):
    marker = tmp_path / "pwned"
    board = write_board(tmp_path, sshd, "evil", user_key)
    text = board.read_text()
    hostile = value.format(marker=marker).replace("\\", "\\\\").replace('"', '\\"')
    lines = [f'{key} = "{hostile}"' if line.startswith(f"{key} = ") else line for line in text.splitlines()]
    board.write_text("\n".join(lines) + "\n")
    with SSHTransport(load_config(board)) as t:
        try:
            t.prepare()
        except TransportError:
            pass  # refusing to run is fine; running the injected command is not
    time.sleep(0.3)
    assert not marker.exists()


def test_remote_paths_stay_inside_the_work_folder():
    for bad in ("../x", "/etc/passwd", "jobs/../../x", "a//b", "", "jobs/$(x)", "jobs/a b"):
        with pytest.raises(TransportError, match="inside the work folder"):
            check_relpath(bad)
    assert check_relpath("jobs/20261122T1-dev-abc/results.jsonl")


PY36 = os.environ.get("EDGEPROF_PY36")


@pytest.mark.skipif(not PY36, reason="set EDGEPROF_PY36 to a Python 3.6 with numpy and onnxruntime (make test does)")
def test_profile_a_jetpack4_like_board_running_python36(sshd, user_key, tmp_path):
    """The board's agent runs under Python 3.6 + ONNX Runtime 1.10, as on JetPack 4.6 (Nano, TX2)."""
    probe = subprocess.run([PY36, "-c", "import onnxruntime"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("the Python 3.6 environment has no onnxruntime")
    board = write_board(tmp_path, sshd, "jp46", user_key)
    board.write_text(board.read_text().replace(f'python = "{sys.executable}"', f'python = "{PY36}"'))
    db = str(tmp_path / "x.db")
    r = edgeprof("profile", str(board), "--space", "nb201", "--n", "3", "--db", db, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["measured_ok"] == 3, r.stdout
    (g,) = json.loads(edgeprof("dataset", "summary", "--db", db, "--json").stdout)["groups"]
    assert g["environment"]["libraries"]["onnxruntime"].startswith("1.10")
