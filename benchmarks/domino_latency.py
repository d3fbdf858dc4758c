"""Domino's vanilla latency predictor on this CPU (thesis §5.3.2, Fig. 5.5): RMSE and ρ against training-set size.

`--n` merged `mobilenetv2-small` networks (the space's sample, stratified by the number of grafted blocks, so
the all-original and all-grafted ends are covered) are measured through the agent on `--device` (default
`local-cpu`: ONNX Runtime CPU, one thread), exactly as `edgeprof profile local-cpu --space mobilenetv2-small
--n N` does. The last 20% of the sample is held out (the thesis' 80/20 split); the MLP kind (128-64-1 on the
mask, the thesis' vanilla predictor) trains on the first 10, 20, 50, ... of the rest. Beside it, a linear fit
on the merged network's FLOPs at the same sizes: Domino's speed-up comes from depth and memory traffic, not
FLOPs, so FLOPs should predict it poorly. Prints RMSE (ms), MAPE and Spearman ρ per size. The thesis: RMSE
0.05 ms (Xavier), 0.23 ms (Nano) from 1,000 networks.

Measurements go to `--db` (a rerun measures only what is missing). `--quick` is a smoke size (6 networks, a
short protocol, a throwaway dataset): it checks that the benchmark runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from predictors.metrics import mape, rmse, spearman
from predictors.registry import create_predictor
from profiler.config import resolve_device
from profiler.session import profile
from profiler.store import Store
from spaces import create_space

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = ROOT / "benchmarks" / "out" / "domino_latency.db"
QUICK_PROTOCOL = {"warmup_min_runs": 3, "warmup_min_s": 0.05, "min_runs": 5, "max_runs": 30, "target_rel_ci": 0.05}
SIZES = (10, 20, 50, 100, 200, 400, 800)


def _finite(x: float) -> float | None:
    """NaN (a rank correlation of ties, at a smoke size) as None, so the JSON stays valid."""
    return None if np.isnan(x) else float(x)


def _rho(x: float | None) -> str:
    return f"{'-':>6}" if x is None else f"{x:>6.3f}"


def fit_sizes(n_train: int, quick: bool) -> list[int]:
    """The training sizes of the sweep that the data allows, always ending at all of it."""
    sizes = [s for s in SIZES if s < n_train] if not quick else []
    return [*sizes, n_train]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="mobilenetv2-small")
    p.add_argument("--device", default="local-cpu")
    p.add_argument("--n", type=int, default=300, help="networks to measure (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--db", type=Path, help=f"dataset (default {DEFAULT_DB.relative_to(ROOT)})")
    p.add_argument("--quick", action="store_true", help="smoke size: 6 networks, short protocol")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    tmp = tempfile.TemporaryDirectory() if args.quick else None
    db = args.db or (Path(tmp.name) / "lat.db" if tmp else DEFAULT_DB)
    db.parent.mkdir(parents=True, exist_ok=True)
    n = 6 if args.quick else args.n
    space = create_space(args.space)
    config = resolve_device(args.device)
    archs = space.sample_unique(n, np.random.default_rng(args.seed))
    with Store(db) as store:
        rep = profile(config, space, n=n, seed=args.seed, batch=1, store=store, archs=archs,
                      protocol_overrides=QUICK_PROTOCOL if args.quick else None)
        if rep.errors or rep.interrupted:
            print(f"error: measuring failed: {rep.errors[:1] or 'interrupted'}", file=sys.stderr)
            return 1
        measured = store.arch_costs(config.name, space.name, space.config, backend=config.runtime.backend,
                                    precision=config.runtime.precision, batch=1)
    measure_s = time.perf_counter() - t0
    ids = [space.arch_id(a) for a in archs]
    y = np.array([measured[i] for i in ids])
    flops = np.array([space.costs(a)["flops"] for a in archs], dtype=float)
    cut = n - max(2, n // 5)
    test = slice(cut, n)
    rows = []
    for size in fit_sizes(cut, args.quick):
        mlp = create_predictor("mlp", space=space.name, space_config=space.config, seed=args.seed,
                               epochs=50 if args.quick else 300)
        mlp.fit(ids[:size], y[:size])
        pred = np.asarray(mlp.predict(ids[test]), dtype=float)
        slope, intercept = np.polyfit(flops[:size], y[:size], 1)
        by_flops = slope * flops[test] + intercept
        rows.append({"train_n": size,
                     "mlp": {"rmse_ms": rmse(pred, y[test]), "mape": mape(pred, y[test]),
                             "spearman": _finite(spearman(pred, y[test]))},
                     "flops_linear": {"rmse_ms": rmse(by_flops, y[test]), "mape": mape(by_flops, y[test]),
                                      "spearman": _finite(spearman(by_flops, y[test]))}})
    grafted = np.array([a.count(0) for a in archs])
    res = {"space": space.name, "device": config.name, "n": n, "test_n": n - cut,
           "latency_ms": {"min": float(y.min()), "median": float(np.median(y)), "max": float(y.max())},
           "grafted_blocks": {"min": int(grafted.min()), "max": int(grafted.max())},
           "rho_flops_vs_latency": _finite(spearman(flops, y)), "rows": rows, "measure_s": measure_s,
           "wall_s": time.perf_counter() - t0}
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        lat = res["latency_ms"]
        print(f"{space.name} on {config.name}: {n} merged networks ({grafted.min()}-{grafted.max()} blocks grafted), "
              f"{lat['min']:.3f}-{lat['max']:.3f} ms (median {lat['median']:.3f}); {n - cut} held out")
        print(f"Spearman ρ of FLOPs against latency over all {n}: {_rho(res['rho_flops_vs_latency']).strip()}")
        print(f"{'train n':>8}  {'MLP RMSE ms':>11} {'MAPE':>6} {'ρ':>6}   {'FLOPs RMSE ms':>13} {'MAPE':>6} {'ρ':>6}")
        for r in rows:
            m, f = r["mlp"], r["flops_linear"]
            print(f"{r['train_n']:>8}  {m['rmse_ms']:>11.4f} {m['mape']:>5.1f}% {_rho(m['spearman'])}   "
                  f"{f['rmse_ms']:>13.4f} {f['mape']:>5.1f}% {_rho(f['spearman'])}")
        print(f"thesis: RMSE 0.05 ms (Xavier), 0.23 ms (Nano) from 1,000 networks; measuring took {measure_s:.0f} s, "
              f"wall {res['wall_s']:.0f} s")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
