"""Domino's Pareto search on this CPU, judged on both axes (thesis §5.3.6, Fig. 5.7 and 5.14): against random masks.

The whole loop on `mobilenetv2-small` and `local-cpu`, as a user runs it:
1. latency: `--lat-n` merged networks (the space's stratified sample, so the all-original and all-grafted ends
   are covered) measured through the agent; the MLP kind (128-64-1 on the mask, the thesis' vanilla predictor)
   fitted on them. First its learning curve (thesis Fig. 5.5): the last 20% held out (the thesis' 80/20), the
   MLP trained on the first 10, 20, 50, ... of the rest, RMSE (ms), MAPE and Spearman ρ on the held-out ones,
   and beside it a straight line in the merged network's FLOPs at the same sizes (Domino's speed-up comes from
   depth and memory traffic, so FLOPs should predict it poorly where that holds). The thesis: RMSE 0.05 ms on
   Xavier, 0.23 ms on Nano, from 1,000 networks;
2. accuracy: `--acc-n` grafted networks trained on the digits proxy (`edgeprof graft train`'s library, 1 epoch
   at 32x32: task `digits-r32-e1-b32`, the same as benchmarks/domino_accuracy.py's task A) and the 128-64-1 MLP
   regressing their accuracy;
3. `search domino` (NSGA-II, defaults: population 100, 60 generations, 4 budgets spread over the sample) and
   random masks at the same number of distinct evaluations: both sets' hypervolume against one reference point;
4. every Pareto member (at most `--verify-max`) measured on the board in `--rounds` jobs: the latency
   predictor's error on them, and how many picks the board puts within their budgets;
5. the truth on the accuracy axis: each budget's pick and the best random mask predicted within the same
   budget are trained on the proxy (the same recipe, so their figures sit beside the predictor's training pairs)
   and measured: the search should find the more accurate network at a latency within the budget.
The accuracy here is the digits proxy's, a small-sample, noisy stand-in (one epoch; two trainings of one mask
differ by a few points): the benchmark shows the loop closes and how the search compares with random at equal
cost, not ImageNet numbers.

Everything goes to `--db` (default benchmarks/out/domino_search.db; a rerun measures and trains only what is
missing; `--db` of benchmarks/domino_accuracy.py reuses its task A pairs). `--quick` is a smoke size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwsearch.domino import DominoSearch
from hwsearch.domino_result import verify_pareto
from hwsearch.pareto import hypervolume
from predictors.accuracy_baselines import accuracy_mlp
from predictors.metrics import mape, rmse, spearman
from predictors.registry import create_predictor
from profiler.accuracy import accuracies
from profiler.config import resolve_device
from profiler.proxy_accuracy import SOURCE, Recipe, train_and_store
from profiler.session import profile
from profiler.store import Store
from spaces import create_space

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = ROOT / "benchmarks" / "out" / "domino_search.db"
QUICK_PROTOCOL = {"warmup_min_runs": 3, "warmup_min_s": 0.05, "min_runs": 5, "max_runs": 30, "target_rel_ci": 0.05}
SIZES = (10, 20, 50, 100, 200, 400, 800)  # training sizes of the latency predictor's learning curve
QUICK = {"lat_n": 6, "acc_n": 8, "digits_n": 100, "population": 10, "generations": 3, "verify_max": 4,
         "rounds": 1, "epochs": 30}


def _finite(x: float) -> float | None:
    """NaN (a rank correlation of ties, at a smoke size) as None, so the JSON stays valid."""
    return None if np.isnan(x) else float(x)


def _scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float | None]:
    return {"rmse_ms": rmse(pred, true), "mape": mape(pred, true), "spearman": _finite(spearman(pred, true))}


def learning_curve(space: Any, ids: list[str], y: np.ndarray, seed: int, epochs: int) -> dict[str, Any]:
    """The MLP on the mask and a line in FLOPs, trained on growing prefixes of the first 80%, scored on the last
    20% (pure in the data: the same ids and latencies give the same curve)."""
    n = len(ids)
    cut = n - max(2, n // 5)
    flops = np.array([space.costs(space.parse(i))["flops"] for i in ids], dtype=float)
    rows = []
    for size in [*(s for s in SIZES if s < cut), cut]:
        mlp = create_predictor("mlp", space=space.name, space_config=space.config, seed=seed, epochs=epochs)
        pred = np.asarray(mlp.fit(ids[:size], y[:size]).predict(ids[cut:]), dtype=float)
        slope, intercept = np.polyfit(flops[:size], y[:size], 1)
        rows.append({"train_n": size, "mlp": _scores(pred, y[cut:]),
                     "flops_linear": _scores(slope * flops[cut:] + intercept, y[cut:])})
    return {"test_n": n - cut, "rho_flops_vs_latency": _finite(spearman(flops, y)), "rows": rows,
            "latency_ms": {"min": float(y.min()), "median": float(np.median(y)), "max": float(y.max())}}


def _rho(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def random_pick(result: Any, budget: float) -> dict[str, Any] | None:
    """The random baseline's most accurate mask predicted within `budget` (its Pareto set holds it)."""
    within = [m for m in result.random["pareto"] if m["predicted_ms"] <= budget]
    return max(within, key=lambda m: (m["predicted_accuracy"], -m["predicted_ms"])) if within else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="mobilenetv2-small")
    p.add_argument("--device", default="local-cpu")
    p.add_argument("--lat-n", type=int, default=300, help="networks measured for the latency predictor")
    p.add_argument("--acc-n", type=int, default=120, help="networks trained for the accuracy predictor")
    p.add_argument("--digits-n", type=int, default=None)
    p.add_argument("--population", type=int, default=100)
    p.add_argument("--generations", type=int, default=60)
    p.add_argument("--verify-max", type=int, default=12, help="Pareto members measured (the picks among them)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=300, help="MLP epochs (both predictors)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--db", type=Path)
    p.add_argument("--quick", action="store_true", help=f"smoke size: {QUICK}")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    torch.set_num_threads(1)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)

    tmp = tempfile.TemporaryDirectory() if args.quick else None
    db = args.db or (Path(tmp.name) / "search.db" if tmp else DEFAULT_DB)
    db.parent.mkdir(parents=True, exist_ok=True)
    protocol = QUICK_PROTOCOL if args.quick else None
    space = create_space(args.space)
    config = resolve_device(args.device)
    recipe = Recipe(digits_n=args.digits_n)
    task = recipe.task_name()
    setting = {"backend": config.runtime.backend, "precision": config.runtime.precision, "batch": 1}

    with Store(db) as store:
        log(f"measuring {args.lat_n} {space.name} networks on {config.name}")
        rep = profile(config, space, n=args.lat_n, seed=args.seed, batch=1, store=store, protocol_overrides=protocol)
        if rep.errors or rep.interrupted:
            print(f"error: measuring failed: {rep.errors[:1] or 'interrupted'}", file=sys.stderr)
            return 1
        lat = store.arch_costs(config.name, space.name, space.config, **setting)
        log(f"training {args.acc_n} grafted networks on {task}")
        trained = train_and_store(store, space.name, task, recipe, n=args.acc_n, seed=args.seed)
        if trained.interrupted:
            return 130
        acc = accuracies(store, space.name, task, source=SOURCE)
    measure_s = time.perf_counter() - t0
    # the first --lat-n / --acc-n of the seeded samples, even where the dataset holds more (a shared --db)
    lat_ids = [space.arch_id(a) for a in space.sample_unique(args.lat_n, np.random.default_rng(args.seed))]
    acc_ids = [space.arch_id(a) for a in space.sample_unique(args.acc_n, np.random.default_rng(args.seed))]
    lat_y = np.array([lat[i] for i in lat_ids])
    log("the latency predictor's learning curve")
    curve = learning_curve(space, lat_ids, lat_y, args.seed, args.epochs)
    lat_pred = create_predictor("mlp", space=space.name, space_config=space.config, seed=args.seed,
                                epochs=args.epochs).fit(lat_ids, lat_y)
    acc_pred = accuracy_mlp(space.name, args.seed, args.epochs, space.config).fit(
        acc_ids, np.array([acc[i] for i in acc_ids]))
    log("searching")
    search = DominoSearch(predictor=lat_pred, accuracy=acc_pred, population=args.population,
                          generations=args.generations, seed=args.seed)
    result = search.search()
    log(f"verifying up to {args.verify_max} of {len(result.pareto)} Pareto members")
    verified = verify_pareto(result, config.name, db, args.rounds, protocol=protocol, max_members=args.verify_max)
    measured = {r["arch_id"]: r["measured_ms"] for r in verified["pareto_verified"]}

    # the truth on both axes for each budget's pick and the best random mask within the same budget
    rows = []
    for pick in result.picks:
        rnd = random_pick(result, pick["budget_ms"])
        rows.append({"label": pick["label"], "budget_ms": pick["budget_ms"], "domino": pick, "random": rnd})
    to_train = list(dict.fromkeys(m["arch_id"] for r in rows for m in (r["domino"], r["random"]) if m))
    to_measure = [a for a in to_train if a not in measured]
    with Store(db) as store:
        log(f"training {len(to_train)} picks on {task}; measuring {len(to_measure)} random picks")
        train_and_store(store, space.name, task, recipe, archs=[space.parse(a) for a in to_train], seed=args.seed)
        acc = accuracies(store, space.name, task, source=SOURCE)
        if to_measure:
            rep = profile(config, space, n=len(to_measure), seed=0, batch=1, store=store,
                          archs=[space.parse(a) for a in to_measure], protocol_overrides=protocol)
            if rep.errors or rep.interrupted:
                print(f"error: measuring failed: {rep.errors[:1] or 'interrupted'}", file=sys.stderr)
                return 1
        lat = store.arch_costs(config.name, space.name, space.config, **setting)
    for r in rows:
        for who in ("domino", "random"):
            m = r[who]
            r[who] = None if m is None else {
                "arch_id": m["arch_id"], "predicted_ms": m["predicted_ms"], "measured_ms": measured.get(
                    m["arch_id"], lat[m["arch_id"]]), "predicted_accuracy": m["predicted_accuracy"],
                "accuracy": acc[m["arch_id"]]}
            if m is not None:
                r[who]["within_budget"] = r[who]["measured_ms"] <= r["budget_ms"]
    both = [r for r in rows if r["random"]]
    ref = (1.05 * result.budgets[-1], min(min(r[w]["accuracy"] for w in ("domino", "random")) for r in both))
    true_hv = {w: hypervolume([r[w]["measured_ms"] for r in both], [r[w]["accuracy"] for r in both], *ref)
               for w in ("domino", "random")}
    res = {"space": space.name, "device": config.name, "lat_n": len(lat_ids), "acc_n": len(acc_ids), "task": task,
           "latency_predictor": curve,
           "search": {"evaluations": result.evaluations, "pareto": len(result.pareto),
                      "hypervolume": result.hypervolume, "random_hypervolume": result.random["hypervolume"],
                      "hv_ratio": result.hypervolume / result.random["hypervolume"], "wall_s": result.wall_s},
           "verify": verified["pareto_verify"], "budgets": rows,
           "picks_true_hypervolume": {**true_hv, "reference": list(ref)},
           "accuracy_gain_mean": float(np.mean([r["domino"]["accuracy"] - r["random"]["accuracy"] for r in both])),
           "measure_and_train_s": round(measure_s, 1), "wall_s": round(time.perf_counter() - t0, 1)}
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        s, v = res["search"], res["verify"]
        print(f"{space.name} on {config.name}: latency MLP on {len(lat_ids)} measured networks, accuracy MLP on "
              f"{len(acc_ids)} trained on {task}")
        lat_c = curve["latency_ms"]
        print(f"latency: {len(lat_ids)} networks, {lat_c['min']:.3f}-{lat_c['max']:.3f} ms (median "
              f"{lat_c['median']:.3f}), the last {curve['test_n']} held out; FLOPs rank them at ρ "
              f"{_rho(curve['rho_flops_vs_latency'])}")
        print(f"{'train n':>8}  {'MLP RMSE ms':>11} {'MAPE':>6} {'ρ':>6}   {'FLOPs RMSE ms':>13} {'MAPE':>6} {'ρ':>6}")
        for r in curve["rows"]:
            m, f = r["mlp"], r["flops_linear"]
            print(f"{r['train_n']:>8}  {m['rmse_ms']:>11.4f} {m['mape']:>5.1f}% {_rho(m['spearman']):>6}   "
                  f"{f['rmse_ms']:>13.4f} {f['mape']:>5.1f}% {_rho(f['spearman']):>6}")
        print(f"search: {s['pareto']} Pareto members of {s['evaluations']} evaluated in {s['wall_s']:.1f} s; "
              f"hypervolume {s['hypervolume']:.4g} vs random at the same evaluations {s['random_hypervolume']:.4g} "
              f"(x{s['hv_ratio']:.3f})")
        print(f"verified {v['members']} members ({v['rounds']} rounds): latency predictor error mean "
              f"{100 * v['mean_abs_predictor_error']:.1f}%, max {100 * v['max_abs_predictor_error']:.1f}%, RMSE "
              f"{v['rmse_ms']:.3f} ms, ρ {_rho(v['spearman'])}; picks measured within budget "
              f"{v['picks_within_budget']}/{v['picks']}")
        print(f"{'':3}{'budget':>9}  {'domino: measured ms, trained acc %':>36}  {'random: measured ms, acc %':>30}")
        for r in rows:
            d, q = r["domino"], r["random"]
            rs = "none within" if q is None else f"{q['arch_id']} {q['measured_ms']:.3f} {q['accuracy']:.1f}"
            print(f"{r['label']:>3}{r['budget_ms']:>9.3f}  {d['arch_id']} {d['measured_ms']:.3f} {d['accuracy']:.1f}"
                  f"   {rs}")
        print(f"mean trained-accuracy gain of the picks over random's at the same budget: "
              f"{res['accuracy_gain_mean']:+.2f} points; hypervolume of the picks (measured ms, trained accuracy): "
              f"{true_hv['domino']:.4g} vs {true_hv['random']:.4g}")
        print(f"wall {res['wall_s']:.0f} s")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
