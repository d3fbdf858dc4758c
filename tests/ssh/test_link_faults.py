"""A link cut anywhere never aborts a run, and only a board that answered 'gone' makes a 255 (marker `ssh`).

The cuts are made by construction, not by timing: a chosen remote command carries a `kill -9 $PPID`
that kills the sshd process serving it (before it prints, or after it ran and before its exit status is
sent), or the host kills every sshd session just before an SFTP read. Each cut is counted, so a test
also fails when a cut did not happen.
"""

from __future__ import annotations

import json
import os
import signal
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
    "poll-silent": (lambda c: "a=running" in c, "before"),  # no output, no exit status
    "poll-answered": (lambda c: "a=running" in c, "after"),  # the answer arrives, its exit status does not
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
        # A damaged exit_status (power lost between the wrapper's write and its rename, or garbage) is the
        # board's answer, not a dropped link: the job ended (255) unless one of its processes is alive.
        for i, damaged in enumerate([b"", b"\n", b"oops\n", b"\0\0\0\0", b"7\n8\n", b"300\n", b"-1\n"]):
            folder = _job_folder(tmp_path, f"damaged{i}")
            (folder / "exit_status").write_bytes(damaged)
            (folder / "agent.pid").write_text(f"{dead.pid}\n")
            assert t.finished(f"damaged{i}") == 255, damaged
            (folder / "agent.pid").write_text(f"{sshd.proc.pid}\n")
            assert t.finished(f"damaged{i}") is None, damaged
        # A zombie (an orphaned wrapper init has not reaped yet) is not alive
        zombie = subprocess.Popen(["true"])
        deadline = time.monotonic() + 30
        while Path(f"/proc/{zombie.pid}/stat").read_text().split()[2] != "Z":
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.01)
        undead = _job_folder(tmp_path, "zombie")
        (undead / "agent.pid").write_text(f"{zombie.pid}\n")
        assert t.finished("zombie") == 255
        zombie.wait()
        assert t.reconnects == 0


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


@pytest.mark.parametrize("damaged", [b"", b"\0\0\0\0"], ids=["empty", "zeroed"])
def test_a_damaged_exit_status_does_not_stop_later_runs(sshd, user_key, tmp_path, damaged):
    """A board that lost power before the host collected a job: the job's exit_status is empty or zeroed.
    The next run collects the job (255: ended without a valid status), marks it and measures its own."""
    config = load_config(write_board(tmp_path, sshd, "dmg", user_key))
    space = create_space("nb201")
    with Store(tmp_path / "x.db") as store:
        with SSHTransport(config) as t:
            first = profile(config, space, n=2, seed=5, batch=1, store=store, transport=t)
        assert (first.ok, first.errors) == (2, [])
        (job,) = (tmp_path / "remote-dmg" / "jobs").iterdir()
        (job / "ingested").unlink()  # as if the host never got to collect it
        (job / "exit_status").write_bytes(damaged)
        with SSHTransport(config) as t:
            rep = profile(config, space, n=3, seed=5, batch=1, store=store, transport=t)
            assert t.reconnects == 0
        assert (rep.ok, rep.errors, rep.interrupted) == (1, [], False)
        assert stored_once(store, 3)
    assert (job / "ingested").exists()


def test_an_sftp_failure_on_a_link_that_answers_is_an_error_not_a_drop(sshd, user_key, tmp_path):
    """paramiko gives SSH_FX_FAILURE (a full disk; here a folder where the file goes) as an OSError without an
    errno, like a closed channel: the link still answers, so it is the board's answer, said at once with the
    remote path, not retried for reconnect_max_s (60 s here)."""
    with SSHTransport(load_config(write_board(tmp_path, sshd, "sftp", user_key))) as t:
        t.prepare()
        job = tmp_path / "remote-sftp" / "jobs" / "j1"
        (job / "ingested").mkdir(parents=True)
        t0 = time.monotonic()
        with pytest.raises(TransportError, match=rf"marking j1 on .*: the board's SFTP server failed on "
                                                 rf"{job / 'ingested'}: Failure \(a full disk"):
            t.mark_ingested("j1")
        model = tmp_path / f"{'ab' * 32}.onnx"
        model.write_bytes(b"onnx" * 50_000)
        part = tmp_path / "remote-sftp" / "models" / f"{model.name}.part"
        part.mkdir()
        with pytest.raises(TransportError, match=rf"uploading model abababababab .*failed on {part}: Failure"):
            t.put_model(model)
        assert time.monotonic() - t0 < 10 and t.reconnects == 0
        # The same OSError from an SFTP channel that closed under us is a drop: reconnected, then it works
        assert t.sftp is not None
        t.sftp.get_channel().close()
        part.rmdir()
        t.put_model(model)
        assert t.reconnects == 1
        assert (tmp_path / "remote-sftp" / "models" / model.name).read_bytes() == model.read_bytes()


def _session_processes(server: SshServer) -> list[int]:
    """Every process under the sshd listener (the sessions, their privilege-separated children and the SFTP
    servers), not the listener: stopping them silences the links while new connections are still served."""
    assert server.proc is not None
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
    found, frontier = [], [server.proc.pid]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += children
        frontier = children
    return found


def test_an_sftp_read_on_a_silent_link_times_out_and_reconnects(sshd, user_key, tmp_path, monkeypatch):
    """A Wi-Fi drop without a TCP reset: the board's side goes silent (its sshd session is stopped), TCP stays
    up. Without a timeout on the SFTP channel the read would block until TCP gives up (~15 min)."""
    monkeypatch.setattr("profiler.transports.ssh_hosts.SFTP_TIMEOUT_S", 1.0)
    with SSHTransport(load_config(write_board(tmp_path, sshd, "silent", user_key))) as t:
        t.prepare()
        job = tmp_path / "remote-silent" / "jobs" / "j1"
        job.mkdir(parents=True)
        (job / "results.jsonl").write_bytes(b'{"task_id": "t1"}\n')
        stopped = _session_processes(sshd)
        assert stopped, "no sshd session to silence"
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            assert t.read_results("j1", 0) == b'{"task_id": "t1"}\n'
            elapsed = time.monotonic() - t0
        finally:
            for pid in stopped:
                try:
                    os.kill(pid, signal.SIGKILL)  # a stopped process still takes SIGKILL
                except ProcessLookupError:
                    pass
        assert t.reconnects >= 1
        assert elapsed < 30, f"the silent read took {elapsed:.1f} s"
