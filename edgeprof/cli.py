"""The `edgeprof` command: flat subcommands, one module per command under edgeprof/commands/.

Exit codes: 0 ok, 1 error, 2 invalid input (config, job, arguments), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from edgeprof import __version__

COMMANDS = ("devices", "trust", "deploy", "profile", "dataset", "train", "adapt", "evaluate", "predict", "report",
            "search", "demo")
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeprof", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"edgeprof {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        mod = importlib.import_module(f"edgeprof.commands.{name}")
        p = sub.add_parser(name, help=mod.__doc__.splitlines()[0], description=mod.__doc__)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from agents.protocol import JobError
    from edgeprof.output import err
    from profiler.config import ConfigError
    from profiler.store import StoreError
    from profiler.transports import TransportError
    from spaces import UnknownSpaceError

    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ConfigError, JobError, UnknownSpaceError, ValueError) as e:
        err.print(f"[red]error:[/] {e.args[0] if e.args else e}")
        return EXIT_USAGE
    except (TransportError, StoreError, RuntimeError) as e:
        err.print(f"[red]error:[/] {e}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        err.print("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
