"""List the device configs edgeprof can see (a broken config is listed with its error)."""

from __future__ import annotations

import argparse

from rich.table import Table

from edgeprof.output import err, out, print_json
from profiler.config import ConfigError, config_dirs, list_configs, load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
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
