"""Measure where widening costs no latency on a device (thesis §3.3.6, the Comfort Zone).

`--conv` sweeps one convolution over input × output channels and outlines the zone around the base cell: the
largest rectangle of the grid, from the base up, whose latency stays within --tolerance of the base's.
`--width` measures a network (`--space S --arch A`, or `--result` of a search) at a uniform width multiplier
ϕ = 1, 1 + step, … up to --cap, and keeps the widest ϕ whose latency stays within --tolerance of ϕ = 1 ("no
Comfort Zone" when the first step already costs more); the chosen network is written to --out (ONNX and a
result JSON) and, with --verify, measured in --rounds separate jobs. Both write their pictures to --out and a
roofline of every point measured. Every network goes through the agent and is stored; a rerun measures only
what is missing. The work is `hwsearch.comfort_zone_run`'s; this module parses and prints.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgeprof.arguments import check_out_path
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, out, print_json, session_progress
from hwsearch.search_params import parse_numbers
from spaces.errors import UserInputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    from hwsearch.comfort_zone_run import DEFAULT_CAP, DEFAULT_STEP, DEFAULT_TOLERANCE

    p.add_argument("device", help="a device name (see `edgeprof devices`) or a path to a TOML file")
    p.add_argument("--conv", action="store_true", help="sweep one convolution over input x output channels")
    p.add_argument("--width", action="store_true", help="sweep a network's width multiplier")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"latency rise that still counts as free (default {DEFAULT_TOLERANCE}: +10%%)")
    p.add_argument("--batch", type=int, default=1, help="batch size of every measurement (default 1)")
    p.add_argument("--latency", choices=("end-to-end", "device"), default="end-to-end",
                   help="which latency decides: the agent's end-to-end median (default; host-device copies "
                        "included where the backend makes them, as TensorRT does) or the device's own compute "
                        "time (TensorRT, torch on CUDA)")
    g = p.add_argument_group("conv sweep")
    g.add_argument("--hw", type=int, default=14, help="input height and width of the probe layer (default 14)")
    g.add_argument("--k", type=int, default=3, help="kernel size (default 3)")
    g.add_argument("--stride", type=int, default=1, help="stride (default 1)")
    g.add_argument("--channels", metavar="C,C,...",
                   help="the channel grid, for inputs and outputs alike (default: the conv-probe space's)")
    g.add_argument("--base", metavar="I,O", help="base cell (default: the smallest of the grid)")
    g = p.add_argument_group("width sweep")
    g.add_argument("--space", help="space of the network to widen (with --arch)")
    g.add_argument("--arch", help="arch id of the network, as the space writes it")
    g.add_argument("--result", help="a search result JSON whose network to widen (instead of --space/--arch)")
    g.add_argument("--step", type=float, default=DEFAULT_STEP, help=f"ϕ step (default {DEFAULT_STEP})")
    g.add_argument("--cap", type=float, default=DEFAULT_CAP, help=f"largest ϕ (default {DEFAULT_CAP})")
    g.add_argument("--phis", metavar="1,1.5,...", help="the ϕ steps (instead of --step/--cap)")
    g.add_argument("--verify", action="store_true", help="measure the chosen network in --rounds separate jobs")
    g.add_argument("--rounds", type=int, default=3, help="verification rounds (default 3)")
    p.add_argument("--db", default=DEFAULT_DB, help=f"dataset file (default {DEFAULT_DB})")
    p.add_argument("--out", default="comfort-zone", help="folder for the pictures and the scaled network "
                                                         "(default ./comfort-zone)")
    p.add_argument("--json", action="store_true", help="print the grid, the zone and ϕ as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines")


def check(args: argparse.Namespace) -> None:
    """Everything the user can get wrong, before anything is measured."""
    if not (args.conv or args.width):
        raise UserInputError("say what to sweep: --conv, --width, or both")
    if not 0 < args.tolerance <= 1:
        raise UserInputError(f"--tolerance must be a fraction in (0, 1], got {args.tolerance}")
    if args.batch < 1:
        raise UserInputError(f"--batch must be at least 1, got {args.batch}")
    for option, kind in (("channels", int), ("base", int), ("phis", float)):  # the comma lists, parsed once
        if getattr(args, option) is not None:
            setattr(args, option, parse_numbers(getattr(args, option), kind, f"--{option}"))
    if args.base is not None and len(args.base) != 2:
        raise UserInputError(f"--base takes two channel counts I,O, got {args.base}")
    if args.width:
        if args.result is None and (args.space is None or args.arch is None):
            raise UserInputError("--width needs a network: --space S --arch A, or --result RESULT.json")
        if args.result is not None and (args.space or args.arch):
            raise UserInputError("--result names the network: leave out --space and --arch")
    elif args.verify or args.result or args.arch:
        raise UserInputError("--verify, --result and --arch belong to the width sweep: add --width")
    if args.rounds < 1:
        raise UserInputError(f"--rounds must be at least 1, got {args.rounds}")
    check_out_path(args.out, folder=True)


def run(args: argparse.Namespace) -> int:
    from hwsearch.comfort_zone_run import comfort_zone
    from profiler.config import resolve_device

    check(args)
    config = resolve_device(args.device)
    report = comfort_zone(
        config, args.db, Path(args.out), conv=args.conv, width=args.width, tolerance=args.tolerance,
        batch=args.batch, conv_options={"h": args.hw, "k": args.k, "stride": args.stride, "channels": args.channels,
                                        "base": tuple(args.base) if args.base else None},
        network={"space": args.space, "arch": args.arch, "result": args.result},
        phis=args.phis, step=args.step, cap=args.cap, rounds=args.rounds if args.verify else 0,
        progress=lambda: session_progress(args.quiet), log=_log(args.quiet), latency=args.latency)
    if args.json:
        print_json(report)
    else:
        print_report(report)
    return 0


def _log(quiet: bool) -> Any:
    from rich.markup import escape

    return (lambda _: None) if quiet else (lambda text: err.print(escape(text)))


def print_report(rep: dict[str, Any]) -> None:
    """The verdicts in words, then where the pictures are."""
    from rich.markup import escape

    conv = rep.get("conv")
    if conv:
        p, lo_hi = conv["probe"], conv["latency_range_ms"]
        out.print(f"conv sweep on {escape(rep['device'])}: {p['h']}x{p['w']} input, k{p['k']} s{p['stride']}, "
                  f"channels {conv['in_channels'][0]}..{conv['in_channels'][-1]} "
                  f"({len(conv['in_channels'])}x{len(conv['out_channels'])} grid"
                  + (f", {conv['failed']} failed" if conv["failed"] else "") + ")"
                  + (f": {'device ' if rep.get('latency') == 'device' else ''}latency {lo_hi[0]:.4g}-{lo_hi[1]:.4g} ms"
                     if lo_hi else ""))
        out.print(f"  {escape(conv['zone']['verdict'])}")
    width = rep.get("width")
    if width:
        steps = width["steps"]
        out.print(f"width sweep of {escape(width['space'])} {escape(width['arch_id'])} on {escape(rep['device'])}:")
        for s in steps:
            lat = "failed" if s["latency_ms"] is None else f"{s['latency_ms']:.4g} ms"
            out.print(f"  ϕ {s['phi']:<5g} {lat:>12}  {s['flops'] / 1e6:9.1f} MFLOPs  intensity "
                      f"{s['intensity']:.1f}")
        out.print(f"  {escape(width['choice']['verdict'])}")
        scaled = width.get("scaled") or {}
        v = scaled.get("verify")
        if v:
            vs = "" if v["error_vs_target"] is None else f", {100 * v['error_vs_target']:+.1f}% against ϕ = 1"
            out.print(f"  scaled network measured: {v['median']:.4g} ms (median of {v['rounds']} rounds{vs})")
        if scaled.get("path"):
            err.print(f"scaled network: {escape(scaled['path'])} and {escape(scaled['onnx'])}")
    roof = rep.get("roofline")
    if roof:
        out.print(f"roofline (the tightest roofs over the points measured): peak {roof['peak_mac_s'] / 1e9:.3g} "
                  f"GMAC/s, bandwidth {roof['bandwidth_gb_s']:.3g} GB/s (fp32), ridge at "
                  f"{roof['ridge_mac_per_element']:.3g} MACs per element")
    pngs = [v for k, v in rep.get("plots", {}).items() if v]
    if pngs:
        err.print("pictures: " + ", ".join(escape(p) for p in pngs))
    err.print(f"dataset: {escape(str(rep['db']))}")
