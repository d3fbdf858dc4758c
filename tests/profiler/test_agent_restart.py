"""An agent killed mid-job (kill -9, an OOM kill) does not end the run: its tasks without a result line run in a
follow-up job of the same run, a bounded number of times, and a model that kills the agent every time it starts
ends the run with AgentFailed naming it once the other networks are measured.

Local transport, real agent subprocesses; the board's python is a launcher that holds or kills the runner at a
given task, so the kill lands at a known point (no timing luck).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from profiler.config import load_config
from profiler.session import AGENT_RESTARTS, AgentFailed, profile
from profiler.store import Store
from spaces import create_space, export_onnx

REPO = Path(__file__).resolve().parents[2]
HOLD_ENV, CRASH_ENV, KILL_ENV = "EDGEPROF_TEST_HOLD", "EDGEPROF_TEST_CRASH", "EDGEPROF_TEST_KILL_AT"
# The board's python. $EDGEPROF_TEST_HOLD (a folder): the first runner of the board measures 2 tasks, creates
# <folder>/holding and waits there (5 minutes at most) for the test to kill it; later runners do not hold.
# $EDGEPROF_TEST_CRASH (a folder): the model of the first runner's 2nd task is written to <folder>/sha, and
# every runner kills itself (SIGKILL) when a task of that model starts: a model that crashes the runtime.
# $EDGEPROF_TEST_KILL_AT ("<folder>:<n>"): the first runner kills itself when its n-th task starts, once.
LAUNCHER = """
import os, runpy, signal, sys, time

args = sys.argv[1:]
hold, crash = os.environ.get("EDGEPROF_TEST_HOLD"), os.environ.get("EDGEPROF_TEST_CRASH")
kill_at = os.environ.get("EDGEPROF_TEST_KILL_AT")
if args[:3] != ["-m", "agents", "run"] or not (hold or crash or kill_at):
    os.execv(sys.executable, [sys.executable, *args])
from agents import runner

measure = runner._JobRun.run_task

def run_task(self, task, idle_power_mw):
    self.started = getattr(self, "started", 0) + 1
    if hold and self.started == 3 and not os.path.exists(os.path.join(hold, "holding")):
        open(os.path.join(hold, "holding"), "w").close()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(0.05)
    if kill_at:
        folder, n = kill_at.rsplit(":", 1)
        if self.started == int(n) and not os.path.exists(os.path.join(folder, "killed")):
            open(os.path.join(folder, "killed"), "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
    if crash:
        marker = os.path.join(crash, "sha")
        if self.started == 2 and not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(task["model_sha256"])
        if os.path.exists(marker) and open(marker).read() == task["model_sha256"]:
            os.kill(os.getpid(), signal.SIGKILL)
    return measure(self, task, idle_power_mw)

runner._JobRun.run_task = run_task
sys.argv = ["agents", *args[2:]]
runpy.run_module("agents", run_name="__main__", alter_sys=True)
"""


def _board_python(config: Path, tmp_path: Path) -> None:
    launcher = tmp_path / "launcher.py"
    launcher.write_text(LAUNCHER)
    python = tmp_path / "board-python"
    python.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{launcher}' \"$@\"\n")
    python.chmod(0o755)
    config.write_text(config.read_text().replace("[connection]\n", f'[connection]\npython = "{python}"\n'))


def _rows(db: Path) -> list[tuple[str, str, str, str]]:
    """(arch id, model sha256, job id, status) of every measurement."""
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT m.arch_id, m.sha256, x.job_id, x.status FROM measurements x JOIN models m "
                         "ON m.sha256 = x.model_sha256").fetchall()
    finally:
        c.close()


def _board_lines(work: Path) -> list[dict]:
    return [json.loads(line) for r in sorted(work.glob("jobs/*/results.jsonl"))
            for line in r.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_a_killed_agent_is_started_again_and_the_run_completes(fast_cpu_config: Path, tmp_path: Path) -> None:
    _board_python(fast_cpu_config, tmp_path)
    hold = tmp_path / "hold"
    hold.mkdir()
    db, work = tmp_path / "d.db", tmp_path / "work"
    host = subprocess.Popen([sys.executable, "-m", "edgeprof", "profile", str(fast_cpu_config), "--space", "nb201",
                             "--n", "5", "--seed", "11", "--db", str(db), "--json"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **{HOLD_ENV: str(hold)}))
    try:
        deadline = time.monotonic() + 240
        while not (hold / "holding").exists():
            assert host.poll() is None, host.communicate()[1]
            assert time.monotonic() < deadline, "timed out waiting for the agent to hold after 2 tasks"
            time.sleep(0.05)
        (job,) = (work / "jobs").iterdir()
        runner = json.loads((job / "runner.json").read_text())["pid"]
        assert json.loads((job / "status.json").read_text())["pid"] == runner
        os.kill(runner, signal.SIGKILL)  # as an OOM kill would: no cleanup, no status written
        out, err = host.communicate(timeout=300)
    finally:
        host.kill()
        host.wait()
    assert host.returncode == 0, err
    rep = json.loads(out)
    assert (rep["agent_restarts"], rep["measured_ok"], rep["measured_error"], rep["remaining"]) == (1, 5, 0, 0)
    (restart_job,) = rep["restart_job_ids"]
    assert rep["job_id"] == job.name and restart_job != job.name
    first, second = (json.loads((work / "jobs" / j / "job.json").read_text()) for j in (job.name, restart_job))
    assert first["owner"] == second["owner"] and len(second["tasks"]) == 3, "only the tasks without a result line"
    rows = _rows(db)
    assert len(rows) == 5 and len({a for a, *_ in rows}) == 5 and {s for *_, s in rows} == {"ok"}
    assert sorted(j for _, _, j, _ in rows) == sorted([job.name] * 2 + [restart_job] * 3)
    shas = [r["model_sha256"] for r in _board_lines(work)]
    assert len(shas) == 5 == len(set(shas)), "the board measured every network once"

    # a rerun measures nothing and leaves the killed job ingested
    r = subprocess.run([sys.executable, "-m", "edgeprof", "profile", str(fast_cpu_config), "--space", "nb201",
                        "--n", "5", "--seed", "11", "--db", str(db), "--json"], cwd=REPO, capture_output=True,
                       text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    assert (again["already_measured"], again["measured_ok"], again["collected"]) == (5, 0, 0)
    assert again["agent_restarts"] == 0
    assert (job / "ingested").exists() and len(_rows(db)) == 5


@pytest.mark.slow
def test_a_model_that_kills_the_agent_every_time_ends_the_run_naming_it(fast_cpu_config: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _board_python(fast_cpu_config, tmp_path)
    crash = tmp_path / "crash"
    crash.mkdir()
    monkeypatch.setenv(CRASH_ENV, str(crash))
    db, work = tmp_path / "d.db", tmp_path / "work"
    with Store(db) as store, pytest.raises(AgentFailed) as failed:
        profile(load_config(fast_cpu_config), create_space("nb201"), n=4, seed=12, batch=1, store=store)
    sha = (crash / "sha").read_text()
    (arch,) = {a for a, s in sqlite3.connect(db).execute("SELECT arch_id, sha256 FROM models") if s == sha}
    message = str(failed.value)
    assert f"arch {arch}, model {sha[:12]}" in message and "crashes the runtime" in message, message
    jobs = sorted(p.name for p in (work / "jobs").iterdir())
    assert len(jobs) == 1 + AGENT_RESTARTS, "bounded: the first job and its restarts, no more"
    rows = _rows(db)
    assert len(rows) == 3 and sha not in {s for _, s, _, _ in rows} and {s for *_, s in rows} == {"ok"}
    assert len({a for a, *_ in rows}) == 3, "every other network measured once"


@pytest.mark.slow
def test_damaged_models_on_both_sides_of_a_killed_agent_are_all_resent(fast_cpu_config: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Models 3 and 7 are damaged on the board and the agent is killed as it starts model 5: the follow-up job
    numbers its tasks from t00000 again, so model 7 has model 3's task id there. Both are re-sent and measured."""
    _board_python(fast_cpu_config, tmp_path)
    kill = tmp_path / "kill"
    kill.mkdir()
    monkeypatch.setenv(KILL_ENV, f"{kill}:5")
    space = create_space("nb201")
    archs = space.sample_unique(8, np.random.default_rng(13))
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    damaged = {}
    for i in (2, 6):  # first job: t00002; the follow-up (tasks 5..8): t00002 again
        m = export_onnx(space, archs[i], tmp_path / "m")
        (work / "models" / f"{m.sha256}.onnx").write_bytes(b"\x08\x07garbage, not a protobuf")
        damaged[m.sha256] = i
    with Store(tmp_path / "d.db") as store:
        rep = profile(load_config(fast_cpu_config), space, n=0, seed=0, batch=1, store=store, archs=archs)
        assert (kill / "killed").exists()
        assert (rep.agent_restarts, rep.models_resent) == (1, 2)
        assert (rep.ok, rep.errors, rep.remaining) == (8, [], 0)
        assert len(store.measured_archs("fast-cpu", "nb201", "onnxruntime", "fp32", 1)) == 8
        assert {r["model_sha256"] for r in store.rows()} >= set(damaged)


def test_statuses_the_agent_sets_itself_are_not_restarted() -> None:
    from profiler.session import agent_killed, shell_status

    assert [agent_killed(shell_status(s)) for s in (-9, 137, 255, 139)] == [True] * 4
    assert [agent_killed(shell_status(s)) for s in (0, 1, 2, 3, 75, 130, 143, -15, -2)] == [False] * 9


def test_the_report_says_the_agent_was_started_again(capsys: pytest.CaptureFixture[str]) -> None:
    from edgeprof.commands.profile import print_report

    rep = {"device": "loop", "space": "nb201", "collected": 0, "collected_jobs": [], "measured_ok": 5,
           "measured_error": 0, "already_measured": 0, "remaining": 0, "wall_s": 3.0, "interrupted": False,
           "errors": [], "agent_restarts": 1, "restart_job_ids": ["j2"]}
    print_report(rep, "d.db")
    assert "the agent on the board was killed mid-job 1 time(s); its tasks without a result ran again in job(s) " \
           "j2" in " ".join(capsys.readouterr().err.split())
