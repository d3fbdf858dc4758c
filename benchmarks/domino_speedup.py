"""Domino's speed-up on this CPU (thesis Fig. 5.2, Table 5.2): MobileNetV2 original vs half grafted vs all grafted,
each merged into one conv per grafted block, measured through the agent on `local-cpu`.

Three masks of the `mobilenetv2` space (torchvision's MobileNetV2 at 224x224, 1000 classes): all ones (the
original network, 52 convs), every other block grafted (the t=1 block and every second one after it), all
grafted (Domino-Aggressive: stem + 17 merged convs + head). Each is what a board measures: the export of a
grafting space is the merged network. Two backends through the agent: ONNX Runtime (the `local-cpu` config: CPU
provider, one thread) and torch eager (the space's own package, one thread, a config written beside the data),
at batch 1 and 8 (the thesis measures at 8). Prints conv counts, FLOPs, median latency per mask and the
speed-up against the original; the thesis reports x3.8 on Xavier and x3.1 on Nano (TensorRT/PyTorch, batch 8)
for the all-grafted network.

Measurements go to `--db` (a rerun measures only what is missing). `--quick` is a smoke size
(`mobilenetv2-small`, the original and the all-grafted network, batch 1, a short protocol, a throwaway
dataset): it checks that the benchmark runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from profiler.config import load_config, resolve_device
from profiler.proxy_accuracy import count_convs
from profiler.session import profile
from profiler.store import Store
from spaces import create_space

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "out" / "domino_speedup"
QUICK_PROTOCOL = {"warmup_min_runs": 3, "warmup_min_s": 0.05, "min_runs": 5, "max_runs": 30, "target_rel_ci": 0.05}
THESIS = {"xavier_batch8": 3.8, "nano_batch8": 3.1}

TORCH_TOML = """name = "local-cpu-torch"
kind = "cpu"
description = "This machine's CPU, torch eager (the space's own modules), one thread"
[connection]
transport = "local"
workdir = "{workdir}"
[runtime]
backend = "torch"
precision = "fp32"
device = "cpu"
threads = 1
[meter]
kind = "none"
"""


def masks(n_blocks: int) -> dict[str, str]:
    """The three networks compared, by mask (1 = original block, 0 = grafted)."""
    return {"original": "1" * n_blocks,
            "half grafted": "".join("0" if i % 2 == 0 else "1" for i in range(n_blocks)),
            "all grafted": "0" * n_blocks}


def structure(space: Any, arch: tuple[int, ...]) -> dict[str, Any]:
    """Convs and FLOPs of the deployed (merged) network."""
    costs = space.costs(arch)
    return {"convs": count_convs(space.build(arch)), "mflops": costs["flops"] / 1e6, "mparams": costs["params"] / 1e6}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="mobilenetv2")
    p.add_argument("--db", type=Path, help="dataset (default benchmarks/out/domino_speedup/speedup.db)")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--backends", default="onnxruntime,torch")
    p.add_argument("--quick", action="store_true", help="smoke size: mobilenetv2-small, batch 1, short protocol")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    tmp = tempfile.TemporaryDirectory() if args.quick else None
    out = Path(tmp.name) if tmp else DEFAULT_OUT
    out.mkdir(parents=True, exist_ok=True)
    db = args.db or out / "speedup.db"
    space = create_space("mobilenetv2-small" if args.quick else args.space)
    batches = [1] if args.quick else [int(b) for b in args.batches.split(",")]
    torch_toml = out / "local-cpu-torch.toml"
    torch_toml.write_text(TORCH_TOML.format(workdir=out / "torch-work"))
    configs = {"onnxruntime": resolve_device("local-cpu"), "torch": load_config(torch_toml)}
    configs = {b: configs[b] for b in args.backends.split(",")}
    protocol = QUICK_PROTOCOL if args.quick else None

    nets = {name: space.parse(mask) for name, mask in masks(space.n_layers).items()
            if not (args.quick and name == "half grafted")}
    rows: dict[str, Any] = {name: {"mask": space.arch_id(arch), **structure(space, arch), "latency_ms": {}}
                            for name, arch in nets.items()}
    with Store(db) as store:
        for backend, config in configs.items():
            for batch in batches:
                rep = profile(config, space, n=len(nets), seed=0, batch=batch, store=store, archs=list(nets.values()),
                              protocol_overrides=protocol)
                if rep.errors or rep.interrupted:
                    print(f"error: {backend} batch {batch}: {rep.errors[:1] or 'interrupted'}", file=sys.stderr)
                    return 1
                latency = store.arch_costs(config.name, space.name, space.config, quantity="latency",
                                           backend=config.runtime.backend, precision=config.runtime.precision,
                                           batch=batch)
                for name, arch in nets.items():
                    rows[name]["latency_ms"][f"{backend}_batch{batch}"] = latency[space.arch_id(arch)]
    for row in rows.values():
        row["speedup"] = {k: rows["original"]["latency_ms"][k] / v for k, v in row["latency_ms"].items()}
    res = {"space": space.name, "space_config": space.config, "networks": rows, "thesis_speedup_all_grafted": THESIS,
           "wall_s": time.perf_counter() - t0}
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        keys = list(rows["original"]["latency_ms"])
        print(f"{space.name} {space.config}: merged networks measured through the agent on this CPU")
        print(f"{'network':<14}{'convs':>6}{'MFLOPs':>9}" + "".join(f"{k:>26}" for k in keys))
        for name, row in rows.items():
            cells = "".join(f"{row['latency_ms'][k]:>14.3f} ms (x{row['speedup'][k]:.2f})" for k in keys)
            print(f"{name:<14}{row['convs']:>6}{row['mflops']:>9.1f}{cells}")
        print(f"thesis, all grafted at batch 8: x{THESIS['xavier_batch8']} Xavier, x{THESIS['nano_batch8']} Nano")
        print(f"wall {res['wall_s']:.0f} s")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
