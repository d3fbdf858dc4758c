"""The dataset: `summary` per device and space (and accuracy), `layers`, `import` published tables, `export`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from edgeprof.arguments import check_out_path
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import count_progress, err, out, print_json
from profiler.dataset import TABLES, export, layer_table, summarize
from profiler.store import Store
from spaces.errors import UserInputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    s = sub.add_parser("summary", help="counts, latency spread and environment per device and space")
    s.add_argument("--db", default=DEFAULT_DB)
    s.add_argument("--device", help="only this device")
    s.add_argument("--json", action="store_true", help="print JSON")
    lay = sub.add_parser("layers", help="per-layer latency (from `profile --layers`) by space layer or op type")
    lay.add_argument("--db", default=DEFAULT_DB)
    lay.add_argument("--device", required=True)
    lay.add_argument("--space", required=True)
    lay.add_argument("--by", choices=("layer", "op_type"), default="layer")
    lay.add_argument("--arch", help="one architecture id instead of the mean over models")
    lay.add_argument("--json", action="store_true", help="print JSON")
    imp = sub.add_parser("import", help="bring published latency or accuracy tables into the dataset (idempotent)")
    imp.add_argument("format", choices=("help", "latbench", "hwnasbench360", "nb201-accuracy"))
    imp.add_argument("path", help="HELP: its folder (or the shared folder); LatBench: a .pickle; "
                                  "HW-NAS-Bench-360: a .parquet; nb201-accuracy: a .csv (index,arch,test_accuracy)")
    imp.add_argument("--db", default=DEFAULT_DB)
    imp.add_argument("--devices", help="comma-separated device names to import (default all)")
    imp.add_argument("--space", help="HELP: nb201 or fbnet (default both); HW-NAS-Bench-360: the space (nb201)")
    imp.add_argument("--device", help="LatBench: the device name (default: from the file name)")
    imp.add_argument("--task", help="nb201-accuracy: the task (default: the file name, e.g. cifar100)")
    imp.add_argument("--json", action="store_true", help="print JSON")
    imp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    e = sub.add_parser("export", help="write every measurement (with accuracy columns) or accuracy record as a "
                                      "flat table")
    e.add_argument("out", help="output file (.csv or .parquet)")
    e.add_argument("--db", default=DEFAULT_DB)
    e.add_argument("--device", help="only this device")
    e.add_argument("--format", choices=("csv", "parquet"), help="default: from the file suffix")
    e.add_argument("--samples", action="store_true", help="include the raw per-run samples")
    e.add_argument("--table", choices=TABLES, default="measurements",
                   help="measurements (one column per task and accuracy metric joined on the arch) or accuracies")
    e.add_argument("--json", action="store_true", help="print JSON")


def summary_table(summary: dict) -> Table:
    t = Table("device", "space", "backend", "prec", "batch", "ok", "err", "min ms", "p50 ms", "max ms",
              "cv p50", "runs p50", title=f"{summary['db']}: medians over models")
    for g in summary["groups"]:
        lat = g.get("latency_ms")
        cv = "-" if g.get("cv_median") is None else f"{g['cv_median']:.3f}"
        nums = ([f"{lat['min']:.3f}", f"{lat['median']:.3f}", f"{lat['max']:.3f}", cv,
                 str(g["runs_median"] if g.get("runs_median") is not None else "-")] if lat else ["-"] * 5)
        t.add_row(g["device"], str(g["space"]), g["backend"], g["precision"], str(g["batch"]), str(g["ok"]),
                  str(g["error"]), *nums)
    return t


def accuracy_table(summary: dict) -> Table:
    t = Table("space", "task", "metric", "source", "n", "min", "median", "max", title="accuracy records")
    for g in summary["accuracy"]:
        t.add_row(g["space"], g["task"], g["metric"], g["source"], str(g["n"]),
                  *(f"{g[k]:.4g}" for k in ("min", "median", "max")))
    return t


def _open(db: str) -> Store:
    return Store(db, readonly=True)  # summary, layers and export only read: a read-only dataset works


def run_import(args: argparse.Namespace) -> int:
    from predictors.importers import IMPORTERS

    if not Path(args.path).exists():
        raise UserInputError(f"{args.path}: no such file or folder")
    latency_options = [o for o, v in (("--devices", args.devices), ("--device", args.device),
                                      ("--space", args.space)) if v]
    if args.format == "nb201-accuracy":
        if latency_options:
            raise UserInputError(f"{', '.join(latency_options)}: for latency tables, not nb201-accuracy")
        return _import_accuracy(args)
    if args.task:
        raise UserInputError(f"--task is for nb201-accuracy, not {args.format}")
    devices = [d for d in (args.devices or "").split(",") if d] or None
    with Store(args.db) as store:
        if args.format == "help":
            kw = {"spaces": (args.space,) if args.space else ("nb201", "fbnet"), "devices": devices}
        elif args.format == "latbench":
            kw = {"device": args.device}
        else:
            kw = {"space": args.space or "nb201", "devices": devices}
        with count_progress(f"importing {args.format}", quiet=args.quiet) as step:
            if args.format == "help":  # the long one (~45 s for all of HELP); the others take seconds
                kw["progress"] = step
            summary = IMPORTERS[args.format](store, args.path, **kw)
    if args.json:
        print_json(summary)
    else:
        err.print(f"{args.format}: {summary.get('added', 0)} measurements added, {summary.get('skipped', 0)} skipped, "
                  f"devices: {', '.join(summary.get('devices', []))} -> {args.db}")
    return 0


def _import_accuracy(args: argparse.Namespace) -> int:
    from predictors.importers import IMPORTERS

    with Store(args.db) as store:
        summary = IMPORTERS[args.format](store, args.path, task=args.task)
    if args.json:
        print_json(summary)
    else:
        err.print(f"{args.format}: {summary['added']} added, {summary['skipped']} skipped, {summary['replaced']} "
                  f"replaced ({summary['space']} {summary['task']} {summary['metric']}) -> {args.db}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "import":
        return run_import(args)
    if args.action == "export":
        check_out_path(args.out, folder=False, option="OUT")
    with _open(args.db) as store:
        if args.action == "summary":
            s = summarize(store, device=args.device)
            if args.json:
                print_json(s)
            else:
                if s["groups"] or not s["accuracy"]:
                    out.print(summary_table(s))
                if s["accuracy"]:
                    out.print(accuracy_table(s))
            return 0
        if args.action == "layers":
            t = layer_table(store, args.device, args.space, by=args.by, arch_id=args.arch)
            if args.json:
                print_json(t)
            else:
                table = Table(args.by, "ms (mean)", "share", title=f"{args.device} / {args.space}: "
                              f"{t['models']} model(s), {t['profiled_ms_mean']:.3f} ms profiled")
                for g in t["groups"]:
                    table.add_row(g["group"], f"{g['time_ms']:.4f}", f"{100 * g['share']:.1f}%")
                out.print(table)
            return 0
        n = export(store, args.out, fmt=args.format, device=args.device, with_samples=args.samples, table=args.table)
    if args.json:
        print_json({"rows": n, "out": args.out})
    else:
        err.print(f"wrote {n} rows to {args.out}")
    return 0
