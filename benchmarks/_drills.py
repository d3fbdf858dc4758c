"""The fault drills' machinery (imported by fault_drills.py): a loopback board, `edgeprof profile` runs driven on
a timeline, link cuts and kills, the counts read back afterwards from the datasets and the board's files, and
the per-kind summary and table.

Every process a drill starts is found again by the drill folder its command line names, and killed by pid when
the drill ends, so a drill that goes wrong cannot leave agents measuring behind it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profiler.testing.sshd import SshServer, write_board

DEVICE = "drill"  # every drill's board has this name; each has its own work folder and datasets
JOB_ID = re.compile(r"\b\d{8}T\d{6}-\S+?-[0-9a-f]{6}\b")  # the same failure in two drills reads the same
PROGRESS = re.compile(r"^\s*\w[\w ]*: \d+/\d+ \(\d+%\)")  # 'measuring: 2/10 (20%), ...' progress lines
STOP = threading.Event()  # set on Ctrl-C or SIGTERM: running drills kill their hosts and start nothing new


class Stopped(Exception):
    """The benchmark was asked to stop (STOP is set)."""


def child_env(root: Path) -> dict[str, str]:
    """The environment of every edgeprof run: its own model cache, no user ssh config, no ssh-agent."""
    env = dict(os.environ, XDG_CACHE_HOME=str(root / "cache"), EDGEPROF_SSH_CONFIG=str(root / "no-ssh-config"),
               PYTHONUNBUFFERED="1")
    env.pop("SSH_AUTH_SOCK", None)
    return env


@dataclass
class Board:
    """One drill's loopback board: a device config pointing at the shared sshd and its own work folder."""

    folder: Path
    config: Path

    @property
    def workdir(self) -> Path:
        return self.folder / f"remote-{DEVICE}"

    def jobs(self) -> list[Path]:
        d = self.workdir / "jobs"
        return sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []

    def started_jobs(self, before: set[Path]) -> list[Path]:
        """Jobs not in `before` whose agent was launched (agent.pid written)."""
        return [j for j in self.jobs() if j not in before and (j / "agent.pid").exists()]

    def result_lines(self, job: Path) -> int:
        try:
            return (job / "results.jsonl").read_bytes().count(b"\n")
        except OSError:
            return 0

    def ok_results(self) -> Counter[str]:
        """How many `ok` result lines each model has in all the board's results files."""
        seen: Counter[str] = Counter()
        for job in self.jobs():
            try:
                lines = (job / "results.jsonl").read_bytes().splitlines()
            except OSError:
                continue
            for line in lines:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if isinstance(r, dict) and r.get("status") == "ok":
                    seen[str(r.get("model_sha256"))] += 1
        return seen


def new_board(folder: Path, server: SshServer, key: Path, protocol: str) -> Board:
    folder.mkdir(parents=True)
    return Board(folder, write_board(folder, server, DEVICE, key, protocol=protocol))


@dataclass
class Run:
    """One `edgeprof profile` run as the drill saw it."""

    label: str
    rc: int | None = None  # None: still running, or killed by the drill's deadline
    wall_s: float = 0.0
    killed: bool = False  # the drill killed it on purpose (host kill)
    timed_out: bool = False
    report: dict[str, Any] | None = None
    error: str = ""  # the last lines of stderr of a run that did not end with 0

    def to_dict(self) -> dict[str, Any]:
        rep = self.report or {}
        return {"label": self.label, "rc": self.rc, "wall_s": round(self.wall_s, 2), "killed": self.killed,
                "timed_out": self.timed_out, "error": self.error,
                **{k: rep.get(k) for k in ("measured_ok", "measured_error", "already_measured", "resumed_jobs",
                                           "reconnects", "agent_restarts")}}


class Host:
    """`python -m edgeprof profile <board> --space nb201 --n N --seed S --db DB --json`, output to files."""

    def __init__(self, board: Board, db: Path, n: int, seed: int, env: dict[str, str], label: str):
        if STOP.is_set():
            raise Stopped
        self.run = Run(label)
        self.out = db.with_name(f"{db.stem}-{label}.out")
        self.err = db.with_name(f"{db.stem}-{label}.err")
        argv = [sys.executable, "-m", "edgeprof", "profile", str(board.config), "--space", "nb201", "--n", str(n),
                "--seed", str(seed), "--db", str(db), "--json"]
        self.t0 = time.monotonic()
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def kill(self, *, on_purpose: bool) -> int:
        """SIGKILL, as a crash: no cleanup of any kind. Returns 1 when it was still running."""
        alive = self.alive
        if alive:
            self.proc.kill()
            self.run.killed, self.run.timed_out = on_purpose, not on_purpose
            self.run.wall_s = self.elapsed
        self.proc.wait()
        return int(alive)

    def finish(self) -> Run:
        """Collect the ended process's status, report and error lines."""
        rc = self.proc.wait()
        self.run.wall_s = self.run.wall_s or self.elapsed
        self.run.rc = None if (self.run.killed or self.run.timed_out) else rc
        try:
            self.run.report = json.loads(self.out.read_text())
        except (OSError, ValueError):
            self.run.report = None
        if self.run.rc != 0 and not self.run.killed:
            tail = [ln for ln in self.err.read_text(errors="replace").splitlines()
                    if ln.strip() and not PROGRESS.match(ln)]
            failed = (self.run.report or {}).get("errors") or [{}]
            said = f"{failed[0].get('type')}: {failed[0].get('message')}"[:200] if failed[0] else ""
            self.run.error = " | ".join(tail[-3:] + [said] * bool(said))[-400:] or f"exit {rc}, nothing on stderr"
        return self.run


def drive(hosts: list[Host], deadline: float, tick: Callable[[], None] = lambda: None,
          poll_s: float = 0.1) -> None:
    """Call tick() every poll_s until every host has ended; past the deadline (monotonic) kill what still runs."""
    while any(h.alive for h in hosts):
        if time.monotonic() > deadline or STOP.is_set():
            for h in hosts:
                h.kill(on_purpose=False)
            if STOP.is_set():
                raise Stopped
            return
        tick()
        for h in hosts:
            if not h.alive and not h.run.wall_s:
                h.run.wall_s = h.elapsed
        time.sleep(poll_s)


def run_to_end(board: Board, db: Path, n: int, seed: int, env: dict[str, str], label: str,
               timeout_s: float) -> Run:
    h = Host(board, db, n, seed, env, label)
    drive([h], time.monotonic() + timeout_s)
    return h.finish()


# --- processes on the board (this machine) ---------------------------------------------------------------


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


def pids_naming(text: str) -> list[int]:
    """Processes (not this one) whose command line mentions `text` (a drill folder)."""
    me = os.getpid()
    return [int(d.name) for d in Path("/proc").iterdir()
            if d.name.isdigit() and int(d.name) != me and any(text in a for a in _cmdline(int(d.name)))]


def agent_runners(board: Board) -> list[int]:
    """The `python -m agents run <workdir>/jobs/<job>/job.json` processes of the board."""
    wd = str(board.workdir)
    return [p for p in pids_naming(wd) if (a := _cmdline(p)) and "agents" in a and "run" in a
            and any(x.startswith(wd) and x.endswith("job.json") for x in a)]


def kill_agent(board: Board) -> int:
    """SIGKILL each runner and its workers (each leads its own process group), as an OOM kill would."""
    runners = agent_runners(board)
    for pid in runners:
        for child in _children(pid):
            try:
                os.killpg(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(runners)


def kill_leftovers(folder: Path) -> int:
    """SIGKILL every process that names the drill folder (agents, wrappers, hosts the drill started)."""
    pids = pids_naming(f"{folder}/")
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(pids)


# --- what the datasets and the board hold afterwards -----------------------------------------------------


@dataclass
class Row:
    arch_id: str
    job_id: str
    task_id: str
    setting: tuple[str, str, str, int]  # device, backend, precision, batch
    status: str


def dataset_rows(db: Path) -> tuple[list[Row], dict[str, str]]:
    """(measurement rows with their arch, {model sha256: arch id}) of a dataset, opened read-only."""
    if not db.exists():
        return [], {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = [Row(a, j, t, (d, b, p, int(n)), s) for a, j, t, d, b, p, n, s in con.execute(
            "SELECT m.arch_id, x.job_id, x.task_id, x.device, x.backend, x.precision, x.batch, x.status "
            "FROM measurements x JOIN models m ON m.sha256 = x.model_sha256")]
        shas = dict(con.execute("SELECT sha256, arch_id FROM models"))
    finally:
        con.close()
    return rows, shas


@dataclass
class Counts:
    """The drill's damage: archs requested but not stored ok, rows stored twice, networks measured twice."""

    lost: int = 0
    duplicated: int = 0
    remeasured: int = 0
    details: list[str] = field(default_factory=list)


def count(requested: dict[Path, set[str]], board: Board) -> Counts:
    """Compare what each dataset asked for with what it holds, and with what the board measured.

    lost: requested archs with no `ok` row in their dataset. duplicated: rows beyond the first of one
    (job, task) or of one (arch, setting) in a dataset. re-measured: archs with more than one `ok` row in a
    dataset, or with more `ok` lines on the board than datasets that asked for them.
    """
    c = Counts()
    arch_of: dict[str, str] = {}
    remeasured: set[str] = set()
    for db, archs in requested.items():
        rows, shas = dataset_rows(db)
        arch_of.update(shas)
        ok = {r.arch_id for r in rows if r.status == "ok"}
        lost = sorted(archs - ok)
        c.lost += len(lost)
        if lost:
            c.details.append(f"{db.name}: {len(lost)} of {len(archs)} archs not stored ok")
        extra_tasks = len(rows) - len({(r.job_id, r.task_id) for r in rows})
        per_arch = Counter((r.arch_id, r.setting) for r in rows)
        extra_arch = sum(k - 1 for k in per_arch.values())
        c.duplicated += extra_tasks + extra_arch
        if extra_tasks or extra_arch:
            c.details.append(f"{db.name}: {extra_tasks} rows repeat a job/task, {extra_arch} repeat an arch")
        ok_per_arch = Counter((r.arch_id, r.setting) for r in rows if r.status == "ok")
        remeasured |= {a for (a, _), k in ok_per_arch.items() if k > 1}
    asked = Counter(a for archs in requested.values() for a in archs)
    on_board = Counter[str]()
    for sha, k in board.ok_results().items():
        on_board[arch_of.get(sha, sha)] += k
    twice_on_board = {a for a, k in on_board.items() if k > asked.get(a, 0)}
    if twice_on_board:
        c.details.append(f"board: {len(twice_on_board)} networks measured more often than asked")
    remeasured |= twice_on_board
    c.remeasured = len(remeasured)
    return c


# --- drills and the table ------------------------------------------------------------------------------


@dataclass
class Drill:
    kind: str
    index: int
    runs: list[Run] = field(default_factory=list)
    faults: int = 0  # link cuts, kills or truncations the drill really made (0: the drill proves nothing)
    counts: Counts = field(default_factory=Counts)
    one_run: bool = False
    wall_s: float = 0.0

    @property
    def first_rc0(self) -> bool:
        return bool(self.runs) and self.runs[0].rc == 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "index": self.index, "one_run": self.one_run, "faults": self.faults,
                "lost": self.counts.lost, "duplicated": self.counts.duplicated,
                "remeasured": self.counts.remeasured, "wall_s": round(self.wall_s, 2),
                "details": self.counts.details, "runs": [r.to_dict() for r in self.runs]}


def summarise(drills: list[Drill], baseline_s: float, wanted: int, kinds: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in kinds:
        ds = [d for d in drills if d.kind == kind]
        walls = [d.wall_s for d in ds]
        row = {"runs": len(ds), "completed_one_run": sum(d.one_run for d in ds),
               "first_run_ok": sum(d.first_rc0 for d in ds), "lost": sum(d.counts.lost for d in ds),
               "duplicated": sum(d.counts.duplicated for d in ds),
               "remeasured": sum(d.counts.remeasured for d in ds), "faults": sum(d.faults for d in ds),
               "drills_without_fault": sum(d.faults == 0 for d in ds),
               "wall_s_median": round(statistics.median(walls), 2) if walls else 0.0,
               "wall_ratio": round(statistics.median(walls) / baseline_s, 2) if walls and baseline_s else 0.0}
        row["pass"] = bool(ds) and len(ds) >= wanted and row["completed_one_run"] == len(ds) and (
            row["lost"] == row["duplicated"] == row["remeasured"] == row["drills_without_fault"] == 0)
        said = Counter(JOB_ID.sub("<job>", r.error) for d in ds for r in d.runs if r.error)
        row["errors"] = [f"{k}x {e}" for e, k in said.most_common(5)]
        out[kind] = row
    return out


def print_table(res: dict[str, Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    t = Table("kind", "drills", "done in 1 run", "first run ok", "lost", "duplicated", "re-measured", "faults",
              "wall s", "× uncut", "target", box=box.SIMPLE,
              title=f"fault drills: {res['networks']} networks per run, uncut run {res['baseline_wall_s']:.1f} s")
    for kind, r in res["kinds"].items():
        t.add_row(kind, str(r["runs"]), str(r["completed_one_run"]), str(r["first_run_ok"]), str(r["lost"]),
                  str(r["duplicated"]), str(r["remeasured"]), str(r["faults"]), f"{r['wall_s_median']:.1f}",
                  f"{r['wall_ratio']:.2f}", "[green]PASS[/]" if r["pass"] else "[red]FAIL[/]")
    con = Console(width=None if sys.stdout.isatty() else 130)  # a pipe gets the whole table, not 80 columns
    con.print(t)
    con.print("done in 1 run: the run under fault exits 0 (host_kill: the one rerun after the kill; agent_kill: "
              "the killed run and the rerun; race: B and A's rerun). faults: link cuts, kills, truncations made. "
              "Target: every drill done in 1 run with a fault made, 0 lost, 0 duplicated, 0 re-measured.")
    for kind, r in res["kinds"].items():
        for e in r["errors"]:
            con.print(f"  [red]{kind}[/]: {e}", markup=True, highlight=False)
