"""Show a board's SSH host key fingerprint and, once confirmed, record it in known_hosts.

Compare the fingerprint with the one the board prints itself (`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`
on its console) before you accept it: this is what protects every later connection.
"""

from __future__ import annotations

import argparse
import sys

from edgeprof.output import err, print_json
from profiler.config import resolve_device
from profiler.transports.ssh_hosts import (
    fetch_host_key,
    fingerprint,
    known_host_key,
    resolve_target,
    trust_host_key,
)
from spaces.errors import UserInputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("device", help="a device name or a path to a TOML file")
    p.add_argument("--yes", action="store_true", help="record without asking (you checked the fingerprint)")
    p.add_argument("--json", action="store_true", help="print JSON (implies no prompt; records only with --yes)")


def run(args: argparse.Namespace) -> int:
    config = resolve_device(args.device)
    if config.connection.transport != "ssh":
        raise UserInputError(f"{config.path or config.name}: connection.transport is {config.connection.transport!r}; "
                         "only ssh devices have host keys")
    target = resolve_target(config)
    key = fetch_host_key(target)
    fp = fingerprint(key)
    known = known_host_key(target)
    state = "unknown" if known is None else ("trusted" if known == key else "changed")
    report = {"device": config.name, "host": target.host_key_name, "key_type": key.get_name(),
              "fingerprint": fp, "known_hosts": target.known_hosts, "state": state, "recorded": False}
    if state == "changed":
        report["known_fingerprint"] = fingerprint(known)
        msg = (f"{target.host_key_name} now offers {fp} but {target.known_hosts} has {fingerprint(known)}. "
               f"If the board was reinstalled, remove the old entry (ssh-keygen -R '{target.host_key_name}' "
               f"-f {target.known_hosts}) and run this again.")
        if args.json:
            print_json(report)
        else:
            err.print(f"[red]host key CHANGED:[/] {msg}")
        return 1
    if state == "unknown":
        accept = args.yes
        if not accept and not args.json and sys.stdin.isatty():
            err.print(f"{target.host_key_name} offers {key.get_name()} key {fp}")
            accept = input("Is this the board's key? Record it in known_hosts [y/N] ").strip().lower() == "y"
        if accept:
            trust_host_key(target, key)
            report["recorded"] = True
            report["state"] = "trusted"
    if args.json:
        print_json(report)
    elif report["state"] == "trusted":
        err.print(f"{target.host_key_name} {key.get_name()} {fp}: "
                  + ("recorded in " if report["recorded"] else "already trusted in ") + target.known_hosts)
    else:
        err.print(f"{target.host_key_name} offers {key.get_name()} {fp}; not recorded (check it, then run "
                  f"`edgeprof trust {config.name} --yes`)")
    return 0 if report["state"] == "trusted" else 1
