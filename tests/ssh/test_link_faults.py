"""A link cut anywhere never aborts a run, and only a board that answered 'gone' makes a 255 (marker `ssh`).

The cuts are made by construction, not by timing: a chosen remote command carries a `kill -9 $PPID`
that kills the sshd process serving it (before it prints, or after it ran and before its exit status is
sent), or the host kills every sshd session just before an SFTP read. Each cut is counted, so a test
also fails when a cut did not happen.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sshd import SshServer, write_board

from profiler.config import load_config
from profiler.session import profile
from profiler.store import Store
from profiler.transports.base import TransportError
from profiler.transports.ssh import SSHTransport
from spaces import create_space

pytestmark = pytest.mark.ssh
REPO = Path(__file__).resolve().parents[2]

# point -> (how to recognise its remote command, where the kill goes)
EXEC_POINTS = {
    "prepare": (lambda c: c.startswith("mkdir") and "/agent" in c, "after"),
    "python": (lambda c: "version_info" in c, "after"),
    "upload": (lambda c: "tarfile" in c, "after"),
    "put_job": (lambda c: c.startswith("mkdir") and "/jobs/" in c, "after"),
    "start": (lambda c: "--start-token" in c, "after"),
    "poll-silent": (lambda c: "echo running" in c, "before"),  # no output, no exit status
    "poll-answered": (lambda c: "echo running" in c, "after"),  # the answer arrives, its exit status does not
}


class Cutting(SSHTransport):
    """Cuts the link at the points of `plan` (point -> how many successive calls to cut)."""

    def __init__(self, config, server: SshServer, plan: dict[str, int]):
        super().__init__(config)
        self.server = server
        self.plan = dict(plan)
        self.cuts: Counter[str] = Counter()

    def _take(self, point: str) -> bool:
        if self.plan.get(point, 0) > 0:
            self.plan[point] -= 1
            self.cuts[point] += 1
            return True
        return False

    def _exec(self, command: str, timeout: float = 120.0) -> tuple[int, str, str]:
        for point, (matches, where) in EXEC_POINTS.items():
            if matches(command) and self._take(point):
                # $PPID is the sshd process serving this command: killing it drops the connection
                command = f"kill -9 $PPID; {command}" if where == "before" else f"{command}; kill -9 $PPID"
                break
        return super()._exec(command, timeout)

    def read_results(self, job_id: str, offset: int) -> bytes:
        if self._take("read"):
            assert self.server.cut_connections() >= 1
        return super().read_results(job_id, offset)


def stored_once(store: Store, n: int) -> bool:
    rows = store.db.execute("SELECT m.arch_id, COUNT(*) FROM measurements x JOIN models m "
                            "ON m.sha256 = x.model_sha256 WHERE x.status = 'ok' GROUP BY m.arch_id").fetchall()
    return len(rows) == n and all(c == 1 for _, c in rows)


@pytest.mark.parametrize("plan", [
    {"poll-silent": 1},
    {"poll-answered": 1},
    {"put_job": 1},
    {"read": 1},
    # a storm: every step of a run cut at least once, the poll and the read several times in a row
    {"prepare": 1, "python": 1, "upload": 1, "put_job": 1, "start": 1, "poll-silent": 2, "poll-answered": 1,
     "read": 2},
], ids=["poll-silent", "poll-answered", "put_job", "read", "storm"])
def test_profile_completes_through_cuts(sshd, user_key, tmp_path, plan):
    n = 3
    config = load_config(write_board(tmp_path, sshd, "cut", user_key))
    transport = Cutting(config, sshd, plan)
    with Store(tmp_path / "x.db") as store, transport:
        rep = profile(config, create_space("nb201"), n=n, seed=5, batch=1, store=store, transport=transport)
        assert stored_once(store, n), "every architecture stored exactly once"
    assert transport.cuts == Counter(plan), f"planned cuts not all made: {transport.cuts} vs {plan}"
    assert transport.reconnects >= sum(plan.values())
    assert (rep.ok, rep.errors, rep.interrupted) == (n, [], False)
    (job,) = (tmp_path / "remote-cut" / "jobs").iterdir()
    assert (job / "exit_status").read_text().strip() == "0"
    assert len((job / "results.jsonl").read_text().splitlines()) == n


def _job_folder(tmp_path: Path, job_id: str) -> Path:
    d = tmp_path / "remote-probe" / "jobs" / job_id
    d.mkdir(parents=True)
    return d


def test_only_a_board_that_answers_gone_is_255(sshd, user_key, tmp_path):
    with SSHTransport(load_config(write_board(tmp_path, sshd, "probe", user_key))) as t:
        t.prepare()
        dead = subprocess.Popen(["true"])
        dead.wait()
        gone = _job_folder(tmp_path, "gone")
        (gone / "agent.pid").write_text(f"{dead.pid}\n")
        assert t.finished("gone") == 255  # the board answered: no exit status and no live process
        running = _job_folder(tmp_path, "running")
        (running / "agent.pid").write_text(f"{sshd.proc.pid}\n")  # a process that is alive
        assert t.finished("running") is None
        ended = _job_folder(tmp_path, "ended")
        (ended / "exit_status").write_text("7\n")
        assert t.finished("ended") == 7
        assert t.reconnects == 0
        # A garbled answer is no verdict: retried as a broken link, then an error that shows it, never 255
        garbled = _job_folder(tmp_path, "garbled")
        (garbled / "exit_status").write_text("oops\n")
        t.reconnect_max_s = 1
        with pytest.raises(TransportError, match="the job probe answered 'oops'"):
            t.finished("garbled")
        assert t.reconnects >= 1


def test_a_command_killed_by_a_signal_is_its_own_failure_not_a_drop(sshd, user_key, tmp_path):
    with SSHTransport(load_config(write_board(tmp_path, sshd, "sig", user_key))) as t:
        rc, _, _ = t.run(["sh", "-c", "kill -9 $$"], "running a command that kills itself")
        assert rc == -1 and t.reconnects == 0  # the probe answered: the link is fine, nothing is rerun
        marker = tmp_path / "ran"
        rc, _, _ = t.run(["sh", "-c", f"echo x >> {marker}; kill -9 $$"], "again")
        assert rc == -1 and marker.read_text() == "x\n"  # ran exactly once


def test_a_link_that_worked_waits_for_the_board_to_come_back(sshd, user_key, tmp_path):
    with SSHTransport(load_config(write_board(tmp_path, sshd, "reboot", user_key))) as t:
        t.prepare()
        sshd.stop()  # the board reboots: sessions cut, nothing listens for a while
        restarted = threading.Timer(1.0, sshd.start)
        restarted.start()
        try:
            assert t.list_jobs() == []
        finally:
            restarted.join()
        assert t.reconnects >= 1
        sshd.stop()
        t.reconnect_max_s = 2
        t0 = time.monotonic()
        with pytest.raises(TransportError, match=r"lost while listing jobs, and not back within 2 s: .*"
                                                 r"connection refused"):
            t.list_jobs()
        assert time.monotonic() - t0 >= 2  # backoff, not a first-connect refusal


QUIET = """
import logging, sys
from profiler.config import load_config
from profiler.transports.ssh import SSHTransport
if sys.argv[1] == "transport":
    SSHTransport(load_config(sys.argv[2]))
logging.getLogger("paramiko.transport").error("Socket exception: Connection reset by peer (104)")
"""


def test_paramiko_noise_stays_off_stderr(sshd, user_key, tmp_path):
    board = write_board(tmp_path, sshd, "quiet", user_key)

    def stderr(mode: str) -> str:
        return subprocess.run([sys.executable, "-c", QUIET, mode, str(board)], capture_output=True, text=True,
                              cwd=REPO, timeout=120, check=True).stderr

    assert "Socket exception" in stderr("bare")  # what Python prints when nobody keeps paramiko quiet
    assert "Socket exception" not in stderr("transport")


def test_job_json_is_what_was_sent_after_a_cut_during_put_job(sshd, user_key, tmp_path):
    config = load_config(write_board(tmp_path, sshd, "putjob", user_key))
    with Cutting(config, sshd, {"put_job": 1}) as t:
        t.prepare()
        text = json.dumps({"job_id": "j1", "tasks": []})
        t.put_job("j1", text)
        assert t.cuts["put_job"] == 1 and t.reconnects >= 1
        assert (tmp_path / "remote-putjob" / "jobs" / "j1" / "job.json").read_text() == text
