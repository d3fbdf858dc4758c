"""Domino's meta-accuracy predictor against the thesis' three baselines (Fig. 5.6 right), on networks trained here.

What stands for the thesis' ImageNet-tiny -> ImageNet here: two proxy tasks on scikit-learn's digits (10 classes,
8x8 upsampled to 32x32, 1,437 training / 360 scored images), trained with the library of `edgeprof graft
train` (profiler.proxy_accuracy) and stored in a dataset:
- task A (the cheap "tiny" task, many pairs): 1 epoch at batch 32 (45 SGD steps), far from converged
  (accuracies ~45-80%), so its ranking of the masks is a noisy, biased view of the target's;
- task B (the expensive target, few pairs): 3 epochs at batch 64 (69 steps over 3 passes), near converged
  (~80-93%): ~3x the compute of an A network (the thesis' ratio is ~100x: 1,000 tiny trainings ~ 10 ImageNet
  ones; ours is limited by what a 2-core CPU trains in minutes).
Both train the grafted networks of the same masks' space (mobilenetv2-small by default) with the same SGD
recipe otherwise. Each of `--draws` seeded draws picks `--samples` (10) B pairs to adapt/train on and scores
every other B pair: RMSE in accuracy points and Spearman rho, per method (direct, transferred, fine-tuned,
maml-acc with its default one adaptation step and with 100; predictors.accuracy_baselines), beside the
mean of the K pairs as a reference (its RMSE is B's spread). The A and B masks are drawn with different seeds.

`--db` keeps the trained pairs (a rerun resumes, and trains nothing once they are stored); without it they
go into a temporary dataset. `--quick` is a smoke size whose figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from predictors.accuracy_baselines import METHODS, compare, fit_source, summarise
from profiler.accuracy import accuracies
from profiler.proxy_accuracy import SOURCE, Recipe, train_and_store
from profiler.store import Store

QUICK = {"n_a": 12, "n_b": 10, "draws": 2, "samples": 5, "b_epochs": 1, "digits_n": 120, "meta_iters": 20,
         "mlp_epochs": 20}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="mobilenetv2-small")
    ap.add_argument("--n-a", type=int, default=200, help="task A pairs (default 200)")
    ap.add_argument("--n-b", type=int, default=50, help="task B pairs (default 50: --samples to adapt, the rest "
                                                       "held out)")
    ap.add_argument("--samples", type=int, default=10, help="B pairs each predictor adapts or trains on")
    ap.add_argument("--draws", type=int, default=5, help="seeded draws of the B pairs")
    ap.add_argument("--a-resolution", type=int, default=32)
    ap.add_argument("--a-epochs", type=int, default=1)
    ap.add_argument("--a-batch-size", type=int, default=32)
    ap.add_argument("--b-resolution", type=int, default=32)
    ap.add_argument("--b-epochs", type=int, default=3)
    ap.add_argument("--b-batch-size", type=int, default=64)
    ap.add_argument("--digits-n", type=int, default=None, help="keep the first N digits (smoke size)")
    ap.add_argument("--meta-iters", type=int, default=1000, help="maml-acc meta-iterations (default 1000)")
    ap.add_argument("--mlp-epochs", type=int, default=200, help="MLP epochs (direct, transferred; default 200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", help="dataset keeping the trained pairs (default: a temporary one)")
    ap.add_argument("--quick", action="store_true", help=f"smoke size: {QUICK}")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    torch.set_num_threads(1)  # small convolutions and a shared machine: threads cost more than they give
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)

    rec_a = Recipe(resolution=args.a_resolution, epochs=args.a_epochs, batch_size=args.a_batch_size,
                   digits_n=args.digits_n)
    rec_b = Recipe(resolution=args.b_resolution, epochs=args.b_epochs, batch_size=args.b_batch_size,
                   digits_n=args.digits_n)
    task_a, task_b = rec_a.task_name(), rec_b.task_name()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.db) if args.db else Path(tmp) / "lab.db"
        with Store(db) as store:
            trained: dict[str, Any] = {}
            for task, recipe, n, seed in ((task_a, rec_a, args.n_a, args.seed), (task_b, rec_b, args.n_b,
                                                                                args.seed + 1000)):
                log(f"training {n} {args.space} networks on {task} (stored in {db})")
                rep = train_and_store(store, args.space, task, recipe, n=n, seed=seed,
                                      on_network=lambda r, t=task: log(f"  {t} {r['arch_id']}: "
                                                                       f"{r['accuracy']:.1f}% in {r['wall_s']:.1f} s"))
                times = [r["wall_s"] for r in rep.trained]
                trained[task] = {"trained": len(times), "skipped": rep.skipped,
                                 "s_per_network": float(np.mean(times)) if times else None}
                if rep.interrupted:
                    log("interrupted: the finished networks are stored; rerun with --db to resume")
                    return 130
            a = accuracies(store, rep.space, task_a, source=SOURCE)
            b = accuracies(store, rep.space, task_b, source=SOURCE)
    a_ids = sorted(a)
    a_y = np.array([a[i] for i in a_ids])
    b_ids = sorted(b)
    b_y = np.array([b[i] for i in b_ids])
    train_s = time.perf_counter() - t0
    log(f"fitting on {len(a_ids)} A pairs, {len(b_ids)} B pairs")
    source = fit_source(rep.space, a_ids, a_y, seed=args.seed, mlp_epochs=args.mlp_epochs,
                        meta_iters=args.meta_iters)
    runs = []
    for draw in range(args.draws):
        order = np.random.default_rng(args.seed + draw).permutation(len(b_ids))
        s, q = order[:args.samples], order[args.samples:]
        runs.append(compare(source, ([b_ids[i] for i in s], b_y[s]), ([b_ids[i] for i in q], b_y[q]),
                            seed=args.seed + draw, mlp_epochs=args.mlp_epochs))
    common = set(a_ids) & set(b_ids)
    res = {"space": rep.space, "task_a": {"name": task_a, "recipe": rec_a.as_dict(), "n": len(a_ids),
                                          "accuracy_mean": float(a_y.mean()), "accuracy_std": float(a_y.std()),
                                          **trained[task_a]},
           "task_b": {"name": task_b, "recipe": rec_b.as_dict(), "n": len(b_ids), "accuracy_mean": float(b_y.mean()),
                      "accuracy_std": float(b_y.std()), **trained[task_b]},
           "a_b_masks_in_common": len(common),
           "a_b_rank_correlation_on_common": (float(_rho([a[i] for i in common], [b[i] for i in common]))
                                              if len(common) > 2 else None),
           "samples": args.samples, "held_out": len(b_ids) - args.samples, "draws": args.draws,
           "summary": summarise(runs), "runs": runs, "train_s": round(train_s, 1),
           "fit_s": round(source.fit_s, 1), "wall_s": round(time.perf_counter() - t0, 1)}
    if args.json:
        print(json.dumps(finite(res), indent=2))
    else:
        print_table(res)
    return 0


def finite(data: Any) -> Any:
    """The JSON with every NaN (rho of tied accuracies, which ranks nothing) as null."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list):
        return [finite(v) for v in data]
    return data


def _rho(x: list[float], y: list[float]) -> float:
    from predictors.metrics import spearman

    return spearman(np.array(x), np.array(y))


def print_table(res: dict[str, Any]) -> None:
    a, b = res["task_a"], res["task_b"]
    print(f"space {res['space']}; task A {a['name']}: {a['n']} pairs, accuracy {a['accuracy_mean']:.1f} +- "
          f"{a['accuracy_std']:.1f}%; task B {b['name']}: {b['n']} pairs, {b['accuracy_mean']:.1f} +- "
          f"{b['accuracy_std']:.1f}%")
    print(f"{res['samples']} B pairs to adapt on, {res['held_out']} held out, {res['draws']} draws (mean +- std)")
    print(f"{'method':<16} {'RMSE (pts)':>16} {'Spearman rho':>16}")
    for m in METHODS:
        s = res["summary"][m]
        rho = ("       (constant)" if s["spearman_mean"] is None or not math.isfinite(s["spearman_mean"])
               else f"{s['spearman_mean']:8.3f} +- {s['spearman_std']:5.3f}")
        print(f"{m:<16} {s['rmse_mean']:8.2f} +- {s['rmse_std']:5.2f} {rho}")
    per = ", ".join(f"{t['name']} {t['s_per_network']:.1f} s" for t in (a, b) if t["s_per_network"])
    print(f"training {res['train_s']:.0f} s ({per or 'all stored already'} per network), fitting "
          f"{res['fit_s']:.0f} s, wall {res['wall_s']:.0f} s")


if __name__ == "__main__":
    raise SystemExit(main())
