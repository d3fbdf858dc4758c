"""Measure sampled architectures of a space on a device and store them.

Re-running the same command measures only what is still missing; Ctrl-C keeps every finished result.
"""

from __future__ import annotations

import argparse

from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, print_json, session_progress
from profiler.config import resolve_device
from profiler.session import profile
from profiler.store import Store
from spaces import create_space, list_spaces

EXIT_INTERRUPTED = 130


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("device", help="a device name (see `edgeprof devices`) or a path to a TOML file")
    p.add_argument("--space", required=True, help=f"search space: {', '.join(list_spaces())}")
    p.add_argument("--n", type=int, required=True, help="number of architectures to sample")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--db", default=DEFAULT_DB, help=f"dataset file (default {DEFAULT_DB})")
    p.add_argument("--json", action="store_true", help="print the run's report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def print_report(rep: dict, db: str) -> None:
    msg = (f"{rep['device']} / {rep['space']}: {rep['measured_ok']} measured, {rep['measured_error']} failed, "
           f"{rep['already_measured']} already in the store, {rep['wall_s']:.1f} s")
    err.print(msg + (" [yellow](interrupted: rerun to finish)[/]" if rep["interrupted"] else ""))
    for e in rep["errors"][:10]:
        err.print(f"  [red]{e['task_id']}[/] {e.get('type')}: {e.get('message')}")
    err.print(f"dataset: {db}")


def run(args: argparse.Namespace) -> int:
    config = resolve_device(args.device)
    space = create_space(args.space)
    with Store(args.db) as store, session_progress(args.quiet or args.json) as progress:
        report = profile(config, space, n=args.n, seed=args.seed, batch=args.batch, store=store,
                         progress=progress)
    rep = report.to_dict()
    if args.json:
        print_json(rep)
    else:
        print_report(rep, args.db)
    return EXIT_INTERRUPTED if report.interrupted else 0
