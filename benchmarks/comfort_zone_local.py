"""The Comfort Zone on this CPU (thesis §3.3.6): the conv sweep and the width sweep of the small-MBConv median network.

Both go through the agent on `--device` (default `local-cpu`: ONNX Runtime CPU, one intra-op thread), exactly as
`edgeprof comfort-zone` runs them (`hwsearch.comfort_zone_run.comfort_zone`): the conv sweep measures one 3x3 conv
at 14x14 over input x output channels 16..256 (8 x 8) and outlines the zone around I = O = 16; the width sweep
measures the median network (by FLOPs) of 21 mbconv-small networks sampled with seed 0 at ϕ = 1, 1.25, ..., 3,
picks the widest ϕ within the tolerance (10%) of ϕ = 1, and verifies that network in 3 rounds. Prints the grid's
latency range, the zone, ϕ, the scaled network's latency against the base, the roofline, the PNG paths and the
wall time. The thesis finds no zone on CPUs ("low parallelism"); a board with one widens for free.

Measurements go to `--db` (a rerun measures only what is missing). About 2.5 minutes on an idle 2-core machine.
`--quick` is a smoke size (a 3 x 3 grid at 8x8, ϕ = 1, 2 of an nb201 cell network, a short protocol, a throwaway
dataset): it checks that the benchmark runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hwsearch.comfort_zone_run import comfort_zone
from profiler.config import resolve_device
from spaces import create_space

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "out" / "comfort_zone_local"
QUICK_PROTOCOL = {"warmup_min_runs": 3, "warmup_min_s": 0.05, "min_runs": 5, "max_runs": 30, "target_rel_ci": 0.05}


def median_network(space_name: str, n: int = 21, seed: int = 0) -> str:
    """The arch id of the median network by FLOPs among `n` sampled ones (deterministic, no measurement)."""
    space = create_space(space_name)
    archs = space.sample_unique(n, np.random.default_rng(seed))
    flops = [space.costs(a)["flops"] for a in archs]
    return space.arch_id(archs[int(np.argsort(flops)[len(archs) // 2])])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="local-cpu")
    p.add_argument("--db", type=Path, help="dataset (default benchmarks/out/comfort_zone_local/cz.db)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the pictures")
    p.add_argument("--tolerance", type=float, default=0.10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="smoke size: a tiny grid and sweep, short protocol")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    config = resolve_device(args.device)
    tmp = tempfile.TemporaryDirectory() if args.quick else None
    out = Path(tmp.name) / "pics" if tmp else args.out
    db = args.db or ((Path(tmp.name) / "cz.db") if tmp else out / "cz.db")
    out.mkdir(parents=True, exist_ok=True)
    space = "nb201" if args.quick else "mbconv-small"
    arch = median_network(space, n=5 if args.quick else 21)
    conv_opts = {"h": 8, "channels": [8, 16, 32]} if args.quick else {}
    phis = [1.0, 2.0] if args.quick else None
    protocol = QUICK_PROTOCOL if args.quick else None

    t_conv = time.perf_counter()
    conv = comfort_zone(config, db, out, conv=True, width=False, tolerance=args.tolerance,
                        conv_options=conv_opts, protocol=protocol)
    conv_s = time.perf_counter() - t_conv
    t_width = time.perf_counter()
    width = comfort_zone(config, db, out, conv=False, width=True, tolerance=args.tolerance,
                         network={"space": space, "arch": arch}, phis=phis, rounds=args.rounds, protocol=protocol)
    width_s = time.perf_counter() - t_width
    w = width["width"]
    v = (w.get("scaled") or {}).get("verify") or {}
    z = conv["conv"]["zone"]
    res = {
        "device": config.name,
        "conv": {"probe": conv["conv"]["probe"], "latency_range_ms": conv["conv"]["latency_range_ms"],
                 "zone": {k: z[k] for k in ("base", "base_latency_ms", "i_range", "o_range", "cells", "has_zone",
                                            "channel_gain", "max_ratio", "verdict")},
                 "roofline": {k: conv["roofline"][k] for k in ("peak_mac_s", "bandwidth_gb_s",
                                                                "ridge_mac_per_element")},
                 "wall_s": round(conv_s, 1)},
        "width": {"space": space, "arch_id": arch,
                  "steps": [{"phi": s["phi"], "latency_ms": s["latency_ms"], "flops": s["flops"],
                             "intensity": s["intensity"]} for s in w["steps"]],
                  "phi": w["choice"]["phi"], "has_zone": w["choice"]["has_zone"], "verdict": w["choice"]["verdict"],
                  "base_ms": w["choice"]["base_latency_ms"], "scaled_measured_ms": v.get("median"),
                  "scaled_vs_base": v.get("error_vs_target"), "rounds": v.get("rounds"),
                  "wall_s": round(width_s, 1)},
        "plots": {"conv": conv["plots"]["conv"], "roofline_conv": conv["plots"]["roofline"],
                  "width": width["plots"]["width"], "roofline_width": width["plots"]["roofline"]},
        "db": str(db),
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        c = res["conv"]
        lo, hi = c["latency_range_ms"]
        print(f"conv sweep on {config.name}: latency {lo:.4g}-{hi:.4g} ms over the grid; {c['zone']['verdict']} "
              f"({c['wall_s']:.0f} s)")
        print(f"  roofline: peak {c['roofline']['peak_mac_s'] / 1e9:.3g} GMAC/s, bandwidth "
              f"{c['roofline']['bandwidth_gb_s']:.3g} GB/s, ridge {c['roofline']['ridge_mac_per_element']:.3g}")
        print(f"width sweep of {space} {arch}:")
        for s in res["width"]["steps"]:
            print(f"  ϕ {s['phi']:<5g} {s['latency_ms']:.4g} ms  {s['flops'] / 1e6:.0f} MFLOPs  "
                  f"intensity {s['intensity']:.1f}")
        print(f"  {res['width']['verdict']}; ϕ = {res['width']['phi']:g}")
        if v:
            print(f"  scaled network: {v['median']:.4g} ms (median of {v['rounds']} rounds) against "
                  f"{res['width']['base_ms']:.4g} ms at ϕ = 1 ({100 * v['error_vs_target']:+.1f}%)")
        print("pictures: " + ", ".join(res["plots"].values()))
        print(f"wall time {res['wall_s']:.0f} s", file=sys.stderr)
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
