"""A start whose reply is lost: the board ran it, the link dropped, the host sends it again (marker `ssh`).

The cut is made by construction, not by timing: the first start command carries a suffix that, once the
board has done everything the start asked (and, in one case, once the runner has recorded its start), kills
the sshd process serving it. The host never gets the exit status, exactly as on a real drop, and resends.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from sshd import SshServer, write_board

from profiler.config import load_config
from profiler.session import profile
from profiler.store import Store
from profiler.transports.ssh import SSHTransport
from spaces import create_space

pytestmark = pytest.mark.ssh

BOARD_PYTHON = """#!/bin/sh
# The board's python for this test: it notes every runner launched and holds each one until the gate exists.
if [ "$1" = "-m" ] && [ "$2" = "agents" ] && [ "$3" = "run" ]; then
    echo $$ >> '{launches}'
    while [ ! -e '{gate}' ]; do sleep 0.05; done
fi
exec '{python}' "$@"
"""


class CutAfterStart(SSHTransport):
    """Drops the link from the board's side right after the first start command has run there.

    `board_waits_for` is a shell condition loop run on the board before the cut; `on_started` runs on the
    host once start() has returned (after its resend).
    """

    def __init__(self, config, board_waits_for: str = "true", on_started=lambda: None):
        super().__init__(config)
        self.board_waits_for = board_waits_for
        self.on_started = on_started
        self.cuts = 0

    def _exec(self, command: str, timeout: float = 120.0) -> tuple[int, str, str]:
        if "--start-token" in command and self.cuts == 0:
            self.cuts += 1
            # $PPID is the sshd process serving this command: killing it closes the connection before
            # the exit status is sent, after the start has done its work on the board.
            command = f"{command}; {self.board_waits_for}; kill -9 $PPID"
        return super()._exec(command, timeout)

    def start(self, job_id: str) -> None:
        super().start(job_id)
        self.on_started()


def _board(tmp_path: Path, sshd: SshServer, user_key: Path, name: str) -> tuple[Path, Path, Path]:
    """A board whose python is BOARD_PYTHON; returns (device config, launches file, gate file)."""
    launches, gate = tmp_path / "launches", tmp_path / "gate"
    script = tmp_path / "board-python"
    script.write_text(BOARD_PYTHON.format(launches=launches, gate=gate, python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    config = write_board(tmp_path, sshd, name, user_key)
    config.write_text(config.read_text().replace(f'python = "{sys.executable}"', f'python = "{script}"'))
    return config, launches, gate


@pytest.mark.parametrize("case", ["runner-recorded-before-resend", "resend-before-runner-started"])
def test_start_resent_after_a_cut_runs_the_job_once(sshd, user_key, tmp_path, case):
    n = 3
    config_path, launches, gate = _board(tmp_path, sshd, user_key, "cut")
    jobs = tmp_path / "remote-cut" / "jobs"
    if case == "runner-recorded-before-resend":
        # The runner runs at once; the link is cut only once it has recorded its start token: the resend
        # must find it and only follow it.
        gate.touch()
        waits = f"while ! ls {jobs}/*/runner.json >/dev/null 2>&1; do sleep 0.05; done"
        transport = CutAfterStart(load_config(config_path), board_waits_for=waits)
    else:
        # Runners are held before Python starts, so the resend finds no record and launches a second
        # runner; both are released together and race for the record: one measures, the other leaves.
        transport = CutAfterStart(load_config(config_path), on_started=gate.touch)
    with Store(tmp_path / "x.db") as store, transport:
        rep = profile(load_config(config_path), create_space("nb201"), n=n, seed=3, batch=1, store=store,
                      transport=transport)
        rows = store.db.execute("SELECT m.arch_id, COUNT(*) FROM measurements x JOIN models m "
                                "ON m.sha256 = x.model_sha256 WHERE x.status = 'ok' GROUP BY m.arch_id").fetchall()
    assert transport.cuts == 1 and transport.reconnects >= 1, "the link must really have been cut"
    assert (rep.ok, rep.errors, rep.interrupted) == (n, [], False)
    assert len(rows) == n and all(c == 1 for _, c in rows)  # every arch measured exactly once

    (job,) = jobs.iterdir()
    assert (job / "exit_status").read_text().strip() == "0"  # never the refused runner's 1 or 3
    record = json.loads((job / "runner.json").read_text())
    status = json.loads((job / "status.json").read_text())
    assert status["state"] == "finished" and status["pid"] == record["pid"]  # the recorded runner measured
    lines = [json.loads(x) for x in (job / "results.jsonl").read_text().splitlines()]
    assert sorted(r["task_id"] for r in lines) == [f"t{i:05d}" for i in range(n)]  # one line per task
    launched = launches.read_text().split()
    refused = (job / "agent.log").read_text().count("already started with this start token")
    if case == "runner-recorded-before-resend":
        assert (len(launched), refused) == (1, 0)  # the resend only followed
    else:
        assert (len(launched), refused) == (2, 1)  # the second runner left without touching the job
