"""The `edgeprof` command: flat subcommands, one module per command under edgeprof/commands/.

Exit codes: 0 ok, 1 error, 2 invalid input (config, job, arguments), 130 interrupted. Under --json a failure
also prints {"error": {"type", "message", "exit_code"}} on stdout, so a script reading stdout learns what happened
(stderr keeps the message for people).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from edgeprof import __version__

COMMANDS = ("devices", "trust", "deploy", "profile", "dataset", "train", "adapt", "evaluate", "predict", "costs",
            "report", "search", "comfort-zone", "demo", "graft", "proxies")
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Set to re-raise every failure with its traceback (for a bug report).
DEBUG_ENV = "EDGEPROF_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeprof", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"edgeprof {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        mod = importlib.import_module(f"edgeprof.commands.{name.replace('-', '_')}")
        p = sub.add_parser(name, help=mod.__doc__.splitlines()[0], description=mod.__doc__)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def exit_code(e: BaseException) -> int | None:
    """The exit code of a known failure: 2 for input the user got wrong, 1 for a runtime failure (store,
    transport, board, file system); None for anything else, which is a bug and keeps its traceback."""
    import sqlite3

    from agents.protocol import JobError
    from agents.registry import EntryImportError, UnknownEntryError
    from profiler.config import ConfigError
    from spaces.errors import RuntimeFailure, UserInputError

    # UnknownEntryError: a name no registry holds (spaces, predictors, searches: UnknownNameError; backends,
    # meters, transports).
    if isinstance(e, UserInputError | UnknownEntryError | ConfigError | JobError):
        return EXIT_USAGE
    # RuntimeFailure: StoreError, TransportError, AgentFailed, CorruptResults, SearchContractError, a failed
    # verification; OSError: a file or folder the system refused; an EntryImportError is a registered runtime
    # or plugin this installation cannot import. Any other RuntimeError (torch's, NotImplementedError) is a bug.
    if isinstance(e, RuntimeFailure | OSError | sqlite3.Error | EntryImportError):
        return EXIT_ERROR
    return None


def message(e: BaseException, args: argparse.Namespace) -> str:
    """The one line (or block) printed for a known failure; a SQLite error names the dataset file."""
    import sqlite3

    text = str(e) or type(e).__name__
    if isinstance(e, sqlite3.Error) and getattr(args, "db", None):
        text = f"{args.db}: {text}"
    return text


def json_error(kind: str, text: str, code: int) -> None:
    """The error object a --json run prints on stdout when it fails."""
    from edgeprof.output import print_json

    print_json({"error": {"type": kind, "message": text, "exit_code": code}})


def _wants_json(argv: list[str] | None) -> bool:
    """Whether the command line asked for --json (for an error before the arguments are parsed)."""
    return "--json" in (sys.argv[1:] if argv is None else argv)


def main(argv: list[str] | None = None) -> int:
    from rich.markup import escape

    from edgeprof.output import err
    from edgeprof.plugins import PluginError, load_plugins

    try:
        load_plugins()  # EDGEPROF_PLUGINS: searches, predictors, spaces registered before the parser is built
    except PluginError as e:
        err.print(f"[red]error:[/] {escape(str(e))}")
        if _wants_json(argv):
            json_error(type(e).__name__, str(e), EXIT_USAGE)
        return EXIT_USAGE
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error argparse has printed
        code = e.code if isinstance(e.code, int) else EXIT_USAGE
        if code and _wants_json(argv):
            json_error("UsageError", "invalid arguments (see the message on stderr)", code)
        return code
    as_json = bool(getattr(args, "json", False))
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        err.print("interrupted")
        if as_json:
            json_error("KeyboardInterrupt", "interrupted", EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        sys.stderr.close()
        return EXIT_OK
    except Exception as e:
        code = exit_code(e)
        if code is None or os.environ.get(DEBUG_ENV):
            raise
        text = message(e, args)
        err.print(f"[red]error:[/] {escape(text)}")
        if as_json:
            json_error(type(e).__name__, text, code)
        return code


if __name__ == "__main__":
    raise SystemExit(main())
