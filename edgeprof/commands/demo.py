"""The main job on this machine: profile 40 NB201 and 20 small-MBConv networks on the local CPU.

Measurements go through the agent exactly as on a board (job bundle, fresh process per model), into the
dataset; the summary at the end says where the database is. Later steps (predictors, search) build on it.
"""

from __future__ import annotations

import argparse
import time

from edgeprof.commands import DEFAULT_DB
from edgeprof.commands.dataset import summary_table
from edgeprof.commands.profile import print_report
from edgeprof.output import err, out, print_json, session_progress
from profiler.config import resolve_device
from profiler.dataset import summarize
from profiler.session import profile
from profiler.store import Store
from spaces import create_space

PLAN = (("nb201", 40), ("mbconv-small", 20))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="local-cpu", help="device to profile (default local-cpu)")
    p.add_argument("--db", default=DEFAULT_DB, help=f"dataset file (default {DEFAULT_DB})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the reports and summary as JSON")


def run(args: argparse.Namespace) -> int:
    config = resolve_device(args.device)
    t0 = time.perf_counter()
    reports = []
    with Store(args.db) as store:
        for space_name, n in PLAN:
            if not args.json:
                err.rule(f"{space_name}: {n} networks on {config.name}")
            with session_progress(args.json) as progress:
                rep = profile(config, create_space(space_name), n=n, seed=args.seed, batch=1, store=store,
                              progress=progress)
            reports.append(rep.to_dict())
            if not args.json:
                print_report(rep.to_dict(), args.db)
            if rep.interrupted:
                return 130
        summary = summarize(store, device=config.name)
    wall = time.perf_counter() - t0
    if args.json:
        print_json({"reports": reports, "summary": summary, "wall_s": round(wall, 1)})
    else:
        out.print(summary_table(summary))
        err.print(f"demo finished in {wall:.0f} s; dataset: [bold]{args.db}[/] "
                  f"(try `edgeprof dataset summary --db {args.db}`)")
    return 0
