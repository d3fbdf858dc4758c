"""Fault drills: `edgeprof profile` against a loopback OpenSSH "board" while links drop and processes die.

Each drill has its own board work folder and datasets, on a throwaway sshd (profiler.testing.sshd); the
profile runs are real CLI subprocesses. Kinds, N drills each, interleaved so that a time budget cut leaves
every kind with a similar count:

- timed:      a cut of every live link (sshd's per-connection processes killed) K=3 times: 2 s after the
              agent started, then every 4 s;
- storm:      a cut every 3 s from the host's first login to the end of the run;
- host_kill:  kill -9 of the host once the board wrote 2 results, then the same command again;
- agent_kill: SIGKILL of the board's runner and worker once it wrote 2 results (the host starts the tasks
              without a result again in a follow-up job), then the same command again;
- race:       dataset A starts; once its agent runs, dataset B (another --db, another seed) starts on the
              same board; A's host is killed -9 after 2 results while B runs; then A is run again;
- corrupt:    a run of dataset 1, a model file on the board truncated, the same archs into dataset 2.

Per kind: drills done, drills completed in one run (the run under fault exits 0; for host_kill, the one rerun
after the kill exits 0; for agent_kill, the killed run and the rerun both), first runs that exited 0, rows lost
(requested archs with no ok row, after the rerun where there is one), rows duplicated, networks measured twice
(in a dataset, or on the board more often than datasets asked), faults made (cuts, kills, truncations), and wall
time (all runs of a drill) over an uncut run of the same size (every third round, so it shares the drills'
load). Target, per kind: every drill completes in one run with its fault made, 0 lost, 0 duplicated, 0
re-measured. The exit status is 0 whatever the verdicts, unless --check. `--lanes L` runs L drills side by side
(each lane on its own sshd) when time is short; walls are then under each other's load. `--quick`: one drill per
kind on 3 networks with a shorter schedule, all side by side, a smoke size whose figures say little.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import numpy as np
from _drills import (
    STOP,
    Board,
    Drill,
    Host,
    Run,
    Stopped,
    child_env,
    count,
    drive,
    kill_agent,
    kill_leftovers,
    new_board,
    print_table,
    run_to_end,
    summarise,
)

from profiler.testing.sshd import FAST, SshServer, find_sshd, keygen
from spaces import create_space

KINDS = ("timed", "storm", "host_kill", "agent_kill", "race", "corrupt")
# The runs that must exit 0 for a drill to count as done in one run (besides a "setup" run): the run under
# fault; for host_kill the one rerun after the kill (the killed run cannot finish); for agent_kill the run whose
# agent was killed (the host starts its tasks again) and the rerun (nothing left); for the race, B and A's
# rerun; for the corrupt model, the run after the truncation.
JUDGED = {"baseline": {"baseline"}, "timed": {"run"}, "storm": {"run"}, "host_kill": {"rerun"},
          "agent_kill": {"run", "rerun"}, "race": {"B", "rerun A"}, "corrupt": {"after truncation"}}


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

    def prime(self, race: bool, say: Callable[[str], None]) -> None:
        """Export every model once (untimed), so no drill pays for exports."""
        say("priming the model cache (not timed)")
        self.baseline("prime-a")
        if race:
            self.baseline("prime-b", self.other_seed())

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
                # the host's first connection has logged in (it made the board's work folder): a cut before
                # that fails the first connect, which is refused at once by design (a wrong host or key)
                if self.server.session_pids() and b.workdir.exists():
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
        hosts, a_job = [a], []

        def tick() -> None:
            if not a_job and (jobs := b.started_jobs(before)):  # A's agent runs: B starts
                a_job.append(jobs[0])
                hosts.append(Host(b, db_b, p.networks, seed_b, self.env, "B"))
            if a.alive and a_job and b.result_lines(a_job[0]) >= p.kill_after:
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


def run_lanes(root: Path, key: Path, plan: Plan, order: list[tuple[str, int]], lanes: int, t_start: float,
              say: Callable[[str], None], server: SshServer) -> list[Drill]:
    """Drills taken in `order` from one queue by `lanes` lanes side by side, each lane on its own sshd (the first
    on `server`) so that a cut stays in its lane; no drill starts past the time budget."""
    queue = iter(order)
    lock = threading.Lock()
    out: list[Drill] = []

    def lane(index: int) -> None:
        own = None if index == 0 else SshServer(root / f"sshd-{index}", key).start()
        runner = Drills(root, own or server, key, plan)
        try:
            while True:
                with lock:
                    kind, i = next(queue, ("", -1))
                if not kind:
                    return
                if time.monotonic() - t_start > plan.budget_s:
                    say(f"time budget spent: {kind} #{i + 1} not run")
                    continue
                d = runner.run(kind, i)
                with lock:
                    out.append(d)
                say(f"{kind} #{i + 1}: {'done in 1 run' if d.one_run else 'NOT done in 1 run'}, lost "
                    f"{d.counts.lost}, dup {d.counts.duplicated}, re-measured {d.counts.remeasured}, faults "
                    f"{d.faults}, {d.wall_s:.1f} s"
                    + "".join(f"\n    {r.label}: rc {r.rc} {r.error}" for r in d.runs if r.error))
        except Stopped:
            return
        finally:
            if own is not None:
                own.stop()

    pool = ThreadPoolExecutor(max_workers=lanes)
    try:
        for f in [pool.submit(lane, i) for i in range(lanes)]:
            f.result()
    except BaseException:  # Ctrl-C or SIGTERM: the lanes stop before the pool is waited for
        STOP.set()
        kill_leftovers(root)
        raise
    finally:
        pool.shutdown(wait=True)
    return sorted(out, key=lambda d: (d.index, d.kind))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=FULL["n"], help="drills per kind (default 10)")
    ap.add_argument("--networks", type=int, default=FULL["networks"], help="archs per profile run (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    ap.add_argument("--budget-min", type=float, default=FULL["budget_min"],
                    help="start no new drill after this many minutes (default 90)")
    ap.add_argument("--lanes", type=int, default=1,
                    help="drills side by side, each lane on its own sshd (default 1: timings undisturbed)")
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
    if args.n < 1 or args.networks < 2 or args.budget_min <= 0 or args.lanes < 1:
        ap.error("--n and --lanes must be >= 1, --networks >= 2 and --budget-min > 0")
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
            order = [(k, i) for i in range(plan.n) for k in kinds]  # interleaved: a budget cut is even
            if args.quick:  # a smoke: every drill side by side; the uncut run is the corrupt drill's first
                order += [] if "corrupt" in kinds else [("baseline", 0)]
                lanes = len(order)
            else:  # export every model once, untimed; uncut runs every third round, under the same load
                Drills(root, server, key, plan).prime("race" in kinds, say)
                order = [x for i in range(plan.n) for x in [("baseline", i)] * (i % 3 == 0)
                         + [(k, i) for k in kinds]]
                lanes = args.lanes
            drills = run_lanes(root, key, plan, order, lanes, t_start, say, server)
            baselines = [r for d in drills for r in d.runs if r.label == "baseline"] or [
                r for d in drills for r in d.runs if r.label == "setup"]
            drills = [d for d in drills if d.kind != "baseline"]
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
