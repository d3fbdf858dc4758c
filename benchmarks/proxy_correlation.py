"""Zero-shot proxies against NB201's true CIFAR-100 accuracy: Spearman ρ and Kendall τ, all cells and top 5 %,
beside the published figures and NASLib's per-cell reference scores, and how much the stand-in batch matters.

- Data-free proxies with a fast path (#params, #FLOPs, TPC) score all 15,625 cells; every other proxy scores
  `--n` seeded cells (default 1,000), NASLib's ~725 cells first so that the reference comparison has them all.
- Published (zero-cost-nas, NB201 CIFAR-100, all cells, batch 64 of real CIFAR images): synflow 0.763,
  jacob_cov 0.704, snip 0.637, grad_norm 0.637, grasp 0.547, fisher 0.385; #params about 0.73.
- NASLib (NAS-Bench-Suite-Zero's zc_nasbench201.json, real CIFAR-100 batches): ρ of our values against theirs on
  the common cells, and their own ρ against the truth on their cells (what a real batch gives).
- We have no CIFAR images: the data-dependent proxies read `--batch` (digits upsampled, or Gaussian noise);
  `--compare-n` cells are also scored with the other batch kind (ρ each, and ρ between the two per cell).
- Best-by-proxy (the survey's Table IV protocol): the true accuracy of the cell a proxy ranks first, beside the
  best true accuracy among the same cells.

Every value goes through hwsearch.proxy_eval's cache (`--scores`, default benchmarks/out/proxy_correlation.jsonl):
a long run resumes where it stopped, and separate processes may run separate `--proxies`. On this 2-core CPU at
batch 64 the data-dependent proxies take ~2 s per cell each (GraSP ~8 s, NTK ~5 s): 1,000 cells of all of
them is hours. `--quick` is a smoke size whose figures mean nothing.
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

from hwsearch.proxies import create_proxy, make_batch
from hwsearch.proxy_eval import (
    DEFAULT_NASLIB,
    ScoreCache,
    _has_fast_path,
    correlations,
    default_proxy_names,
    json_ready,
    load_naslib,
    naslib_comparison,
    sample_cells,
    score_cells,
    spearman,
)
from predictors.importers.nb201_accuracy import read_nb201_accuracy
from spaces import create_space

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
PUBLISHED = {"synflow": 0.763, "jacob_cov": 0.704, "snip": 0.637, "grad_norm": 0.637, "grasp": 0.547,
             "fisher": 0.385, "params": 0.73}
PUBLISHED_SOURCE = "zero-cost-nas (Abdelfattah et al. 2021), NB201 CIFAR-100, all 15,625 cells; #params: the survey"
QUICK = {"n": 6, "compare_n": 3, "batch_size": 16}
# at --quick without --proxies: the table proxies and one of each kind that builds networks (a smoke run)
QUICK_PROXIES = "params,flops,tpc,tpc-table8,synflow,naswot,grad_norm"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="cifar100")
    ap.add_argument("--proxies", help="comma-separated (default: every registered proxy)")
    ap.add_argument("--n", type=int, default=1000, help="cells for the proxies without a fast path (default 1000)")
    ap.add_argument("--compare-n", type=int, default=200, help="cells scored with both batch kinds (default 200)")
    ap.add_argument("--batch", default="digits", choices=("digits", "gaussian"))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--top", type=float, default=5.0, help="the top share by true accuracy, in percent (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scores", help="the per-cell cache, a rerun resumes (default: benchmarks/out/"
                                     "proxy_correlation.jsonl; with --quick, a temporary file)")
    ap.add_argument("--naslib", default=str(DEFAULT_NASLIB))
    ap.add_argument("--quick", action="store_true", help=f"smoke size: {QUICK}, proxies {QUICK_PROXIES} unless given")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    if not 0 < args.top <= 100:
        ap.error(f"--top is a percentage in (0, 100], got {args.top:g}")
    args.top /= 100
    if args.quick:
        for k, v in QUICK.items():
            setattr(args, k, v)
        args.proxies = args.proxies or QUICK_PROXIES
    return args


def log(msg: str, t0: float) -> None:
    print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)


def progress_logger(t0: float, every_s: float = 30.0):
    last = [time.perf_counter()]

    def step(done: int, total: int, note: str = "") -> None:
        if time.perf_counter() - last[0] >= every_s or done == total:
            last[0] = time.perf_counter()
            log(f"{note}: {done}/{total} values", t0)

    return step


def best_by_proxy(values: dict[str, float], truth: dict[str, float], higher_is_better: bool) -> dict[str, Any]:
    """The true accuracy of the cell the proxy ranks first (ties: the first in id order) and the best true
    accuracy among the cells it scored."""
    ids = sorted(a for a, v in values.items() if math.isfinite(v) and a in truth)
    if not ids:
        return {"accuracy": float("nan"), "gt_best": float("nan")}
    sign = 1.0 if higher_is_better else -1.0
    top = max(ids, key=lambda a: sign * values[a])
    return {"arch": top, "accuracy": truth[top], "gt_best": max(truth[a] for a in ids)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    records = read_nb201_accuracy(DATA / "NB201-accuracy" / f"{args.task}.csv")
    truth = {r.arch_id: r.value for r in records}
    space = create_space("nb201", **records[0].space_config)
    naslib = load_naslib(args.naslib, args.task) if args.naslib else {}
    names = [s for s in (args.proxies.split(",") if args.proxies else default_proxy_names()) if s]
    proxies = [create_proxy(n) for n in names]
    first = space.parse(next(iter(truth)))
    fast = {p.name: _has_fast_path(p, space, first) for p in proxies}
    every = sorted(truth)
    sampled = sample_cells(every, args.n, args.seed, prefer=list(naslib))
    batch = make_batch(args.batch, space.input_shape(), args.batch_size, args.seed, num_classes=space.num_classes)
    cache = ScoreCache(args.scores)
    log(f"{len(proxies)} proxies, {len(sampled)} sampled cells ({sum(a in naslib for a in sampled)} NASLib's), "
        f"fast path: {', '.join(n for n, f in fast.items() if f) or 'none'}; cache {args.scores} "
        f"({len(cache.entries)} values)", t0)
    scored = score_cells(proxies, space, sampled, batch, args.seed, cache, progress_logger(t0),
                         cells_for=lambda p: every if fast[p.name] else sampled)
    rows: dict[str, Any] = {}
    for p in proxies:
        s = scored[p.name]
        vals = s["values"]
        ids = [a for a in vals if a in truth]
        corr = correlations([vals[a] for a in ids], [truth[a] for a in ids], p.higher_is_better, args.top)
        times = list(s["time_s"].values())
        rows[p.name] = {"data_free": p.data_free, "higher_is_better": p.higher_is_better, "fast": fast[p.name],
                        "n": corr["n"], "spearman": corr["spearman"], "kendall": corr["kendall"],
                        "top_n": corr["top"]["n"], "top_spearman": corr["top"]["spearman"],
                        "top_kendall": corr["top"]["kendall"], "published": PUBLISHED.get(p.name),
                        "time_per_cell_s": float(np.mean(times)) if times else float("nan"),
                        "n_failed": len(s["errors"]), "failures": list(s["errors"].values())[:3],
                        "computed": s["computed"], "cached": s["cached"],
                        "naslib": naslib_comparison(p.name, vals, truth, naslib) if naslib else None,
                        "best_by_proxy": best_by_proxy(vals, truth, p.higher_is_better)}
    other = "gaussian" if args.batch == "digits" else "digits"
    data_proxies = [p for p in proxies if not p.data_free]
    compare_ids = sampled[: args.compare_n]
    effect: dict[str, Any] = {}
    if data_proxies and compare_ids:
        log(f"batch effect: {len(data_proxies)} data-dependent proxies on {len(compare_ids)} cells, {other}", t0)
        other_batch = make_batch(other, space.input_shape(), args.batch_size, args.seed,
                                 num_classes=space.num_classes)
        again = score_cells(data_proxies, space, compare_ids, other_batch, args.seed, cache, progress_logger(t0))
        for p in data_proxies:
            a_vals = [scored[p.name]["values"][a] for a in compare_ids]
            b_vals = [again[p.name]["values"][a] for a in compare_ids]
            t = [truth[a] for a in compare_ids]
            effect[p.name] = {"n": len(compare_ids),
                              args.batch: correlations(a_vals, t, p.higher_is_better, args.top)["spearman"],
                              other: correlations(b_vals, t, p.higher_is_better, args.top)["spearman"],
                              "between": spearman(a_vals, b_vals)}
    return {"task": args.task, "space_config": dict(space.config), "batch": batch.describe(), "seed": args.seed,
            "top": args.top, "n_cells_fast": len(every), "n_sampled": len(sampled),
            "n_sampled_naslib": sum(a in naslib for a in sampled), "scores_file": args.scores,
            "published_source": PUBLISHED_SOURCE, "proxies": rows,
            "batch_effect": {"other": other, "n": len(compare_ids), "proxies": effect},
            "wall_s": time.perf_counter() - t0}


def fmt(x: Any, spec: str = "+.3f") -> str:
    return "   -  " if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def print_table(res: dict[str, Any]) -> None:
    b = res["batch"]
    print(f"NB201 {res['task']}: proxies vs the true test accuracy (batch {b['kind']} x{b['batch_size']}, seed "
          f"{res['seed']}; fast-path proxies on all {res['n_cells_fast']:,} cells, the others on "
          f"{res['n_sampled']:,} incl. {res['n_sampled_naslib']} of NASLib's)")
    head = (f"{'proxy':<11} {'n':>6} {'ρ all':>7} {'τ all':>7} {'ρ top':>7} {'τ top':>7} {'publ.':>6} "
            f"{'vsNASLib':>8} {'NASLib ρ':>8} {'best':>6} {'GT':>6} {'s/cell':>7} {'fail':>4}")
    print(head)
    print("-" * len(head))
    for name, r in res["proxies"].items():
        nl = r["naslib"] or {}
        bb = r["best_by_proxy"]
        print(f"{name + ('' if r['higher_is_better'] else ' (-)'):<11} {r['n']:>6} {fmt(r['spearman']):>7} "
              f"{fmt(r['kendall']):>7} {fmt(r['top_spearman']):>7} {fmt(r['top_kendall']):>7} "
              f"{fmt(r['published'], '.3f'):>6} {fmt(nl.get('spearman_vs_ours')):>8} "
              f"{fmt(nl.get('naslib_spearman')):>8} {fmt(bb['accuracy'], '.2f'):>6} {fmt(bb['gt_best'], '.2f'):>6} "
              f"{fmt(r['time_per_cell_s'], '.4f'):>7} {r['n_failed']:>4}")
    print(f"top = the best {100 * res['top']:g}% by true accuracy; publ. = {res['published_source']}; vsNASLib = ρ "
          "of ours vs NASLib's per-cell scores on common cells; NASLib ρ = theirs vs the truth on their cells "
          "(real CIFAR batches); best = true accuracy of the proxy's first-ranked cell, GT = the best among the "
          "same cells; (-) lower is better, negated")
    eff = res["batch_effect"]
    if eff["proxies"]:
        kinds = [k for k in eff["proxies"][next(iter(eff["proxies"]))] if k not in ("n", "between")]
        print(f"\nbatch effect on {eff['n']} cells: ρ vs truth with each batch, and ρ between the two per cell")
        print(f"{'proxy':<11} " + " ".join(f"{k:>9}" for k in kinds) + f" {'between':>9}")
        for name, r in eff["proxies"].items():
            print(f"{name:<11} " + " ".join(f"{fmt(r[k]):>9}" for k in kinds) + f" {fmt(r['between']):>9}")
    print(f"\nwall {res['wall_s']:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.scores is None:
            args.scores = str(Path(tmp) / "scores.jsonl" if args.quick else REPO / "benchmarks" / "out" /
                              "proxy_correlation.jsonl")
        res = json_ready(run(args))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
