"""Fault drills: `edgeprof profile` against a loopback OpenSSH "board" while links drop and processes die.

Each drill has its own board work folder and datasets, on a throwaway sshd (profiler.testing.sshd); the
profile runs are real CLI subprocesses. Kinds, N drills each, interleaved so that a time budget cut leaves
every kind with a similar count:

- timed:      a cut of every live link (sshd's per-connection processes killed) K=3 times: 2 s after the
              agent started, then every 4 s;
- storm:      a cut every 3 s from the host's first connection to the end of the run;
- host_kill:  kill -9 of the host once the board wrote 2 results, then the same command again;
- agent_kill: SIGKILL of the board's runner and worker once it wrote 2 results, then the same command again;
- race:       dataset A starts; once its agent runs, dataset B (another --db, another seed) starts on the
              same board; A's host is killed -9 after 2 results while B runs; then A is run again;
- corrupt:    a run of dataset 1, a model file on the board truncated, the same archs into dataset 2.

Per kind: drills done, drills completed in one run (the run under fault exits 0; for the kill kinds, the one
rerun after the kill exits 0), first runs that exited 0, rows lost (requested archs with no ok row, after the
rerun where there is one), rows duplicated, networks measured twice (in a dataset, or on the board more often
than datasets asked), faults made (cuts, kills, truncations), and wall time (all runs of a drill) over an
uncut run. Target, per kind: every drill completes in one run with its fault made, 0 lost, 0 duplicated,
0 re-measured. The exit status
is 0 whatever the verdicts, unless --check. `--quick`: one drill per kind on 3 networks with a shorter
schedule, a smoke size whose figures say little.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from _drills import (
    STOP,
    Board,
    Counts,
    Host,
    Run,
    Stopped,
    child_env,
    count,
    drive,
    kill_agent,
    kill_leftovers,
    new_board,
    run_to_end,
)

from profiler.testing.sshd import FAST, SshServer, find_sshd, keygen
from spaces import create_space

KINDS = ("timed", "storm", "host_kill", "agent_kill", "race", "corrupt")
# The runs that must exit 0 for a drill to count as done in one run (besides a "setup" run): the run under
# fault; for the kill kinds the one rerun after the kill (the killed run cannot finish); for the race, B
# and A's rerun; for the corrupt model, the run after the truncation.
JUDGED = {"baseline": {"baseline"}, "timed": {"run"}, "storm": {"run"}, "host_kill": {"rerun"}, "agent_kill": {"rerun"},
          "race": {"B", "rerun A"}, "corrupt": {"after truncation"}}


@dataclass(frozen=True)
class Plan:
    """Sizes and schedule of one benchmark invocation."""

    n: int  # drills per kind
    networks: int  # archs per profile run
    seed: int
    warmup_s: float  # per-model warm-up: how long each measurement lasts, so the faults land mid-job
    first_cut_s: float
    cut_every_s: float
    cuts: int
    storm_every_s: float
    kill_after: int  # board results before a kill
    run_timeout_s: float
    budget_s: float

    @property
    def protocol(self) -> str:
        return FAST.replace("warmup_min_s = 0.05", f"warmup_min_s = {self.warmup_s}")


FULL = {"n": 10, "networks": 10, "warmup_s": 1.0, "first_cut_s": 2.0, "cut_every_s": 4.0, "cuts": 3,
        "storm_every_s": 3.0, "kill_after": 2, "run_timeout_s": 300.0, "budget_min": 90.0}
QUICK = {"n": 1, "networks": 3, "warmup_s": 0.3, "first_cut_s": 1.0, "cut_every_s": 1.5, "cuts": 2,
         "storm_every_s": 2.0, "kill_after": 1, "run_timeout_s": 120.0, "budget_min": 5.0}


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


class Drills:
    """The shared sshd, key and model cache; one method per kind, each on a fresh board."""

    def __init__(self, root: Path, server: SshServer, key: Path, plan: Plan):
        self.root, self.server, self.key, self.plan = root, server, key, plan
        self.env = child_env(root)
        self.space = create_space("nb201")

    def archs(self, seed: int) -> set[str]:
        """The arch ids `profile --n networks --seed seed` asks for (the same sampling as the session)."""
        picked = self.space.sample_unique(self.plan.networks, np.random.default_rng(seed))
        return {self.space.arch_id(a) for a in picked}

    def board(self, name: str) -> Board:
        return new_board(self.root / name, self.server, self.key, self.plan.protocol)

    def deadline(self) -> float:
        return time.monotonic() + self.plan.run_timeout_s

    def rerun(self, board: Board, db: Path, seed: int, label: str = "rerun") -> Run:
        return run_to_end(board, db, self.plan.networks, seed, self.env, label, self.plan.run_timeout_s)

    def baseline(self, name: str, seed: int | None = None) -> Run:
        """An uncut run of the drills' size on a fresh board."""
        b = self.board(name)
        try:
            return run_to_end(b, b.folder / "x.db", self.plan.networks, self.plan.seed if seed is None else seed,
                              self.env, "baseline", self.plan.run_timeout_s)
        finally:
            kill_leftovers(b.folder)

    def prime_and_baseline(self, race: bool, say: Callable[[str], None]) -> list[Run]:
        """Export every model once (untimed, so no drill pays for exports), then three uncut runs."""
        say("priming the model cache (not timed)")
        self.baseline("prime-a")
        if race:
            self.baseline("prime-b", self.other_seed())
        return [self.baseline(f"baseline-{i}") for i in range(3)]

    def run(self, kind: str, index: int) -> Drill:
        """One drill of `kind` on a fresh board (kind "baseline": an uncut run)."""
        d = Drill(kind, index)
        b = self.board(f"{kind}-{index}")
        t0 = time.monotonic()
        try:
            requested = (self.uncut if kind == "baseline" else getattr(self, kind))(b, d)
        finally:
            kill_leftovers(b.folder)
        d.wall_s = time.monotonic() - t0
        d.counts = count(requested, b)
        judged = [r for r in d.runs if r.label in JUDGED[kind] or r.label == "setup"]
        d.one_run = bool(judged) and all(r.rc == 0 for r in judged) and not any(r.timed_out for r in d.runs)
        return d

    # --- the kinds: each runs its drill on board `b`, records runs in `d`, returns {db: archs asked} ------

    def uncut(self, b: Board, d: Drill) -> dict[Path, set[str]]:
        db = b.folder / "x.db"
        d.runs.append(run_to_end(b, db, self.plan.networks, self.plan.seed, self.env, "baseline",
                                 self.plan.run_timeout_s))
        return {db: self.archs(self.plan.seed)}

    def _cut(self, d: Drill) -> None:
        if self.server.cut_connections():
            d.faults += 1

    def timed(self, b: Board, d: Drill) -> dict[Path, set[str]]:
        p, db = self.plan, b.folder / "x.db"
        before = set(b.jobs())
        h = Host(b, db, p.networks, p.seed, self.env, "run")
        started: list[float] = []

        def tick() -> None:
            if not started:
                if b.started_jobs(before):
                    started.append(time.monotonic())
            elif d.faults < p.cuts and time.monotonic() >= started[0] + p.first_cut_s + p.cut_every_s * d.faults:
                if not self.server.cut_connections():
                    started[0] += 0.5  # no live link at that moment (reconnecting): try again shortly
                else:
                    d.faults += 1
        drive([h], self.deadline(), tick)
        d.runs.append(h.finish())
        return {db: self.archs(p.seed)}

    def storm(self, b: Board, d: Drill) -> dict[Path, set[str]]:
        p, db = self.plan, b.folder / "x.db"
        h = Host(b, db, p.networks, p.seed, self.env, "run")
        next_cut: list[float] = []

        def tick() -> None:
            if not next_cut:
                if self.server.session_pids():  # the host's first connection is up
                    next_cut.append(time.monotonic() + p.storm_every_s)
            elif time.monotonic() >= next_cut[0]:
                self._cut(d)
                next_cut[0] += p.storm_every_s
        drive([h], self.deadline(), tick)
        d.runs.append(h.finish())
        return {db: self.archs(p.seed)}

    def _kill_when(self, b: Board, d: Drill, action: Callable[[Host], int], label: str = "run") -> Host:
        """Run to the end, calling action(host) once the new job has `kill_after` results on the board; the
        processes it killed count as faults."""
        p, db = self.plan, b.folder / "x.db"
        before = set(b.jobs())
        h = Host(b, db, p.networks, p.seed, self.env, label)
        done: list[bool] = []

        def tick() -> None:
            if not done and any(b.result_lines(j) >= p.kill_after for j in b.started_jobs(before)):
                done.append(True)
                d.faults += action(h)
        drive([h], self.deadline(), tick)
        d.runs.append(h.finish())
        return h

    def host_kill(self, b: Board, d: Drill) -> dict[Path, set[str]]:
        db = b.folder / "x.db"
        self._kill_when(b, d, lambda h: h.kill(on_purpose=True))
        d.runs.append(self.rerun(b, db, self.plan.seed))
        return {db: self.archs(self.plan.seed)}

    def agent_kill(self, b: Board, d: Drill) -> dict[Path, set[str]]:
        db = b.folder / "x.db"
        self._kill_when(b, d, lambda h: kill_agent(b))
        d.runs.append(self.rerun(b, db, self.plan.seed))
        return {db: self.archs(self.plan.seed)}

    def race(self, b: Board, d: Drill) -> dict[Path, set[str]]:
        p = self.plan
        seed_b = self.other_seed()
        db_a, db_b = b.folder / "a.db", b.folder / "b.db"
        before = set(b.jobs())
        a = Host(b, db_a, p.networks, p.seed, self.env, "A")
        hosts = [a]

        def tick() -> None:
            jobs = b.started_jobs(before)
            if len(hosts) == 1 and jobs:
                hosts.append(Host(b, db_b, p.networks, seed_b, self.env, "B"))
            if a.alive and len(hosts) == 2 and any(b.result_lines(j) >= p.kill_after for j in jobs[:1]):
                d.faults += a.kill(on_purpose=True)
        drive(hosts, self.deadline(), tick)
        d.runs.extend(h.finish() for h in hosts)
        d.runs.append(self.rerun(b, db_a, p.seed, "rerun A"))
        return {db_a: self.archs(p.seed), db_b: self.archs(seed_b)}

    def other_seed(self) -> int:
        """A seed whose archs do not overlap the main seed's, so a board-side count can tell A from B."""
        mine = self.archs(self.plan.seed)
        return next(s for s in range(self.plan.seed + 1, self.plan.seed + 100) if not self.archs(s) & mine)

    def corrupt(self, b: Board, d: Drill) -> dict[Path, set[str]]:
        p = self.plan
        db1, db2 = b.folder / "one.db", b.folder / "two.db"
        d.runs.append(run_to_end(b, db1, p.networks, p.seed, self.env, "setup", p.run_timeout_s))
        models = sorted((b.workdir / "models").glob("*.onnx"))
        if models:
            victim = models[0]
            victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
            d.faults = 1
        d.runs.append(self.rerun(b, db2, p.seed, "after truncation"))
        return {db1: self.archs(p.seed), db2: self.archs(p.seed)}


# --- the table ---------------------------------------------------------------------------------------------


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
        errors = sorted({r.error for d in ds for r in d.runs if r.error})
        row["errors"] = errors[:5]
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
    con.print("done in 1 run: the run under fault exits 0 (kill kinds: the one rerun after the kill; race: B "
              "and A's rerun). faults: link cuts, kills, truncations made. Target: every drill done in 1 run "
              "with a fault made, 0 lost, 0 duplicated, 0 re-measured.")
    for kind, r in res["kinds"].items():
        for e in r["errors"]:
            con.print(f"  [red]{kind}[/]: {e}", markup=True, highlight=False)


def run_lane(runner: Drills, order: list[tuple[str, int]], t_start: float, say: Callable[[str], None]) -> list[Drill]:
    """Drills one after another on one sshd; none starts past the time budget."""
    out = []
    for kind, i in order:
        if time.monotonic() - t_start > runner.plan.budget_s:
            say(f"time budget spent: {kind} #{i + 1} and later drills not run")
            break
        d = runner.run(kind, i)
        out.append(d)
        say(f"{kind} #{i + 1}: {'done in 1 run' if d.one_run else 'NOT done in 1 run'}, lost {d.counts.lost}, "
            f"dup {d.counts.duplicated}, re-measured {d.counts.remeasured}, faults {d.faults}, {d.wall_s:.1f} s"
            + "".join(f"\n    {r.label}: rc {r.rc} {r.error}" for r in d.runs if r.error))
    return out


def run_lanes(root: Path, key: Path, plan: Plan, lanes: list[list[tuple[str, int]]], t_start: float,
              say: Callable[[str], None], server: SshServer, baseline: list[tuple[str, int]]) -> list[Drill]:
    """Lanes side by side, each on its own sshd (the first on `server`); a lane's sshd stops with it."""

    def lane(index: int, order: list[tuple[str, int]]) -> list[Drill]:
        own = None if index == 0 else SshServer(root / f"sshd-{index}", key).start()
        try:
            return run_lane(Drills(root, own or server, key, plan), order, t_start, say)
        except Stopped:
            return []
        finally:
            if own is not None:
                own.stop()

    work = lanes + ([baseline] if baseline else [])
    pool = ThreadPoolExecutor(max_workers=len(work))
    try:
        futures = [pool.submit(lane, i, order) for i, order in enumerate(work)]
        return [d for f in futures for d in f.result()]
    except BaseException:  # Ctrl-C or SIGTERM: the lanes stop before the pool is waited for
        STOP.set()
        kill_leftovers(root)
        raise
    finally:
        pool.shutdown(wait=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=FULL["n"], help="drills per kind (default 10)")
    ap.add_argument("--networks", type=int, default=FULL["networks"], help="archs per profile run (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    ap.add_argument("--budget-min", type=float, default=FULL["budget_min"],
                    help="start no new drill after this many minutes (default 90)")
    ap.add_argument("--quick", action="store_true", help="smoke size: 1 drill per kind, 3 networks, short schedule")
    ap.add_argument("--check", action="store_true", help="exit 1 when a kind misses the target")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.quick:
        ap.set_defaults(n=QUICK["n"], networks=QUICK["networks"], budget_min=QUICK["budget_min"])
        args = ap.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if bad := [k for k in kinds if k not in KINDS]:
        ap.error(f"unknown drill kind(s) {', '.join(bad)}; choose from {', '.join(KINDS)}")
    if args.n < 1 or args.networks < 2 or args.budget_min <= 0:
        ap.error("--n must be >= 1, --networks >= 2 and --budget-min > 0")
    plan = Plan(n=args.n, networks=args.networks, seed=args.seed, warmup_s=sizes["warmup_s"],
                first_cut_s=sizes["first_cut_s"], cut_every_s=sizes["cut_every_s"], cuts=sizes["cuts"],
                storm_every_s=sizes["storm_every_s"], kill_after=min(sizes["kill_after"], args.networks - 1),
                run_timeout_s=sizes["run_timeout_s"], budget_s=60 * args.budget_min)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if find_sshd() is None:
        reason = "sshd is not installed (Debian package openssh-server)"
        say(f"fault drills skipped: {reason}")
        if args.json:
            print(json.dumps({"skipped": reason}))
        return 0
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the finally blocks kill agents and stop sshd
    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    t_start = time.monotonic()
    drills: list[Drill] = []
    interrupted, baseline_s = False, 0.0
    with tempfile.TemporaryDirectory(prefix="edgeprof-drills-") as tmp:
        root = Path(tmp)
        key = keygen(root / "id_ed25519")
        try:
            server = SshServer(root / "sshd", key).start()
        except (RuntimeError, OSError) as e:
            say(f"fault drills skipped: cannot start sshd: {e}")
            if args.json:
                print(json.dumps({"skipped": f"cannot start sshd: {e}"}))
            return 0
        try:
            runner = Drills(root, server, key, plan)
            if args.quick:
                # a smoke: one lane (and one sshd, so that cuts stay in their lane) per kind, side by side;
                # the uncut run is the corrupt drill's first run, or its own lane
                lanes = [[(k, i) for i in range(plan.n)] for k in kinds]
                drills = run_lanes(root, key, plan, lanes, t_start, say, server,
                                   baseline=[] if "corrupt" in kinds else [("baseline", 0)])
                baselines = [r for d in drills for r in d.runs if r.label in ("setup", "baseline")]
                drills = [d for d in drills if d.kind != "baseline"]
            else:
                baselines = runner.prime_and_baseline("race" in kinds, say)
                order = [(k, i) for i in range(plan.n) for k in kinds]  # interleaved: a budget cut is even
                drills = run_lane(runner, order, t_start, say)
            if bad := [r for r in baselines if r.rc != 0]:
                say(f"warning: {len(bad)} uncut run(s) failed: {bad[0].error}")
            baseline_s = statistics.median(r.wall_s for r in baselines) if baselines else 0.0
            say(f"uncut run: {baseline_s:.1f} s for {plan.networks} networks")
        except KeyboardInterrupt:
            interrupted = True
            STOP.set()
            say("interrupted: reporting the drills done so far")
        finally:
            STOP.set()
            kill_leftovers(root)
            server.stop()
            shutil.rmtree(root, ignore_errors=True)
    res = {"quick": args.quick, "n": plan.n, "networks": plan.networks, "interrupted": interrupted,
           "baseline_wall_s": round(baseline_s, 2) if drills else 0.0,
           "kinds": summarise(drills, baseline_s if drills else 0.0, plan.n, kinds),
           "drills": [d.to_dict() for d in drills], "wall_s": round(time.monotonic() - t_start, 1)}
    res["target_met"] = all(r["pass"] for r in res["kinds"].values())
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print_table(res)
    return 1 if args.check and not res["target_met"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
