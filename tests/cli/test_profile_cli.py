"""The CLI end to end on this CPU: real agent processes, real ONNX Runtime, a real SQLite file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import run_here

from profiler.config import load_config
from profiler.session import profile
from profiler.store import Store
from profiler.transports import TransportError
from profiler.transports.local import LocalTransport
from spaces import create_space

REPO = Path(__file__).resolve().parents[2]


def edgeprof(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The command in this process (cli_helpers.run_here): these tests check exit codes and output, not startup."""
    return run_here(*args)


def test_profile_summary_and_rerun(fast_cpu_config: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    r = edgeprof("profile", str(fast_cpu_config), "--space", "nb201", "--n", "3", "--db", db, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert (rep["measured_ok"], rep["measured_error"], rep["already_measured"]) == (3, 0, 0)

    s = edgeprof("dataset", "summary", "--db", db, "--json")
    assert s.returncode == 0, s.stderr
    (g,) = json.loads(s.stdout)["groups"]
    assert (g["device"], g["space"], g["ok"], g["error"]) == ("fast-cpu", "nb201", 3, 0)
    assert 0 < g["latency_ms"]["min"] <= g["latency_ms"]["median"] <= g["latency_ms"]["max"]
    assert g["runs_median"] >= 5
    env = g["environment"]
    assert env["cpu_count"] >= 1 and env["kernel"] and "onnxruntime" in env["libraries"]

    again = edgeprof("profile", str(fast_cpu_config), "--space", "nb201", "--n", "3", "--db", db, "--json")
    assert json.loads(again.stdout)["already_measured"] == 3
    more = edgeprof("profile", str(fast_cpu_config), "--space", "nb201", "--n", "4", "--db", db, "--json")
    rep = json.loads(more.stdout)
    assert (rep["already_measured"], rep["measured_ok"]) == (3, 1)

    out = tmp_path / "x.parquet"
    e = edgeprof("dataset", "export", str(out), "--db", db, "--json")
    assert e.returncode == 0 and json.loads(e.stdout)["rows"] == 4 and out.exists()


def test_invalid_config_exits_2_and_names_key(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text('name = "bad"\nkind = "cpu"\n[runtime]\nprecision = "fp64"\n')
    r = edgeprof("profile", str(p), "--space", "nb201", "--n", "1", "--db", str(tmp_path / "x.db"))
    assert r.returncode == 2
    assert "runtime.precision" in r.stderr and str(p) in r.stderr


def test_unknown_space_and_bad_n_exit_2(fast_cpu_config: Path, tmp_path: Path) -> None:
    r = edgeprof("profile", str(fast_cpu_config), "--space", "nb202", "--n", "1", "--db", str(tmp_path / "x.db"))
    assert r.returncode == 2 and "nb201" in r.stderr
    r = edgeprof("profile", str(fast_cpu_config), "--space", "nb201", "--n", "0", "--db", str(tmp_path / "x.db"))
    assert r.returncode == 2 and "--n" in r.stderr


def test_devices_json_lists_local_cpu() -> None:
    r = edgeprof("devices", "--json")
    assert r.returncode == 0
    names = {d["name"]: d for d in json.loads(r.stdout)["devices"]}
    assert names["local-cpu"]["backend"] == "onnxruntime" and names["local-cpu"]["error"] is None


def _ok_rows(db: Path) -> list[tuple[str, str]]:
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT m.arch_id, x.job_id FROM measurements x JOIN models m "
                         "ON m.sha256 = x.model_sha256 WHERE x.status = 'ok'").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        c.close()


HOLD_ENV = "EDGEPROF_TEST_HOLD_MARK"
HOLDING_AGENT = """
import os, runpy, sys, time

# The board's python for the Ctrl-C test. With $EDGEPROF_TEST_HOLD_MARK set, the real runner measures the
# first {k} tasks of its job, creates that file, and then waits for SIGINT/SIGTERM (5 minutes at most)
# before the next task, so the interrupt lands mid-job however fast or slow the machine is.
args = sys.argv[1:]
if args[:3] != ["-m", "agents", "run"] or not os.environ.get("EDGEPROF_TEST_HOLD_MARK"):
    os.execv(sys.executable, [sys.executable, *args])  # anything else runs untouched
from agents import runner

measure = runner._JobRun.run_task

def run_task(self, task, idle_power_mw):
    self.measured = getattr(self, "measured", 0) + 1
    if self.measured > {k}:
        open(os.environ["EDGEPROF_TEST_HOLD_MARK"], "w").close()
        deadline = time.monotonic() + 300
        while self.stop_signum is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.check_stop()
    return measure(self, task, idle_power_mw)

runner._JobRun.run_task = run_task
sys.argv = ["agents", *args[2:]]
runpy.run_module("agents", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_ctrl_c_keeps_measurements_and_rerun_fills_the_rest(fast_cpu_config: Path, tmp_path: Path) -> None:
    """Ctrl-C mid-job (by construction: the agent holds after k tasks) keeps the k, the rerun does the rest."""
    db = tmp_path / "x.db"
    n, k = 8, 2
    launcher = tmp_path / "holding_agent.py"
    launcher.write_text(HOLDING_AGENT.format(k=k))
    board_python = tmp_path / "board-python"
    board_python.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{launcher}' \"$@\"\n")
    board_python.chmod(0o755)
    fast_cpu_config.write_text(fast_cpu_config.read_text().replace(
        "[connection]\n", f'[connection]\npython = "{board_python}"\n'))
    mark = tmp_path / "holding"
    args = [sys.executable, "-m", "edgeprof", "profile", str(fast_cpu_config), "--space", "nb201", "--n", str(n),
            "--db", str(db), "-q"]
    # A suite started in the background (`make test &`) ignores SIGINT and children inherit an ignored signal,
    # so the host would never see the Ctrl-C this test sends: it is started with SIGINT handled, as from a
    # terminal (a handled signal is reset to its default at exec, an ignored one is not).
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        p = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, **{HOLD_ENV: str(mark)}))
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and p.poll() is None and not (mark.exists() and len(_ok_rows(db)) >= k):
            time.sleep(0.2)  # a condition wait: the agent holds until the interrupt comes
        assert p.poll() is None and mark.exists(), "the agent should be holding after k tasks"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 130, err
    kept = _ok_rows(db)
    assert len(kept) == k, "exactly the k finished measurements are kept"
    r = subprocess.run(args + ["--json"], cwd=REPO, capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert (rep["already_measured"], rep["measured_ok"], rep["measured_error"]) == (k, n - k, 0)
    rows = _ok_rows(db)
    assert len(rows) == n and len({a for a, _ in rows}) == n  # every arch exactly once
    assert set(kept) <= set(rows)


def test_a_job_is_started_once(fast_cpu_config: Path, tmp_path: Path) -> None:
    """A second start of a job, by the host or by hand, is refused and leaves the job folder as it was."""
    config = load_config(fast_cpu_config)
    with Store(tmp_path / "x.db") as store:
        assert profile(config, create_space("nb201"), n=1, seed=5, batch=1, store=store).ok == 1
    (job,) = (tmp_path / "work" / "jobs").iterdir()
    before = {p.name: p.read_bytes() for p in job.iterdir()}
    token = json.loads(before["runner.json"])["token"]
    with LocalTransport(config) as t:
        t.prepare()
        with pytest.raises(TransportError, match="already started by another host process"):
            t.start(job.name)
    agent = t.agent_dir
    assert agent is not None
    r = subprocess.run([sys.executable, "-m", "agents", "run", str(job / "job.json"), "--start-token", token, "-q"],
                       cwd=agent, env=dict(os.environ, PYTHONPATH=str(agent)), capture_output=True, text=True,
                       check=False, timeout=120)
    assert r.returncode == 3 and "already started with this start token" in r.stderr, r.stderr
    assert {p.name: p.read_bytes() for p in job.iterdir()} == before


def test_dataset_import_help_then_summary(tmp_path: Path) -> None:
    shared = REPO.parent / "shared"
    if not (shared / "data" / "HELP" / "data" / "nasbench201" / "latency" / "fpga.pt").exists():
        pytest.skip(f"HELP data not found under {shared}")
    db = str(tmp_path / "h.db")
    r = edgeprof("dataset", "import", "help", str(shared), "--space", "nb201", "--devices", "fpga", "--db", db,
                 "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["added"] == 15625
    again = json.loads(edgeprof("dataset", "import", "help", str(shared), "--space", "nb201", "--devices", "fpga",
                                "--db", db, "--json").stdout)
    assert again["added"] == 0
    (g,) = json.loads(edgeprof("dataset", "summary", "--db", db, "--json").stdout)["groups"]
    assert (g["device"], g["space"], g["ok"]) == ("fpga", "nb201", 15625)
    bad = edgeprof("dataset", "import", "latbench", str(tmp_path / "nope.pickle"), "--db", db)
    assert bad.returncode == 2 and "no such file" in bad.stderr


def test_a_board_shared_by_two_datasets_keeps_them_apart(fast_cpu_config: Path, tmp_path: Path) -> None:
    """Jobs another dataset left in the board's work folder are not pulled into this one."""
    config = load_config(fast_cpu_config)
    with Store(tmp_path / "a.db") as a:
        assert profile(config, create_space("nb201"), n=2, seed=1, batch=1, store=a).ok == 2
    # the jobs of a.db on the board look unfinished-for-ingest to a fresh dataset
    for marker in (tmp_path / "work" / "jobs").glob("*/ingested"):
        marker.unlink()
    with Store(tmp_path / "b.db") as b:
        rep = profile(config, create_space("nb201"), n=1, seed=2, batch=1, store=b)
        assert rep.ok == 1 and not rep.resumed_jobs
        rows = b.rows()
        assert len(rows) == 1 and rows[0]["space"] == "nb201"


def test_named_archs_and_remeasure_rounds(fast_cpu_config: Path, tmp_path: Path) -> None:
    """A searched network is verified by name, in rounds: each round is a new measurement of it."""
    config = load_config(fast_cpu_config)
    space = create_space("nb201")
    arch = space.parse("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|")
    with Store(tmp_path / "v.db") as store:
        first = profile(config, space, n=0, seed=0, batch=1, store=store, archs=[arch])
        again = profile(config, space, n=0, seed=0, batch=1, store=store, archs=[arch])
        assert first.ok == 1 and again.ok == 0 and again.already_measured == 1  # plain rerun: nothing to do
        rounds = profile(config, space, n=0, seed=0, batch=1, store=store, archs=[arch], remeasure=True)
        assert rounds.ok == 1
        rows = store.rows()
        assert [r["arch_id"] for r in rows] == [space.arch_id(arch)] * 2 and rows[0]["job_id"] != rows[1]["job_id"]
        with pytest.raises(ValueError, match="nb201"):
            profile(config, space, n=0, seed=0, batch=1, store=store, archs=[(9, 9, 9, 9, 9, 9)])
