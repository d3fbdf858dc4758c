"""Put the agent on a board (content-hashed: unchanged agents are not sent again) and say what it offers."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from edgeprof.output import err, out, print_json
from profiler.config import resolve_device
from profiler.transports import open_transport


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("device", help="a device name or a path to a TOML file")
    p.add_argument("--json", action="store_true", help="print JSON")


def offer(info: dict[str, Any], backend: str) -> dict[str, Any]:
    """The parts of `agents info` a user decides with: runtimes, meters, board, and what is missing."""
    backends = info.get("backends", {})
    wanted = backends.get(backend, {})
    missing = [] if wanted.get("available") else [
        f"backend {backend!r}: {wanted.get('reason') or 'not reported by the agent'}"]
    env = info.get("environment") or {}
    board = {k: env.get(k) for k in ("hostname", "machine", "board_model", "l4t", "jetpack", "kernel")}
    board["cpu_model"] = (env.get("cpu") or {}).get("model")
    return {"backends": backends, "meters": info.get("meters", {}), "board": board,
            "python": info.get("python"), "missing": missing}


def run(args: argparse.Namespace) -> int:
    config = resolve_device(args.device)
    with open_transport(config) as transport:
        digest = transport.prepare()
        info = transport.agent_info()
        uploaded = getattr(transport, "agent_uploaded", None)
    report = {"device": config.name, "agent_hash": digest, "agent_uploaded": uploaded, **offer(info, config.runtime.backend),
              "info": info}
    if args.json:
        print_json(report)
        return 0 if not report["missing"] else 1
    err.print(f"{config.name}: agent {digest} " + ("uploaded" if uploaded else "already there (not sent again)")
              if uploaded is not None else f"{config.name}: agent {digest} ready")
    py = info.get("python") or {}
    board = ", ".join(f"{k} {v}" for k, v in report["board"].items() if v)
    err.print(f"python {py.get('version')} ({py.get('executable')}); {board}")
    t = Table("runtime", "available", "version / reason")
    for name, b in sorted(report["backends"].items()):
        t.add_row(name, "yes" if b.get("available") else "no",
                  ", ".join(f"{k} {v}" for k, v in (b.get("versions") or {}).items() if isinstance(v, str))
                  if b.get("available") else str(b.get("reason")))
    out.print(t)
    m = Table("power meter", "available", "detail")
    for name, b in sorted(report["meters"].items()):
        m.add_row(name, "yes" if b.get("available") else "no", str(b.get("rail") or b.get("reason") or b.get("note") or ""))
    out.print(m)
    for line in report["missing"]:
        err.print(f"[yellow]missing:[/] {line}")
    return 0 if not report["missing"] else 1
