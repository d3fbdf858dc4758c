"""Command line of the agent; the only module that prints or exits.

    python -m agents info [--json]
    python -m agents run JOB.json [--out results.jsonl] [--no-resume] [--quiet] [--start-token TOKEN]
    python -m agents worker --job JOB.json --task TASK_ID --out RESULT.json   (internal, one task)

Exit codes: 0 every task has a result line (error lines included); 1 error (lock held, tasks left
without a line); 2 invalid job or arguments; 3 the job folder was already started (its runner.json
records a start token; nothing was touched, so a host's wrapper must not record this as the job's
status); 130/143 interrupted by SIGINT/SIGTERM.

EDGEPROF_AGENT_ROOT, when set, is a path prefix that replaces "/" for every board reader (a fake board
tree in tests and demos); `run` hands it on to its workers.
"""

import argparse
import json
import os
import sys

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_ALREADY_STARTED = 3

# A path prefix that replaces "/" for every sysfs/proc reader: a fake board tree in tests and demos
ROOT_ENV = "EDGEPROF_AGENT_ROOT"


def _root():
    return os.environ.get(ROOT_ENV) or "/"


def _err(message):
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


def _progress_line(result, progress):
    head = "[{}/{}] {} {} {}".format(
        progress["done"],
        progress["total"],
        result.get("task_id"),
        result.get("backend"),
        result.get("precision"),
    )
    if result.get("status") == "ok":
        lat = result["latency_ms"]
        ci = lat.get("ci_rel")
        ci_txt = "n/a" if ci is None else f"{100 * ci:.2f}%"
        line = "{}: ok  median {:.4g} ms  n={}  ci {}".format(head, lat["median"], lat["n"], ci_txt)
        if not lat.get("converged"):
            line += "  (not converged)"
        n_warn = len(result.get("warnings") or [])
        if n_warn:
            line += "  [{} warning{}]".format(n_warn, "s" if n_warn > 1 else "")
        return line
    error = result.get("error") or {}
    message = (error.get("message") or "").splitlines()
    return "{}: error {}: {}".format(head, error.get("type"), message[0] if message else "")


def _start_token(text):
    from .start import START_TOKEN

    if not START_TOKEN.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected 1 to 64 of A-Z a-z 0-9 _ -")
    return text


def cmd_info(args):
    from .info import collect_info, format_info

    info = collect_info(_root())
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(format_info(info) + "\n")
    return EXIT_OK


def cmd_run(args):
    from .protocol import EXIT_BOARD_BUSY, JobError
    from .runner import BoardBusy, Interrupted, LockError, run_job
    from .start import AlreadyStarted

    def on_result(result, progress):
        if not args.quiet:
            _err(_progress_line(result, progress))

    try:
        summary = run_job(
            args.job,
            out_path=args.out,
            resume=not args.no_resume,
            on_result=on_result,
            board_lock=args.board_lock,
            root=_root(),
            start_token=args.start_token,
        )
    except AlreadyStarted as exc:
        _err(f"not started: {exc}")
        return EXIT_ALREADY_STARTED
    except JobError as exc:
        _err(f"invalid job {args.job}: {exc}")
        return EXIT_USAGE
    except LockError as exc:
        _err(f"cannot run: {exc}")
        return EXIT_BOARD_BUSY if isinstance(exc, BoardBusy) else EXIT_ERROR
    except Interrupted as exc:
        _err(f"interrupted ({exc}); results so far are in place, rerun to resume")
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except OSError as exc:  # results folder not writable, disk full
        _err(f"cannot run: {exc}")
        return EXIT_ERROR
    if not args.quiet:
        _err(
            "{job_id}: {total} tasks: {ok} ok, {error} error, {skipped} already done -> {out_path}".format(
                **summary
            )
        )
    if summary["missing"]:
        _err("tasks without a result line: {}".format(", ".join(summary["missing"])))
        return EXIT_ERROR
    return EXIT_OK


def cmd_worker(args):
    from .protocol import JobError, load_job
    from .worker import run_task, write_result_file

    try:
        job_state = json.loads(args.job_state) if args.job_state else None
    except ValueError as exc:
        _err(f"worker: --job-state is not JSON: {exc}")
        return EXIT_USAGE
    try:
        job = load_job(args.job)
        root = args.root or _root()
        result = run_task(
            job, args.task, args.job, idle_power_mw=args.idle_mw, root=root, job_state=job_state
        )
    except JobError as exc:
        _err(f"worker: invalid job {args.job}: {exc}")
        return EXIT_USAGE
    write_result_file(result, args.out)
    return EXIT_OK


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m agents", description="edgeprof board-side agent")
    sub = parser.add_subparsers(dest="command", metavar="{info,run}")
    p = sub.add_parser("info", help="what this machine offers: backends, power meters, board")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("run", help="measure every task of a job, appending to results.jsonl")
    p.add_argument("job", help="job.json (model paths are relative to its folder)")
    p.add_argument("--out", default=None, help="results file (default: results.jsonl beside the job)")
    p.add_argument(
        "--no-resume", action="store_true", help="run every task, even those already in the results"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument("--board-lock", default=None, help="lock file for the whole board (one job at a time)")
    p.add_argument(
        "--start-token",
        default=None,
        type=_start_token,
        help="record this token in runner.json beside the results; exit 3 if the folder already has one",
    )
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("worker")  # internal: one task in this process, result written to --out
    p.add_argument("--job", required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--idle-mw", type=float, default=None)
    p.add_argument("--job-state", default=None)  # JSON: board setup and idle power, measured once per job
    p.add_argument("--root", default=None)  # fake board tree (default: $EDGEPROF_AGENT_ROOT or /)
    p.set_defaults(func=cmd_worker)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_usage(sys.stderr)
        _err("python -m agents: error: a command is required (info, run)")
        return EXIT_USAGE
    try:
        return args.func(args)
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
