"""HELP's few-shot protocol on NAS-Bench-201: our meta-learned `HelpPredictor` against HELP's Table 3.

Protocol (HELP's `loader.py` defaults, shared spec field-practice §2): meta-train on 9 devices, select the
meta-iteration on 4 meta-valid devices, test on 6 unseen devices. Per device the pool is arch indices
[0, 900) and the query [900, 1900), each without its 10% fastest and 10% slowest archs on that device.
Source devices contribute their pool (plus the 10 reference archs, which describe a device); a test device
contributes 10 archs drawn from its pool plus the reference latencies. Metric: Spearman rho on the query,
mean over 5 draws of the 10 samples (one meta-training, `--train-seeds` for more).
Target: mean >= 0.95 and every device at least HELP's figure. `--quick` is a smoke size (one draw, every
member meta-trained for 10 iterations): it checks that the benchmark runs, its figures mean little.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from predictors.fewshot import FewShotTask
from predictors.hardware_adaptive import HELP_NB201_REFERENCE
from predictors.help import HelpPredictor
from predictors.help_ensemble import DEFAULT_MEMBERS, HelpEnsemble
from predictors.metrics import spearman
from spaces import create_space
from spaces.fbnet import find_help_data, load_plain_torch_file

ROOT = Path(__file__).resolve().parents[1]
HELP_DIR = ROOT.parent / "shared" / "data" / "HELP" / "data"
# --quick: a smoke size; `iters` and `valid_every` then also bound every ensemble member
QUICK: dict[str, Any] = {"seeds": [0], "iters": 10, "valid_every": 5, "meta_batch": 2, "n_query": 50}

NB201 = {
    "space": "nb201", "folder": "nasbench201", "pool": 900, "query": 1000,
    "train": ["1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50", "pixel3",
              "essential_ph_1", "samsung_s7"],
    "valid": ["titanx_1", "titanx_32", "titanx_256", "gold_6240"],
    "help": {"titan_rtx_256": 0.987, "gold_6226": 0.989, "fpga": 0.985, "pixel2": 0.802, "raspi4": 0.890,
             "eyeriss": 0.940},
    "help_mean": 0.932, "target": 0.95,
    "members": DEFAULT_MEMBERS["nb201"],
}


def drop_outliers(lat: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """`idx` without its 10% fastest and 10% slowest on this device (HELP's remove_outlier)."""
    order = idx[np.argsort(lat[idx], kind="stable")]
    n = len(idx)
    return order[int(n * 0.1): int(n * 0.9)]


def load_tables(folder: str, devices: Sequence[str], help_dir: Path) -> dict[str, np.ndarray]:
    data = find_help_data(help_dir)
    return {d: np.asarray(load_plain_torch_file(data / folder / "latency" / f"{d}.pt"), dtype=np.float64)
            for d in devices}


def run_protocol(cfg: dict[str, Any], arch_ids: list[str], ref_rows: Sequence[int], args: argparse.Namespace
                 ) -> dict[str, Any]:
    """Meta-train, select, adapt to each test device over the sample seeds; per-device Spearman."""
    test = list(cfg["help"])
    lat = load_tables(cfg["folder"], cfg["train"] + cfg["valid"] + test, args.help_dir)
    pool_idx = np.arange(cfg["pool"])
    query_idx = np.arange(cfg["pool"], cfg["pool"] + cfg["query"])
    refs = [arch_ids[r] for r in ref_rows]
    ref_rows = list(ref_rows)

    def reference(d: str) -> dict[str, float]:
        return {arch_ids[r]: float(lat[d][r]) for r in ref_rows}

    tasks = {}
    for d in cfg["train"]:
        rows = list(drop_outliers(lat[d], pool_idx)) + list(ref_rows)
        rows = list(dict.fromkeys(rows))
        tasks[d] = ([arch_ids[r] for r in rows], lat[d][rows])
    valid = {}
    for d in cfg["valid"]:
        pool = drop_outliers(lat[d], pool_idx)
        s = np.random.default_rng(1000).choice(pool, args.k, replace=False)
        q = drop_outliers(lat[d], query_idx)
        valid[d] = FewShotTask([arch_ids[r] for r in s], lat[d][s], [arch_ids[r] for r in q], lat[d][q],
                               reference(d))
    results: dict[str, list[float]] = {d: [] for d in test}
    t0 = time.perf_counter()
    fits = []
    for train_seed in args.train_seeds:
        model = make_model(cfg, refs, train_seed, args)
        model.meta_fit(tasks, valid=valid if not args.no_valid else None)
        fits.append({"seed": train_seed, "valid_rho": getattr(model, "valid_score_", None),
                     **({"meta_iter": model.meta_iter_} if hasattr(model, "meta_iter_") else
                        {"weights": model.weights_.tolist(),
                         "members": [{"meta_iter": m.meta_iter_, "valid_rho": m.valid_score_}
                                     for m in model.members_]})})
        for d in test:
            pool = drop_outliers(lat[d], pool_idx)
            q = drop_outliers(lat[d], query_idx)
            q_ids = [arch_ids[r] for r in q]
            for seed in args.seeds:
                s = np.random.default_rng(seed).choice(pool, args.k, replace=False)
                model.adapt([arch_ids[r] for r in s], lat[d][s], reference=reference(d))
                results[d].append(spearman(model.predict(q_ids), lat[d][q]))
            print(f"  {d}: rho {np.mean(results[d]):.4f}", file=sys.stderr, flush=True)
    per_device = {d: float(np.mean(v)) for d, v in results.items()}
    return {"space": cfg["space"], "k": args.k, "per_device": per_device,
            "per_device_std": {d: float(np.std(v)) for d, v in results.items()},
            "mean": float(np.mean(list(per_device.values()))), "help": cfg["help"], "help_mean": cfg["help_mean"],
            "target": cfg["target"], "fits": fits, "seeds": list(args.seeds), "train_seeds": list(args.train_seeds),
            "params": {k: v for k, v in vars(args).items() if k not in ("help_dir", "json")},
            "wall_s": round(time.perf_counter() - t0, 1)}


def make_model(cfg: dict[str, Any], refs: list[str], seed: int, args: argparse.Namespace
               ) -> HelpPredictor | HelpEnsemble:
    """The predictor the options describe: the space's default ensemble, --members, or --single."""
    space = cfg["space"]
    if not args.single:
        members = [{"n_support": args.k, **m} for m in (cfg["members"] if args.members is None else args.members)]
        if args.quick:
            members = [{**m, "meta_iters": args.iters, "valid_every": args.valid_every, "meta_batch": args.meta_batch,
                        "n_query": args.n_query} for m in members]
        return HelpEnsemble(space=space, seed=seed, reference=refs, members=members, weights=args.weights,
                            verbose=True)
    return HelpPredictor(space=space, seed=seed, reference=refs, hidden=tuple(args.hidden),
                         inner_lr=args.inner_lr, inner_steps=args.inner_steps,
                         learn_inner_lr=not args.fixed_inner_lr, first_order=args.first_order,
                         meta_iters=args.iters, meta_batch=args.meta_batch, n_support=args.k,
                         n_query=args.n_query, outer_lr=args.outer_lr, target=args.target,
                         adapt_on_reference=not args.no_reference_support, device_mixup=args.mixup,
                         adapt_params=args.adapt_params,
                         model=args.model, rank=args.rank, inner=args.inner,
                         valid_every=args.valid_every, verbose=True)


def print_table(res: dict[str, Any]) -> None:
    print(f"HELP protocol, {res['space']}, {res['k']} target samples + reference archs; Spearman rho on the query "
          f"(mean of {len(res['seeds'])} draws x {len(res['train_seeds'])} meta-trainings)")
    print(f"{'device':<16}{'ours':>8}{'+-':>7}{'HELP':>8}{'diff':>8}")
    for d, v in res["per_device"].items():
        h = res["help"][d]
        flag = "" if v >= h else "  < HELP"
        print(f"{d:<16}{v:>8.3f}{res['per_device_std'][d]:>7.3f}{h:>8.3f}{v - h:>+8.3f}{flag}")
    ok = res["mean"] >= res["target"] and all(v >= res["help"][d] for d, v in res["per_device"].items())
    print(f"{'mean':<16}{res['mean']:>8.3f}{'':>7}{res['help_mean']:>8.3f}{res['mean'] - res['help_mean']:>+8.3f}")
    print(f"target: mean >= {res['target']} and no device below HELP -> {'met' if ok else 'NOT met'}; "
          f"{res['wall_s']:.0f} s")


def parse_args(argv: Sequence[str] | None, defaults: dict[str, Any] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--help-dir", type=Path, default=HELP_DIR)
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument("--k", type=int, default=10, help="target samples drawn from the pool")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="sample draws")
    p.add_argument("--train-seeds", type=int, nargs="+", default=[0], help="meta-trainings")
    p.add_argument("--iters", type=int, default=1500)
    p.add_argument("--meta-batch", type=int, default=4)
    p.add_argument("--n-query", type=int, default=200)
    p.add_argument("--hidden", type=int, nargs="*", default=[128, 128])
    p.add_argument("--inner-lr", type=json.loads, default=0.01,
                   help="initial inner rate: a number or a JSON {name prefix: rate} ('' = default)")
    p.add_argument("--inner-steps", type=int, default=5)
    p.add_argument("--fixed-inner-lr", action="store_true", help="plain MAML instead of Meta-SGD rates")
    p.add_argument("--first-order", action="store_true")
    p.add_argument("--outer-lr", type=float, default=1e-3)
    p.add_argument("--target", choices=["log", "raw"], default="log")
    p.add_argument("--mixup", type=float, default=0.5, help="share of episodes on blended devices")
    p.add_argument("--no-reference-support", action="store_true",
                   help="use the reference latencies only as the embedding, not as adaptation samples")
    p.add_argument("--no-valid", action="store_true", help="keep the last iterate instead of the best on meta-valid")
    p.add_argument("--adapt-params", nargs="+", default=None,
                   help="name prefixes of the parameters the inner loop adapts (default all)")
    p.add_argument("--model", choices=["mlp", "additive"], default="mlp")
    p.add_argument("--rank", type=int, default=1)
    p.add_argument("--inner", choices=["sgd", "gauss-newton"], default="sgd")
    p.add_argument("--single", action="store_true",
                   help="one HelpPredictor set by the options above, instead of the default ensemble")
    p.add_argument("--members", type=json.loads, default=None,
                   help="JSON list of HelpPredictor parameter dicts to blend instead of the default members")
    p.add_argument("--weights", type=float, nargs="+", default=None, help="member weights (default: meta-valid)")
    p.add_argument("--valid-every", type=int, default=100)
    p.add_argument("--quick", action="store_true",
                   help=f"smoke size: {QUICK}, for the ensemble members too (explicit options still win)")
    if defaults:
        p.set_defaults(**defaults)
    args = p.parse_args(argv)
    if args.quick:
        p.set_defaults(**QUICK)
        args = p.parse_args(argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sp = create_space("nb201")
    arch_ids = [sp.arch_id(sp.from_index(i)) for i in range(sp.size)]
    res = run_protocol(NB201, arch_ids, HELP_NB201_REFERENCE, args)
    print(json.dumps(res, indent=2) if args.json else "", end="\n" if args.json else "")
    if not args.json:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
