"""Per-layer FLOPs, memory accesses and arithmetic intensity of one network of a space (thesis eq. 3.18-3.20).

FLOPs are multiply-accumulates (no factor 2; a depthwise or grouped conv counts its own group's inputs),
memory accesses are elements read or written (input and output feature maps plus weights, ShuffleNetV2's
"MAC"), intensity is their ratio; the network's intensity is total FLOPs over total accesses. Only Conv2d and
Linear layers are counted, batch 1. `--width PHI` counts the network with every channel count times PHI
(the Comfort Zone's width multiplier), to see what widening does to intensity before measuring it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from edgeprof.arguments import _json_object
from edgeprof.output import out, print_json
from spaces import create_space, list_spaces


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", required=True, help=f"search space: {', '.join(list_spaces())}")
    p.add_argument("--arch", required=True, metavar="ARCH_ID", help="an architecture id in the space's own format")
    p.add_argument("--space-config", type=_json_object, metavar="JSON",
                   help="the space's config as a JSON object (default: the registered one), "
                        "e.g. '{\"h\": 56, \"w\": 56, \"k\": 1}' for conv-probe")
    p.add_argument("--width", type=float, metavar="PHI",
                   help="count the network with every channel count times PHI (spaces with a width: mbconv, "
                        "mbconv-small, nb201)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _shape(dims: Sequence[int] | None) -> str:
    return "×".join(str(d) for d in dims) if dims else "-"


def _square(pair: Sequence[int] | None) -> str:
    """'3' for (3, 3), '1×3' for (1, 3), '-' for a Linear."""
    if not pair:
        return "-"
    return str(pair[0]) if len(set(pair)) == 1 else "×".join(map(str, pair))


def layer_table(report: dict[str, Any]) -> Table:
    width = f", width ×{report['width']:g}" if report["width"] is not None else ""
    t = Table("layer", "part", "kind", "in C×H×W", "out", "k", "stride", "groups", "FLOPs", "mem. accesses",
              "intensity", title=f"{report['space']}{width}, input {_shape(report['input_shape'])}",
              caption=f"arch {report['arch']}")
    for layer in report["layers"]:
        t.add_row(layer["name"] or "(network)", layer["part"] or "-", layer["kind"], _shape(layer["in_shape"]),
                  _shape(layer["out_shape"]), _square(layer["kernel"]), _square(layer["stride"]),
                  str(layer["groups"]), f"{layer['flops']:,}", f"{layer['mem_access']:,}",
                  f"{layer['intensity']:.1f}")
    return t


def run(args: argparse.Namespace) -> int:
    from spaces.costs import arch_costs

    space = create_space(args.space, **(args.space_config or {}))
    if args.width is not None:
        space = space.widened(args.width)
    arch = space.parse(args.arch)
    costs = arch_costs(space, arch)
    report = {"space": space.name, "config": space.config, "arch": space.arch_id(arch), "width": args.width,
              "input_shape": list(space.input_shape_of(arch, 1)), **costs}
    if args.json:
        print_json(report)
        return 0
    out.print(layer_table(report))
    tot = report["totals"]
    out.print(f"total: {tot['flops']:,} FLOPs (multiply-accumulates), {tot['params']:,} params, "
              f"{tot['mem_access']:,} memory accesses (elements), intensity {tot['intensity']:.1f} "
              f"FLOPs per access ({len(report['layers'])} counted layers)")
    return 0
