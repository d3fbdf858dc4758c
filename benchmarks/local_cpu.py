"""Predictors on this CPU's own measurements: 300 NB201 networks to train, 100 others to test.

Every latency comes from the agent, exactly as on a board (ONNX export, job bundle, one fresh process per
model, the `local-cpu` config: ONNX Runtime CPU, one intra-op thread). The first 400 archs of the
prefix-stable sample (seed `--seed`) are measured into `--db` (a rerun measures only what is missing, so
an interrupted run resumes); the first 300 of them train each predictor, the other 100 test it.
Prints Acc@10 (|pred - true| <= 10% of true), Spearman rho, Kendall tau and MAPE per predictor.

Measuring 400 networks takes about 8 minutes on an idle 2-core machine; keep the machine otherwise idle,
since a busy CPU makes the latencies (and so the targets) noisy. `--quick` is a smoke size (6 + 3
networks, a short protocol, a throwaway dataset unless --db is given): it checks that the benchmark runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from predictors.metrics import report
from predictors.registry import create_predictor, list_predictors
from profiler.config import resolve_device
from profiler.session import Progress, profile
from profiler.store import Store
from spaces import create_space

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = ROOT / "benchmarks" / "out" / "local_cpu.db"
# --quick: a smoke size and a short protocol; its measurements never go into the default dataset
QUICK = {"train_n": 6, "test_n": 3, "models": "mlp,gnn,gbdt,flops"}
QUICK_PROTOCOL = {"warmup_min_runs": 3, "warmup_min_s": 0.05, "min_runs": 5, "max_runs": 30, "target_rel_ci": 0.05}


def measure(db: Path, device: str, n: int, seed: int, quiet: bool,
            protocol: dict | None = None) -> float:
    """Measure the first `n` archs of the seeded sample on `device` (only those missing); seconds spent."""
    config = resolve_device(device)
    t0 = time.perf_counter()
    done = [0]

    def on_result(r: dict) -> None:
        done[0] += 1
        if not quiet and done[0] % 25 == 0:
            print(f"  measured {done[0]} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    with Store(db) as store:
        rep = profile(config, create_space("nb201"), n=n, seed=seed, batch=1, store=store,
                      progress=Progress(on_result=on_result), protocol_overrides=protocol)
    if rep.interrupted:
        raise SystemExit(130)
    return time.perf_counter() - t0


def sampled_order(n: int, seed: int) -> list[str]:
    sp = create_space("nb201")
    return [sp.arch_id(a) for a in sp.sample_unique(n, np.random.default_rng(seed))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=None,
                    help=f"dataset file (default {DEFAULT_DB.relative_to(ROOT)}; with --quick a temporary one)")
    ap.add_argument("--device", default="local-cpu")
    ap.add_argument("--train-n", type=int, default=300)
    ap.add_argument("--test-n", type=int, default=100)
    ap.add_argument("--models", default="mlp,gnn,gcn,gbdt,lut,flops",
                    help=f"comma-separated kinds ({', '.join(list_predictors(supervised=True))})")
    ap.add_argument("--seed", type=int, default=0, help="sample seed (the archs) and predictor seed")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training (default 2)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke size: {QUICK}, a short protocol (explicit options still win)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    if args.quick:
        ap.set_defaults(**QUICK)
        args = ap.parse_args(argv)
    if args.quick and args.db is None:
        with tempfile.TemporaryDirectory() as tmp:
            args.db = str(Path(tmp) / "local_cpu.db")
            return run(args, ap)
    args.db = args.db or str(DEFAULT_DB)
    return run(args, ap)


def run(args: argparse.Namespace, ap: argparse.ArgumentParser) -> int:
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    for kind in kinds:
        if kind not in list_predictors(supervised=True):
            ap.error(f"unknown kind {kind!r}; known: {', '.join(list_predictors(supervised=True))}")
    if args.train_n < 2 or args.test_n < 2:
        ap.error("--train-n and --test-n must be at least 2")
    torch.set_num_threads(args.threads)
    n = args.train_n + args.test_n
    db = Path(args.db)
    db.parent.mkdir(parents=True, exist_ok=True)

    measure_s = measure(db, args.device, n, args.seed, args.json, QUICK_PROTOCOL if args.quick else None)
    config = resolve_device(args.device)
    order = sampled_order(n, args.seed)
    with Store(db) as store:
        from predictors.data import load_xy

        ids, y = load_xy(store, config.name, "nb201", backend=config.runtime.backend)
    table = dict(zip(ids, y.tolist(), strict=True))
    missing = [a for a in order if a not in table]
    if missing:
        raise SystemExit(f"{len(missing)} of the {n} archs have no ok measurement in {db} "
                         f"(errors? see `edgeprof dataset summary --db {db}`)")
    train_ids, test_ids = order[:args.train_n], order[args.train_n:]
    train_y = np.array([table[a] for a in train_ids])
    test_y = np.array([table[a] for a in test_ids])
    split = f"first {args.train_n} / next {args.test_n} of the seed-{args.seed} sample, measured by the agent"

    rows = {}
    for kind in kinds:
        pred = create_predictor(kind, space="nb201", seed=args.seed)
        t0 = time.perf_counter()
        pred.fit(train_ids, train_y)
        rep = report(pred.predict(test_ids), test_y, n_target_samples=args.train_n, split=split)
        rep["fit_s"] = round(time.perf_counter() - t0, 2)
        rows[kind] = rep
    res = {"device": config.name, "backend": config.runtime.backend, "db": str(db), "quick": args.quick,
           "split": split,
           "measure_s": round(measure_s, 1), "latency_ms": {"min": float(y.min()), "median": float(np.median(y)),
                                                            "max": float(y.max())},
           "results": rows}
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{config.name} ({config.runtime.backend}): {split}; latencies {y.min():.3f}-{y.max():.3f} ms "
          f"(median {np.median(y):.3f}); measuring took {measure_s:.0f} s (0 when already in the db)")
    print(f"{'kind':6s} {'Acc@10':>7s} {'Acc@5':>7s} {'rho':>6s} {'tau':>6s} {'MAPE':>7s} {'fit s':>6s}")
    for kind, r in rows.items():
        print(f"{kind:6s} {100 * r['acc10']:6.1f}% {100 * r['acc5']:6.1f}% {r['spearman']:6.3f} {r['kendall']:6.3f} "
              f"{r['mape']:6.2f}% {r['fit_s']:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
