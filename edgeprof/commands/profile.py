"""Measure sampled architectures of a space, or the user's own ONNX file, on a device and store them.

Re-running the same command measures only what is still missing; Ctrl-C keeps every finished result.
A measurement that fails on the board is stored as an error and the command exits 1; a rerun tries it again.
`--batch 1,8,32` measures each batch size and prints latency per batch, per image and images/s side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from edgeprof.arguments import _json_object
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, fleet_progress, out, print_json, session_progress
from profiler.config import resolve_device
from profiler.report import parse_batches
from profiler.store import Store
from spaces import SearchSpace, UserInputError, create_space, list_spaces

EXIT_INTERRUPTED = 130


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("device", help="a device name (see `edgeprof devices`) or a path to a TOML file; "
                   "several, comma-separated, run in parallel (one worker per board)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--space", help=f"search space: {', '.join(list_spaces())}")
    what.add_argument("--onnx", metavar="FILE", help="your own ONNX model (one file, weights inside it)")
    p.add_argument("--space-config", type=_json_object, metavar="JSON",
                   help="with --space: the space's config as a JSON object (default: the registered one), e.g. "
                        "'{\"width_mult\": 0.5}' for mbconv-small or '{\"base\": \"found.json\"}' for "
                        "mbconv-channels (a LightNAS result)")
    p.add_argument("--n", type=int, help="number of architectures to sample (with --space)")
    p.add_argument("--archs", metavar="FILE", help="with --space, instead of --n: measure exactly these networks, "
                   "one arch id per line (blank lines and '#' comments skipped): networks you chose to measure")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--input-shape", action="append", default=[], metavar="[NAME:]SHAPE",
                   help="with --onnx: the shape of an input with dynamic dims besides the batch, e.g. 1x3x224x224, "
                        "or images:1x3x224x224 (repeat per input); the first dim is replaced by each batch")
    p.add_argument("--batch", default="1", help="batch size, or several comma-separated (1,8,32): one measurement "
                   "per batch, with throughput (images/s) beside latency (default 1)")
    p.add_argument("--db", default=DEFAULT_DB, help=f"dataset file (default {DEFAULT_DB})")
    p.add_argument("--layers", nargs="?", type=int, const=20, default=0, metavar="RUNS",
                   help="also record a per-layer profile from the runtime's own profiler, averaged over RUNS "
                        "runs after the timed phase (default 20); see `edgeprof dataset layers`")
    p.add_argument("--json", action="store_true", help="print the run's report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _jobs(jobs: list[str]) -> str:
    return ", ".join(jobs[:2]) + (f" and {len(jobs) - 2} more" if len(jobs) > 2 else "")


def summary_line(rep: dict) -> str:
    """What the run did, in words: rows collected from earlier jobs apart from what this run measured."""
    parts = []
    if rep.get("collected"):
        jobs = [j["job_id"] for j in rep.get("collected_jobs", [])]
        parts.append(f"collected {rep['collected']} from an earlier run ({'jobs' if len(jobs) > 1 else 'job'} "
                     f"{_jobs(jobs)})")
    parts += [f"measured {rep['measured_ok']}", f"{rep['measured_error']} failed",
              f"{rep['already_measured']} already in the store"]
    if rep.get("remaining"):
        parts.append(f"{rep['remaining']} still to measure")
    return f"{rep['device']} / {rep['space']}: {', '.join(parts)}, {rep['wall_s']:.1f} s"


def board_lines(rep: dict) -> list[str]:
    """Other jobs found on the board: running ones of other datasets one by one (this run waited for them),
    finished ones as a count (they stay until their own dataset collects them), those of a copy of this
    dataset per copy, unreadable ones by id."""
    lines, finished, copies = [], 0, {}
    for f in rep.get("foreign_jobs", []):
        if f.get("same_dataset_id"):
            copies.setdefault((f.get("db"), f.get("host")), []).append(f["job_id"])
        elif f.get("running"):
            lines.append(f"  job {f['job_id']} of another dataset ({f.get('db')} on {f.get('host')}) was "
                         "running: waited for it")
        else:
            finished += 1
    if finished:
        lines.append(f"  {finished} finished job(s) of other datasets left on the board for them")
    for (db, host), jobs in copies.items():
        lines.append(f"  {'jobs' if len(jobs) > 1 else 'job'} {_jobs(jobs)}: same dataset id as this one: a copy "
                     f"of it at {db} on {host} owns {'them' if len(jobs) > 1 else 'it'} (run there to collect)")
    for u in rep.get("unreadable_jobs", []):
        lines.append(f"  job {u['job_id']} on the board left alone: {u.get('why')} (being written by another "
                     "run, or damaged)")
    return lines


def print_report(rep: dict, db: str) -> None:
    msg = summary_line(rep)
    err.print(escape(msg) + (" [yellow](interrupted: rerun to finish)[/]" if rep["interrupted"] else ""))
    if rep.get("models_resent"):
        err.print(f"  re-sent {rep['models_resent']} model(s) the board found damaged (sha256 mismatch) and "
                  f"measured them again (job {rep.get('retry_job_id')})")
    if rep.get("agent_restarts"):
        err.print(escape(f"  the agent on the board was killed mid-job {rep['agent_restarts']} time(s); its tasks "
                         f"without a result ran again in job(s) {', '.join(rep.get('restart_job_ids') or [])}"))
    if rep.get("cache_repaired"):
        err.print(f"  re-exported {rep['cache_repaired']} model(s) whose cached file on this host was damaged")
    for line in board_lines(rep):
        err.print(escape(line))
    for e in rep["errors"][:3]:
        msg = " ".join(str(e.get("message")).split())
        err.print(f"  [red]{e['task_id']}[/] {e.get('type')}: {escape(msg[:300])}{'...' if len(msg) > 300 else ''}")
    if len(rep["errors"]) > 3:
        err.print(f"  ... and {len(rep['errors']) - 3} more (edgeprof dataset summary lists error types)")
    err.print(f"dataset: {db}")


def overrides(args: argparse.Namespace) -> dict:
    if args.layers < 0:
        raise UserInputError(f"--layers must be a number of runs >= 0, got {args.layers}")
    return {"layer_profile_runs": args.layers} if args.layers else {}


def run(args: argparse.Namespace) -> int:
    from profiler.session import profile  # loads the exporters (torch, onnx): not at --help time

    batches = parse_batches(args.batch)
    names = [d for d in args.device.split(",") if d]
    if len(names) > 1 and (args.onnx or len(batches) > 1):
        raise UserInputError(f"{'--onnx' if args.onnx else 'a batch list'} measures on one device at a time "
                             f"({len(names)} given: {', '.join(names)}); run one command per device")
    if args.onnx:
        if args.n is not None or args.space_config is not None or args.archs is not None:
            flag = "--n" if args.n is not None else "--space-config" if args.space_config is not None else "--archs"
            raise UserInputError(f"{flag} is for a space's networks; --onnx measures the one file: leave {flag} out")
        return run_onnx(args, batches)
    if args.input_shape:
        raise UserInputError("--input-shape sets the inputs of an --onnx file; a space knows its input shape")
    if args.archs is not None and (args.n is not None or len(names) > 1 or len(batches) > 1):
        why = "--n samples networks" if args.n is not None else (
            "it measures on one device at a time" if len(names) > 1 else "it measures at one batch size")
        raise UserInputError(f"--archs names the networks to measure and {why}: give --archs alone, on one device "
                             "and one batch")
    if args.n is None and args.archs is None:
        raise UserInputError("--space needs --n, the number of architectures to sample (or --archs FILE)")
    args.batch = batches[0]
    if len(names) > 1:
        if args.space_config is not None:
            raise UserInputError(f"--space-config measures on one device at a time ({len(names)} given: "
                                 f"{', '.join(names)}); run one command per device")
        return run_fleet_command(args, names)
    if len(batches) > 1:
        return run_space_sweep(args, batches)
    config = resolve_device(args.device)
    space = create_space(args.space, **(args.space_config or {}))
    archs = None if args.archs is None else read_archs(args.archs, space)
    # --json keeps its progress bars: they go to stderr, stdout holds only the JSON (-q silences them)
    with Store(args.db) as store, session_progress(args.quiet) as progress:
        report = profile(config, space, n=args.n or 0, seed=args.seed, batch=args.batch, store=store,
                         progress=progress, protocol_overrides=overrides(args), archs=archs)
    rep = report.to_dict()
    if args.json:
        print_json(rep)
    else:
        print_report(rep, args.db)
    # A failed measurement (the board could not load or run a model) is an error: the good ones are stored
    # and a rerun tries the failed ones again.
    return EXIT_INTERRUPTED if report.interrupted else (1 if report.errors or report.remaining else 0)


def read_archs(path: str, space: SearchSpace) -> list[tuple[int, ...]]:
    """The arch ids in `path`, one per line (blank lines and '#' comments skipped, repeats kept once), parsed
    by `space`; UserInputError naming the file and line of a bad one, or an empty file."""
    from spaces.base import InvalidArchError

    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserInputError(f"--archs {path}: cannot read it ({e})") from None
    archs: dict[tuple[int, ...], None] = {}
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            archs.setdefault(space.parse(text))
        except InvalidArchError as e:
            raise UserInputError(f"--archs {path}, line {number}: {e}") from None
    if not archs:
        raise UserInputError(f"--archs {path} names no network (one {space.name} arch id per line)")
    return list(archs)


def _ms(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def sweep_table(title: str, rows: list[dict], spread: str) -> Table:
    """Per batch: latency per batch (the stored figure), per image and images/s (derived from it)."""
    t = Table("batch", "median ms / batch", "ms / image", "images/s", spread, title=title)
    for r in rows:
        if spread == "archs":
            extra = str(r["n"])
        else:
            extra = "-" if r.get("p10_ms") is None else f"{r['p10_ms']:.3f}-{r['p90_ms']:.3f}"
        t.add_row(str(r["batch"]), _ms(r["median_ms"]), _ms(r["per_image_ms"], 4), _ms(r["images_per_s"], 1), extra)
    return t


def _finish(rep: dict, db: str, title: str, spread: str, as_json: bool) -> int:
    if as_json:
        print_json(rep)
    else:
        out.print(sweep_table(title, rep["batches"], spread))
        print_report(rep, db)
    if rep["interrupted"]:
        return EXIT_INTERRUPTED
    return 1 if rep["errors"] or rep.get("remaining") else 0


def run_onnx(args: argparse.Namespace, batches: list[int]) -> int:
    from profiler.onnx_profile import profile_onnx
    from spaces.onnx_file import parse_input_shapes

    shapes = parse_input_shapes(args.input_shape)
    config = resolve_device(args.device)
    with Store(args.db) as store, session_progress(args.quiet) as progress:
        run = profile_onnx(config, args.onnx, batches, store, input_shapes=shapes, progress=progress,
                           protocol_overrides=overrides(args))
    rep, m = run.to_dict(), run.model
    if not args.json:
        flops = "-" if m["flops"] is None else f"{m['flops'] / 1e6:.1f} M"
        err.print(escape(f"{m['file']}: sha256 {m['sha256'][:12]}, inputs {m['inputs']} (at batch 1), "
                         f"FLOPs {flops}, intensity {_ms(m['intensity'], 1)}"))
        if m.get("note"):
            err.print(f"  [yellow]{escape(m['note'])}[/]")
    title = f"{config.name} / {Path(m['file']).name}: latency per batch and throughput"
    return _finish(rep, args.db, title, "p10-p90 ms", args.json)


def run_space_sweep(args: argparse.Namespace, batches: list[int]) -> int:
    from profiler.batch_sweep import profile_batches

    config = resolve_device(args.device)
    space = create_space(args.space, **(args.space_config or {}))
    with Store(args.db) as store, session_progress(args.quiet) as progress:
        sweep = profile_batches(config, space, args.n, args.seed, batches, store, progress=progress,
                                protocol_overrides=overrides(args))
    return _finish(sweep.to_dict(), args.db, f"{config.name} / {space.name}, n={args.n}: median over "
                   "architectures per batch", "archs", args.json)


def run_fleet_command(args: argparse.Namespace, names: list[str]) -> int:
    from profiler.fleet import run_fleet  # loads the exporters (torch, onnx): not at --help time

    configs = [resolve_device(n) for n in names]  # every config is checked before any board starts
    create_space(args.space)
    with fleet_progress(args.quiet) as progress_for:
        outcomes = run_fleet(configs, args.space, args.n, args.seed, args.batch, args.db, progress_for,
                             protocol_overrides=overrides(args))
    rows = [o.to_dict() for o in outcomes]
    if args.json:
        print_json({"space": args.space, "n": args.n, "db": args.db, "boards": rows})
    else:
        t = Table("board", "status", "collected", "measured", "failed", "already", "remaining", "models/hour",
                  "wall s", title=f"{args.space}, n={args.n}")
        for r in rows:
            t.add_row(r["device"], r["status"] if not r["error"] else f"[red]{r['error']}[/]",
                      *(str(r.get(k, "-")) for k in ("collected", "measured_ok", "measured_error",
                                                     "already_measured", "remaining", "models_per_hour", "wall_s")))
        out.print(t)
        err.print(f"dataset: {args.db}")
    if any(r["status"] == "interrupted" for r in rows):
        return EXIT_INTERRUPTED
    return 1 if any(r["error"] or r.get("measured_error") or r.get("remaining") for r in rows) else 0
