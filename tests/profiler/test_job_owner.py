"""A job belongs to the dataset that started it: another dataset sharing the board reports it, never takes it.

The drill of issue 10 on the local transport with real agent processes: dataset A's host is killed (-9) after
2 stored rows while its agent keeps measuring; dataset B profiles on the same board meanwhile; then A's rerun
collects what its agent measured while it was away and measures nothing twice.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from profiler.config import load_config
from profiler.session import Progress, profile
from profiler.store import Store
from spaces import create_space

REPO = Path(__file__).resolve().parents[2]
GATE_ENV = "EDGEPROF_TEST_GATE"
# The board's python: with $EDGEPROF_TEST_GATE (a folder) set, the runner measures 2 tasks, creates
# <gate>/holding and waits for <gate>/release (5 minutes at most) before the next task; without it, it
# is the plain agent. So the host can be killed, and another dataset can look at the board, mid-job.
GATED_AGENT = """
import os, runpy, sys, time

args = sys.argv[1:]
gate = os.environ.get("EDGEPROF_TEST_GATE")
if args[:3] != ["-m", "agents", "run"] or not gate:
    os.execv(sys.executable, [sys.executable, *args])
from agents import runner

measure = runner._JobRun.run_task

def run_task(self, task, idle_power_mw):
    self.measured = getattr(self, "measured", 0) + 1
    if self.measured == 3:
        open(os.path.join(gate, "holding"), "w").close()
        deadline = time.monotonic() + 300
        while not os.path.exists(os.path.join(gate, "release")) and time.monotonic() < deadline:
            time.sleep(0.05)
    return measure(self, task, idle_power_mw)

runner._JobRun.run_task = run_task
sys.argv = ["agents", *args[2:]]
runpy.run_module("agents", run_name="__main__", alter_sys=True)
"""


def _rows(db: Path) -> list[tuple[str, str, str]]:
    """(arch id, job id, status) of every measurement, or [] before the file has its tables."""
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT m.arch_id, x.job_id, x.status FROM measurements x JOIN models m "
                         "ON m.sha256 = x.model_sha256").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        c.close()


def _wait_for(condition, what: str, limit_s: float = 240) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.slow
def test_another_dataset_never_takes_a_job_and_the_owner_collects_it(fast_cpu_config: Path,
                                                                     tmp_path: Path) -> None:
    board_python = tmp_path / "board-python"
    launcher = tmp_path / "gated_agent.py"
    launcher.write_text(GATED_AGENT)
    board_python.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{launcher}' \"$@\"\n")
    board_python.chmod(0o755)
    fast_cpu_config.write_text(fast_cpu_config.read_text().replace(
        "[connection]\n", f'[connection]\npython = "{board_python}"\n'))
    gate = tmp_path / "gate"
    gate.mkdir()
    db_a, db_b = tmp_path / "A.db", tmp_path / "B.db"
    args_a = [sys.executable, "-m", "edgeprof", "profile", str(fast_cpu_config), "--space", "nb201", "--n", "10",
              "--seed", "301", "--db", str(db_a)]

    # dataset A: its host dies (-9, no cleanup) once 2 rows are stored; its agent holds the board
    host_a = subprocess.Popen(args_a + ["-q"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=dict(os.environ, **{GATE_ENV: str(gate)}))
    try:
        _wait_for(lambda: host_a.poll() is not None or ((gate / "holding").exists() and len(_rows(db_a)) >= 2),
                  "A's agent to hold after 2 stored rows")
        assert host_a.poll() is None, host_a.stderr.read().decode() if host_a.stderr else ""
        os.kill(host_a.pid, signal.SIGKILL)
    finally:
        host_a.kill()
        host_a.wait()
    (job_a,) = (tmp_path / "work" / "jobs").iterdir()
    assert json.loads((job_a / "job.json").read_text())["owner"]["db"] == str(db_a.resolve())
    kept = _rows(db_a)
    assert len(kept) == 2

    # dataset B on the same board: it sees A's job running, reports it, waits for the board, measures its own
    config = load_config(fast_cpu_config)
    waiting = threading.Event()
    progress = Progress(on_phase=lambda phase, total: waiting.set() if phase.startswith("waiting") else None)
    out: dict = {}

    def run_b() -> None:
        with Store(db_b) as store:
            out["report"] = profile(config, create_space("nb201"), n=3, seed=302, batch=1, store=store,
                                    progress=progress)

    b = threading.Thread(target=run_b)
    b.start()
    try:
        assert waiting.wait(120), "B must wait for A's running job, not follow it"
    finally:
        (gate / "release").touch()
        b.join(240)
    rep_b = out["report"]
    assert rep_b.foreign_jobs == [{"job_id": job_a.name, "db": str(db_a.resolve()), "host": rep_b.foreign_jobs[0]
                                   ["host"], "running": True, "same_dataset_id": False}]
    assert rep_b.resumed_jobs == [] and rep_b.collected == 0
    assert (rep_b.ok, rep_b.errors, rep_b.remaining) == (3, [], 0)
    assert not (job_a / "ingested").exists(), "another dataset must never mark the job ingested"
    rows_b = _rows(db_b)
    assert len(rows_b) == 3 and {j for _, j, _ in rows_b} == {rep_b.job_id}

    # A's rerun: collects what its agent measured while its host was gone, measures nothing it already had
    r = subprocess.run(args_a + ["--json"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    rep_a = json.loads(r.stdout)
    assert rep_a["resumed_jobs"] == [job_a.name]
    assert (rep_a["collected"], rep_a["already_measured"], rep_a["measured_ok"], rep_a["remaining"]) == (8, 2, 0, 0)
    assert rep_a["collected_jobs"] == [{"job_id": job_a.name, "rows": 8}] and rep_a["foreign_jobs"] == []
    assert "collecting" in r.stderr, "--json keeps its progress on stderr (stdout held only the JSON)"
    assert (job_a / "ingested").exists()
    rows_a = _rows(db_a)
    assert len(rows_a) == 10 and len({a for a, _, _ in rows_a}) == 10, "every arch exactly once"
    assert {j for _, j, _ in rows_a} == {job_a.name} and set(kept) <= set(rows_a)


def test_the_summary_says_what_was_collected_and_what_was_measured() -> None:
    from edgeprof.commands.profile import summary_line

    rep = {"device": "loop", "space": "nb201", "collected": 8, "collected_jobs": [{"job_id": "j1", "rows": 8}],
           "measured_ok": 2, "measured_error": 0, "already_measured": 0, "remaining": 0, "wall_s": 3.0}
    assert summary_line(rep) == ("loop / nb201: collected 8 from an earlier run (job j1), measured 2, 0 failed, "
                                 "0 already in the store, 3.0 s")
    rep.update(collected=0, collected_jobs=[], measured_ok=0, measured_error=1, remaining=1)
    assert summary_line(rep) == "loop / nb201: measured 0, 1 failed, 0 already in the store, 1 still to measure, 3.0 s"


def test_a_job_of_an_older_host_gives_only_this_datasets_lines(fast_cpu_config: Path, tmp_path: Path) -> None:
    """A job without an owner (written by an older host) keeps the old rule: lines whose model this store
    registered are taken, and the job is marked ingested only when no line was left out."""
    config = load_config(fast_cpu_config)
    space = create_space("nb201")
    with Store(tmp_path / "a.db") as a:
        assert profile(config, space, n=2, seed=1, batch=1, store=a).ok == 2
    (job,) = (tmp_path / "work" / "jobs").iterdir()
    doc = json.loads((job / "job.json").read_text())
    del doc["owner"]
    (job / "job.json").write_text(json.dumps(doc))
    (job / "ingested").unlink()
    with Store(tmp_path / "b.db") as b:
        rep = profile(config, space, n=1, seed=2, batch=1, store=b)
        assert (rep.ok, rep.collected, rep.resumed_jobs, rep.foreign_jobs) == (1, 0, [], [])
        assert len(b.rows()) == 1
    assert not (job / "ingested").exists(), "its lines are another dataset's: the job stays for it"
    with Store(tmp_path / "a.db") as a:  # the dataset that knows the models: nothing new, and now it is marked
        rep = profile(config, space, n=2, seed=1, batch=1, store=a)
        assert (rep.ok, rep.collected, rep.already_measured) == (0, 0, 2)
    assert (job / "ingested").exists()


@pytest.mark.slow
def test_a_job_started_after_the_sync_makes_the_other_wait_not_fail(fast_cpu_config: Path, tmp_path: Path) -> None:
    """Two datasets racing for one board: B looked at the board before A's job started, so B's own job finds
    the board busy; B waits for A's job to end and starts a new job, in the same run."""
    from profiler.transports.local import LocalTransport

    board_python = tmp_path / "board-python"
    launcher = tmp_path / "gated_agent.py"
    launcher.write_text(GATED_AGENT)
    board_python.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{launcher}' \"$@\"\n")
    board_python.chmod(0o755)
    fast_cpu_config.write_text(fast_cpu_config.read_text().replace(
        "[connection]\n", f'[connection]\npython = "{board_python}"\n'))
    gate = tmp_path / "gate"
    gate.mkdir()
    db_a = tmp_path / "A.db"
    host_a = subprocess.Popen([sys.executable, "-m", "edgeprof", "profile", str(fast_cpu_config), "--space", "nb201",
                               "--n", "4", "--seed", "301", "--db", str(db_a), "-q", "--json"], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, **{GATE_ENV: str(gate)}))

    class LateSight(LocalTransport):
        """B's view of the board: the first listing (its sync) comes before A's job was there."""

        listings = 0

        def list_jobs(self) -> list[str]:
            self.listings += 1
            return [] if self.listings == 1 else super().list_jobs()

    try:
        _wait_for(lambda: host_a.poll() is not None or (gate / "holding").exists(), "A's agent to hold")
        assert host_a.poll() is None
        config = load_config(fast_cpu_config)
        waiting = threading.Event()
        progress = Progress(on_phase=lambda phase, total: waiting.set() if phase.startswith("waiting") else None)
        out: dict = {}

        def run_b() -> None:
            with Store(tmp_path / "B.db") as store, LateSight(config) as t:
                out["report"] = profile(config, create_space("nb201"), n=2, seed=302, batch=1, store=store,
                                        progress=progress, transport=t)

        b = threading.Thread(target=run_b)
        b.start()
        try:
            assert waiting.wait(120), "B's job must find the board busy and wait"
        finally:
            (gate / "release").touch()
            b.join(240)
        stdout, stderr = host_a.communicate(timeout=240)
    finally:
        if host_a.poll() is None:
            host_a.kill()
            host_a.communicate()
    rep_b = out["report"]
    assert (rep_b.board_busy, rep_b.ok, rep_b.errors, rep_b.remaining) == (1, 2, [], 0)
    assert host_a.returncode == 0, stderr
    assert json.loads(stdout)["measured_ok"] == 4
    assert len(_rows(db_a)) == 4 and len(_rows(tmp_path / "B.db")) == 2
