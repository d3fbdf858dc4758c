"""List the device configs edgeprof can see (a broken config is listed with its error); `group`: group a
space's measured devices by performance-monotonicity (LAT_a = gamma * LAT_b, SurgeNAS Definition 3.1), to
search one network per group and reuse it on every member.
"""

from __future__ import annotations

import argparse

from rich.table import Table

from edgeprof.arguments import add_setting_arguments, check_out_path, setting_kwargs
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, out, print_json
from profiler.config import ConfigError, config_dirs, list_configs, load_config
from profiler.monotonicity import DEFAULT_MIN_COMMON, DEFAULT_THRESHOLD, Grouping
from spaces.errors import UserInputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")
    sub = p.add_subparsers(dest="action", metavar="ACTION")  # optional: `edgeprof devices` lists configs
    g = sub.add_parser("group", help="group a space's devices whose latencies are proportional (search once "
                                     "per group)",
                       description="Fit LAT_a ~ gamma*LAT_b through the origin for every pair of devices measured "
                                   "on the space, and group devices whose fits all hold (complete linkage). R^2 is "
                                   "the centred one (1 - SSE/sum((a - mean a)^2)), the worse of the two "
                                   "directions. Each group's representative is the device to search on.")
    g.add_argument("--db", default=DEFAULT_DB)
    g.add_argument("--space", required=True, help="the search space (e.g. nb201, fbnet)")
    g.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, metavar="R2",
                   help=f"a pair holds at R^2 >= this (default {DEFAULT_THRESHOLD})")
    g.add_argument("--min-common", type=int, default=DEFAULT_MIN_COMMON, metavar="N",
                   help=f"pairs with fewer common archs are unknown, never grouped (default {DEFAULT_MIN_COMMON})")
    g.add_argument("--devices", help="comma-separated devices to group (default: all with data for the space)")
    g.add_argument("--plot", metavar="PNG", help="write a heat map of the pairwise R^2, ordered by group")
    g.add_argument("--json", action="store_true", help="print JSON")
    add_setting_arguments(g)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "action", None) == "group":
        return run_group(args)
    rows = []
    for name, path in list_configs().items():
        try:
            c = load_config(path)
            rows.append({"name": name, "kind": c.kind, "transport": c.connection.transport,
                         "host": c.connection.host, "backend": c.runtime.backend,
                         "precision": c.runtime.precision, "meter": c.meter.kind, "path": str(path),
                         "error": None})
        except ConfigError as e:
            rows.append({"name": name, "path": str(path), "error": str(e)})
    if args.json:
        print_json({"search_path": [str(d) for d in config_dirs()], "devices": rows})
        return 0
    t = Table("name", "kind", "transport", "backend", "precision", "meter", "path")
    for r in rows:
        if r["error"]:
            t.add_row(r["name"], "[red]invalid[/]", "", "", "", "", r["error"])
        else:
            t.add_row(r["name"], r["kind"], r["transport"] + (f" {r['host']}" if r["host"] else ""),
                      r["backend"], r["precision"], r["meter"], r["path"])
    out.print(t)
    err.print("search path: " + ", ".join(str(d) for d in config_dirs()))
    return 0


def run_group(args: argparse.Namespace) -> int:
    from pathlib import Path

    from profiler.monotonicity import group_devices, read_space
    from profiler.store import Store

    if not args.threshold <= 1:  # NaN too
        raise UserInputError(f"--threshold {args.threshold}: an R^2 threshold must be <= 1 (default "
                             f"{DEFAULT_THRESHOLD})")
    if args.min_common < 2:
        raise UserInputError(f"--min-common {args.min_common}: must be at least 2 (default {DEFAULT_MIN_COMMON})")
    if args.plot:
        check_out_path(args.plot, folder=False, option="--plot")
    if not Path(args.db).exists():
        raise UserInputError(f"--db {args.db}: no such dataset file")
    devices = [d for d in (args.devices or "").split(",") if d] or None
    with Store(args.db, readonly=True) as store:
        data = read_space(store, args.space, devices, **setting_kwargs(args))
    grouping = group_devices(data, args.space, args.threshold, args.min_common)
    plot = None
    if args.plot:
        from profiler.monotonicity_plot import plot_groups

        plot = str(plot_groups(grouping, args.plot))
    if args.json:
        print_json({**grouping.to_dict(), "db": args.db, "plot": plot})
        return 0
    out.print(groups_table(grouping))
    out.print(pairs_table(grouping))
    if plot:
        err.print(f"heat map: {plot}")
    return 0


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else f"{x:{fmt}}"


def groups_table(g: Grouping) -> Table:
    t = Table("group", "representative", "members (latency ~ gamma x representative's)", "min R2",
              title=f"{g.space}: {len(g.groups)} group(s) of {len(g.devices)} devices at R2 >= {g.threshold:g} "
                    f"(complete linkage, >= {g.min_common} common archs)")
    for k, grp in enumerate(g.groups, 1):
        members = ", ".join(f"{m} ({grp.gamma[m]:.3g}x)" for m in grp.members[1:])
        if not members:
            near = grp.nearest
            members = "(alone)" + (f"; nearest group: {near[0]}'s, worst R2 {near[1]:.3f}" if near else "")
        t.add_row(str(k), f"{grp.representative} ({g.n_archs[grp.representative]} archs)", members,
                  _f(grp.min_r2))
    return t


def pairs_table(g: Grouping) -> Table:
    """Every pair, best R^2 first, unknown last."""
    t = Table("a", "b", "gamma (a ~ gamma*b)", "R2", "R2 a|b", "R2 b|a", "rho", "n", "",
              title="pairwise fits (R2: centred, of the proportional fit through the origin; the worse direction)")
    for p in sorted(g.pairs, key=lambda p: (p.r2 is None, -(p.r2 if p.r2 is not None else 0.0), p.a, p.b)):
        status = "unknown" if not p.known else "[green]holds[/]" if p.holds(g.threshold) else "fails"
        t.add_row(p.a, p.b, _f(p.gamma, ".4g"), _f(p.r2), _f(p.r2_ab), _f(p.r2_ba), _f(p.rho), str(p.n), status)
    return t
