"""Batched prediction throughput of the torch predictors on this CPU (archs per second).

What a search pays per candidate: the forward of `torch_model()` on a pre-encoded one-hot batch (default
10,000 archs), under `torch.inference_mode`, median and best of several timed runs after warm-up. Weights
do not change the cost, so each predictor is fitted for one epoch on synthetic latencies. Also shown: the cost of
encoding arch ids (parse + one-hot, per arch in Python), which bounds `predict(arch_ids)` when the caller
has ids rather than encodings. Targets: MLP >= 200,000 archs/s, GNN >= 20,000 archs/s (2 threads).
`--quick` is a smoke size (batch 1,000, 2 runs): it checks that the benchmark runs.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from predictors.registry import create_predictor
from spaces import create_space

TARGETS = {"mlp": 200_000, "gnn": 20_000}
QUICK = {"batch": 1000, "runs": 2}  # --quick: a smoke size


def timed(fn, runs: int, warmup: int = 2) -> tuple[float, float]:
    """(median, best) seconds of `runs` calls after `warmup` untimed ones.

    Both are kept: on a shared machine the median shows what a search would see then, the best what the
    CPU can do (other tenants only ever add time).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=10_000, help="archs per forward (default 10,000)")
    ap.add_argument("--runs", type=int, default=7, help="timed runs per case (default 7)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--spaces", default="nb201,mbconv-small")
    ap.add_argument("--models", default="mlp,gnn", help="torch kinds (mlp, gnn, gcn)")
    ap.add_argument("--quick", action="store_true", help=f"smoke size: {QUICK} (explicit options still win)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    if args.quick:
        ap.set_defaults(**QUICK)
        args = ap.parse_args(argv)
    if args.batch < 1 or args.runs < 1:
        ap.error("--batch and --runs must be at least 1")
    torch.set_num_threads(args.threads)

    rows = []
    for space in [s.strip() for s in args.spaces.split(",") if s.strip()]:
        sp = create_space(space)
        rng = np.random.default_rng(0)
        archs = [sp.sample(rng) for _ in range(args.batch)]  # repeats are fine for timing
        ids = [sp.arch_id(a) for a in archs]
        t_enc = timed(lambda sp=sp, ids=ids: np.stack([sp.to_onehot(sp.parse(a)) for a in ids[:2000]]),
                      runs=3, warmup=1)[1]
        onehot = torch.from_numpy(np.stack([sp.to_onehot(a) for a in archs]))
        y = 1.0 + onehot.numpy() @ rng.uniform(0.1, 1.0, onehot.shape[1])
        for kind in [k.strip() for k in args.models.split(",") if k.strip()]:
            pred = create_predictor(kind, space=space, epochs=1).fit(ids[:256], y[:256])
            model = pred.torch_model()

            def forward(model: torch.nn.Module = model, x: torch.Tensor = onehot) -> None:
                with torch.inference_mode():
                    model(x)

            median, best = timed(forward, args.runs)
            rate = args.batch / median
            target = TARGETS.get(kind)
            rows.append({"space": space, "kind": kind, "batch": args.batch,
                         "forward_ms": round(median * 1e3, 2), "archs_per_s": round(rate),
                         "best_forward_ms": round(best * 1e3, 2), "best_archs_per_s": round(args.batch / best),
                         "target_archs_per_s": target, "met": None if target is None else bool(rate >= target),
                         "encode_ids_archs_per_s": round(2000 / t_enc)})
    out = {"threads": args.threads, "torch": torch.__version__, "quick": args.quick, "rows": rows}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, median of {args.runs}")
    print(f"{'space':14s}{'kind':6s}{'median ms':>10s}{'archs/s':>12s}{'best archs/s':>14s}"
          f"{'target (median)':>22s}{'encode ids/s':>14s}")
    for r in rows:
        target = "" if r["target_archs_per_s"] is None else (
            f"{r['target_archs_per_s']:,} " + ("met" if r["met"] else "MISSED"))
        print(f"{r['space']:14s}{r['kind']:6s}{r['forward_ms']:10.2f}{r['archs_per_s']:12,d}"
              f"{r['best_archs_per_s']:14,d}{target:>22s}{r['encode_ids_archs_per_s']:14,d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
