"""BTE and TSE (few-epoch training proxies) against NB201's true CIFAR-100 accuracy, beside the zero-shot proxies
of proxy_correlation.py at the same cells and network config, with the cost per cell of each.

- Cells: `--n` of the 1,000 cells proxy_correlation.py samples (seed 0, NASLib's first), drawn with `--seed`, so
  that the zero-shot values are already in its cache (benchmarks/out/proxy_correlation.jsonl, read only here;
  anything missing is computed into this benchmark's own cache).
- Network: NB201 as the accuracy table gives it (C=16, N=5, 100 classes, 32x32), initialised as the proxies
  build it (hwsearch.proxies.build_for_proxy, the same seed per cell).
- Training set: `--batches` fixed mini-batches of `--batch-size` digits images (sklearn digits upsampled to
  32x32, the proxies' stand-in for CIFAR), no shuffling, no augmentation; SGD as hwsearch.bte states
  (momentum 0.9, constant lr, weight decay 5e-4). One run of `--epochs` epochs per cell gives the logged loss
  log and the re-evaluated one (every batch after each epoch); BTE under each negative-factor rule and TSE
  are computed at every budget E = 2..--epochs from its first E rows (a constant lr makes them the log of an
  E-epoch run). The thesis compares BTE, TSE and Jacob_cov at equal budget (Fig. 4.6-4.7, no numbers).
- Cost per cell: the training seconds scaled to the budget (E/--epochs of the run); re-evaluation adds its
  forward passes; the zero-shot proxies' seconds come from their cache records (timed when computed).

The loss logs go to a JSONL cache (`--scores`, default benchmarks/out/bte_correlation.jsonl), one line per cell
as soon as it is trained: a long run resumes, and `--shard K/M` lets M processes train disjoint cells into the
same file (then run once without --shard for the table). `--quick` is a smoke size whose figures mean nothing.
On this 2-core CPU, shared (load ~5), a cell took ~30 s wall (3 epochs of 8 batches of 32, and the
re-evaluation): the 200 cells ran as two `--shard` processes in 52 min (OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwsearch.bte import DEFAULT_LR, DEFAULT_NEGATIVE, NEGATIVE_RULES, budgets, factors, loss_logs
from hwsearch.proxies import build_for_proxy, create_proxy, make_batch
from hwsearch.proxy_eval import (
    DEFAULT_NASLIB,
    ScoreCache,
    correlations,
    json_ready,
    load_naslib,
    sample_cells,
    score_cells,
)
from predictors.importers.nb201_accuracy import read_nb201_accuracy
from spaces import create_space

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
PROXY_CACHE = REPO / "benchmarks" / "out" / "proxy_correlation.jsonl"
PROXIES = "synflow,naswot,jacob_cov,snip,grad_norm,zen,params,flops,tpc"
QUICK = {"n": 4, "epochs": 2, "batches": 2, "batch_size": 8, "proxies": "params,synflow,jacob_cov"}
POOL = 1000  # proxy_correlation.py's sample size: the cells its cache holds values of


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="cifar100")
    ap.add_argument("--n", type=int, default=200, help="cells (default 200)")
    ap.add_argument("--epochs", type=int, default=3, help="the largest budget E (default 3; BTE needs >= 2)")
    ap.add_argument("--batches", type=int, default=8, help="mini-batches in the training set (default 8)")
    ap.add_argument("--batch-size", type=int, default=32, help="mini-batch size (default 32)")
    ap.add_argument("--lr", type=float, default=DEFAULT_LR)
    ap.add_argument("--proxies", default=PROXIES, help=f"zero-shot proxies beside them (default {PROXIES})")
    ap.add_argument("--proxy-batch-size", type=int, default=64, help="the zero-shot proxies' batch (default 64, "
                                                                    "as proxy_correlation.py)")
    ap.add_argument("--top", type=float, default=5.0, help="the top share by true accuracy, in percent")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shard", help="K/M: train only cells i with i %% M == K, then stop (no table)")
    ap.add_argument("--no-train", action="store_true", help="train nothing: the table over the cells whose loss "
                                                            "logs are cached (a partial run's figures)")
    ap.add_argument("--scores", help="the loss-log cache (default benchmarks/out/bte_correlation.jsonl; with "
                                     "--quick a temporary file)")
    ap.add_argument("--proxy-scores", help=f"zero-shot values to reuse, read only (default {PROXY_CACHE.name}; "
                                           "none with --quick)")
    ap.add_argument("--quick", action="store_true", help=f"smoke size: {QUICK}")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
    if args.epochs < 2:
        ap.error("--epochs must be >= 2 (BTE compares consecutive epochs)")
    if not 0 < args.top <= 100:
        ap.error(f"--top is a percentage in (0, 100], got {args.top:g}")
    args.top /= 100
    if args.shard:
        try:
            k, m = (int(s) for s in args.shard.split("/"))
        except ValueError:
            ap.error(f"--shard is K/M, got {args.shard!r}")
        if not 0 <= k < m:
            ap.error(f"--shard K/M needs 0 <= K < M, got {args.shard!r}")
        args.shard = (k, m)
    return args


def log(msg: str, t0: float) -> None:
    print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)


def log_key(args: argparse.Namespace, arch_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """Everything a loss log depends on but its length (a ScoreCache-shaped key: proxy 'loss_log', its
    training params). The record says how many epochs it holds: with a constant lr, the first E rows of a
    longer log are the log of an E-epoch run, so a longer one serves a shorter request."""
    return {"proxy": "loss_log", "params": {"batches": args.batches, "batch_size": args.batch_size, "lr": args.lr,
                                            "data": "digits"},
            "arch": arch_id, "batch": "digits", "batch_size": args.batch_size * args.batches, "seed": args.seed,
            "space_config": config}


def cached_log(args: argparse.Namespace, cache: ScoreCache, arch_id: str, config: dict[str, Any]
               ) -> dict[str, Any] | None:
    """The cached loss logs of `arch_id` cut to `--epochs` rows (their seconds scaled alike), or None when
    there are none or fewer epochs."""
    rec = cache.get(log_key(args, arch_id, config))
    if rec is None or rec["epochs"] < args.epochs:
        return None
    keep = args.epochs / rec["epochs"]
    return {**rec, "epochs": args.epochs, "logged": rec["logged"][: args.epochs],
            "reevaluated": rec["reevaluated"][: args.epochs], "train_s": rec["train_s"] * keep,
            "reevaluate_s": rec["reevaluate_s"] * keep}


def train_cells(args: argparse.Namespace, space: Any, cells: Sequence[str], cache: ScoreCache,
                t0: float) -> dict[str, dict[str, Any]]:
    """The loss logs of `cells` (cached ones read back, the others trained and appended as they finish)."""
    config = dict(space.config)
    data = make_batch("digits", space.input_shape(), args.batch_size * args.batches, args.seed,
                      num_classes=space.num_classes)
    out, last = {}, time.perf_counter()
    todo = [a for a in cells if cached_log(args, cache, a, config) is None]
    log(f"loss logs: {len(cells) - len(todo)} cached, {len(todo)} to train ({args.epochs} epochs x "
        f"{args.batches} batches of {args.batch_size})" + (": --no-train, none trained" if args.no_train else ""),
        t0)
    if args.no_train:
        todo = []
    for i, a in enumerate(todo):
        model = build_for_proxy(space, space.parse(a), args.seed)
        logs = loss_logs(model, data.x, data.y, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         seed=args.seed, reevaluate=True)
        cache.add([{**log_key(args, a, config), "epochs": args.epochs, "logged": logs["logged"].tolist(),
                    "reevaluated": logs["reevaluated"].tolist(), "train_s": logs["train_s"],
                    "reevaluate_s": logs["reevaluate_s"], "value": None, "error": None}])
        if time.perf_counter() - last > 30 or i + 1 == len(todo):
            last = time.perf_counter()
            log(f"trained {i + 1}/{len(todo)} (last {logs['train_s'] + logs['reevaluate_s']:.1f} s)", t0)
    for a in cells:
        rec = cached_log(args, cache, a, config)
        if rec is not None:
            out[a] = rec
    return out


def training_rows(args: argparse.Namespace, logs: dict[str, dict[str, Any]], truth: dict[str, float]
                  ) -> dict[str, Any]:
    """Per measure (logged, reevaluated) and budget E: each BTE rule's and TSE's correlations and cost."""
    ids = [a for a in logs if a in truth]
    t = [truth[a] for a in ids]
    rows: dict[str, Any] = {}
    for measure in ("logged", "reevaluated"):
        per_cell = {a: budgets(np.asarray(logs[a][measure], dtype=float)) for a in ids}
        for e in range(2, args.epochs + 1):
            # the share of batch terms with a rise (a negative factor): where the rules differ at all
            rising = float(np.mean([(factors(np.asarray(logs[a][measure], dtype=float)[:e]) < 0).any(axis=0).mean()
                                    for a in ids if np.isfinite(np.asarray(logs[a][measure], dtype=float)[:e]).all()]
                                   or [math.nan]))
            cost = float(np.mean([logs[a]["train_s"] for a in ids])) * e / args.epochs
            if measure == "reevaluated":
                cost += float(np.mean([logs[a]["reevaluate_s"] for a in ids])) * e / args.epochs
            for name in [f"bte_{r}" for r in NEGATIVE_RULES] + ["tse"]:
                vals = [per_cell[a][e][name] for a in ids]
                corr = correlations(vals, t, name != "tse", args.top)
                rows[f"{name}@{e}" + ("" if measure == "logged" else " re")] = {
                    "kind": "training", "measure": measure, "epochs": e, "higher_is_better": name != "tse",
                    "n": corr["n"], "spearman": corr["spearman"], "kendall": corr["kendall"],
                    "top_spearman": corr["top"]["spearman"], "top_kendall": corr["top"]["kendall"],
                    "time_per_cell_s": cost, "n_diverged": int(sum(not math.isfinite(v) for v in vals)),
                    "rising_share": rising}
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    records = read_nb201_accuracy(DATA / "NB201-accuracy" / f"{args.task}.csv")
    truth = {r.arch_id: r.value for r in records}
    space = create_space("nb201", **records[0].space_config)
    naslib = load_naslib(DEFAULT_NASLIB, args.task) if DEFAULT_NASLIB.is_file() else {}
    pool = sample_cells(sorted(truth), POOL, 0, prefer=list(naslib))
    cells = sample_cells(pool, args.n, args.seed)
    cache = ScoreCache(args.scores)
    if args.shard:
        k, m = args.shard
        mine = [a for i, a in enumerate(cells) if i % m == k]
        train_cells(args, space, mine, cache, t0)
        return {"shard": f"{k}/{m}", "cells": len(mine), "wall_s": time.perf_counter() - t0}
    logs = train_cells(args, space, cells, cache, t0)
    cells = [a for a in cells if a in logs]  # all of them unless --no-train
    if len(cells) < 3:
        raise SystemExit(f"only {len(cells)} cells have loss logs: a rank correlation needs 3")
    rows = training_rows(args, logs, truth)
    if args.proxy_scores:  # their values, read only: copied into memory, never written back there
        cache.entries = {**ScoreCache(args.proxy_scores).entries, **cache.entries}
    proxies = [create_proxy(p) for p in args.proxies.split(",") if p]
    batch = make_batch("digits", space.input_shape(), args.proxy_batch_size, 0, num_classes=space.num_classes)
    scored = score_cells(proxies, space, cells, batch, 0, cache)
    for p in proxies:
        s = scored[p.name]
        corr = correlations([s["values"][a] for a in cells], [truth[a] for a in cells], p.higher_is_better,
                            args.top)
        rows[p.name] = {"kind": "data-free" if p.data_free else "one batch", "measure": None, "epochs": 0,
                        "higher_is_better": p.higher_is_better, "n": corr["n"], "spearman": corr["spearman"],
                        "kendall": corr["kendall"], "top_spearman": corr["top"]["spearman"],
                        "top_kendall": corr["top"]["kendall"],
                        "time_per_cell_s": float(np.mean([s["time_s"][a] for a in cells])),
                        "n_failed": len(s["errors"]), "computed": s["computed"], "cached": s["cached"]}
    acc = [truth[a] for a in cells]
    return {"task": args.task, "space_config": dict(space.config), "n_cells": len(cells), "n_asked": args.n,
            "seed": args.seed,
            "training": {"epochs": args.epochs, "batches": args.batches, "batch_size": args.batch_size,
                         "lr": args.lr, "momentum": 0.9, "weight_decay": 5e-4, "data": data_note(args)},
            "proxy_batch": batch.describe(), "top": args.top, "truth": {"min": min(acc), "max": max(acc),
                                                                         "mean": float(np.mean(acc))},
            "scores_file": args.scores, "proxy_scores_file": args.proxy_scores, "rows": rows,
            "summary": summary(rows, args.epochs), "wall_s": time.perf_counter() - t0}


def data_note(args: argparse.Namespace) -> str:
    return (f"{args.batches * args.batch_size} sklearn digits (8x8 upsampled to 32x32), {args.batches} fixed "
            f"batches of {args.batch_size}, no shuffle, no augmentation")


def summary(rows: dict[str, Any], epochs: int) -> dict[str, Any]:
    """At each budget E (logged loss): BTE under each rule, TSE and Jacob_cov (ρ), and whether BTE under the
    default rule beats TSE and Jacob_cov (the thesis' claim, Fig. 4.6-4.7)."""
    out: dict[str, Any] = {}
    jc = rows.get("jacob_cov", {}).get("spearman", float("nan"))
    for e in range(2, epochs + 1):
        rules = {r: rows[f"bte_{r}@{e}"]["spearman"] for r in NEGATIVE_RULES}
        mine, ts = rules[DEFAULT_NEGATIVE], rows[f"tse@{e}"]["spearman"]
        out[str(e)] = {"default_rule": DEFAULT_NEGATIVE, "bte_spearman": rules, "tse_spearman": ts,
                       "jacob_cov_spearman": jc, "bte_beats_tse": bool(mine > ts),
                       "bte_beats_jacob_cov": bool(mine > jc) if not math.isnan(jc) else None}
    return out


def fmt(x: Any, spec: str = "+.3f") -> str:
    return "   -  " if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def print_table(res: dict[str, Any]) -> None:
    tr = res["training"]
    print(f"NB201 {res['task']} ({res['space_config']}): {res['n_cells']} of {res['n_asked']} cells vs the true "
          f"test accuracy "
          f"(range {res['truth']['min']:.1f}-{res['truth']['max']:.1f} %)")
    print(f"training proxies: {tr['data']}; SGD lr {tr['lr']:g} momentum {tr['momentum']} wd {tr['weight_decay']:g} "
          f"constant; budget E = epochs (@E); 're' = re-evaluated loss, else logged")
    print(f"one-batch proxies: {res['proxy_batch']['kind']} x{res['proxy_batch']['batch_size']}")
    head = (f"{'proxy':<18} {'kind':<10} {'n':>4} {'ρ all':>7} {'τ all':>7} {'ρ top':>7} {'τ top':>7} "
            f"{'s/cell':>7} {'rises':>6}")
    print(head)
    print("-" * len(head))
    for name, r in res["rows"].items():
        print(f"{name + ('' if r['higher_is_better'] else ' (-)'):<18} {r['kind']:<10} {r['n']:>4} "
              f"{fmt(r['spearman']):>7} {fmt(r['kendall']):>7} {fmt(r['top_spearman']):>7} "
              f"{fmt(r['top_kendall']):>7} {fmt(r['time_per_cell_s'], '.2f'):>7} "
              f"{fmt(r.get('rising_share'), '.1%'):>6}")
    print(f"top = the best {100 * res['top']:g}% of these cells by true accuracy; (-) lower is better, negated; "
          "rises = share of batches whose loss rose between two epochs within the budget (where the BTE rules "
          "differ)")
    for e, s in res["summary"].items():
        print(f"E={e}: BTE ({s['default_rule']}) ρ {fmt(s['bte_spearman'][s['default_rule']])}; TSE ρ "
              f"{fmt(s['tse_spearman'])}; Jacob_cov ρ {fmt(s['jacob_cov_spearman'])}; BTE > TSE: "
              f"{s['bte_beats_tse']}, BTE > Jacob_cov: {s['bte_beats_jacob_cov']}")
    print(f"\nwall {res['wall_s']:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.scores is None:
            args.scores = str(Path(tmp) / "scores.jsonl" if args.quick
                              else REPO / "benchmarks" / "out" / "bte_correlation.jsonl")
        if args.proxy_scores is None and not args.quick and PROXY_CACHE.is_file():
            args.proxy_scores = str(PROXY_CACHE)
        res = json_ready(run(args))
    if args.json:
        print(json.dumps(res, indent=2))
    elif "shard" in res:
        print(f"shard {res['shard']}: {res['cells']} cells trained or cached in {res['wall_s']:.0f} s")
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
