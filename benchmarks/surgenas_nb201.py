"""SurgeNAS on NAS-Bench-201 (thesis Table 3.3): the found cells' CIFAR-100 test accuracy at β = 0, the
identity-mapping ablation (does skip-connect take over without it?), and β > 0 at a latency target on HELP's
measured tables beside LightNAS and random search at the same predictor budget.

(a) β = 0, the NB201 supernet in its default config (C 16, N 5), the digits proxy (scikit-learn's 8x8 digits,
upsampled to --resolution: a proxy task, not CIFAR), --seeds searches: each found cell's CIFAR-100 test
accuracy from NAS-Bench-201's table (`NB201-accuracy/cifar100.csv`, imported into a Store), against the thesis'
SurgeNAS (71.6, mean of 3) and DARTS' collapse (15.6), the space's best cell and the mean over all cells (what a
random cell scores on average). (b) The same searches with `identity=False`: skip-connect and none edges per
found cell. (c) Per HELP board: an MLP trained on the board's latencies of NB201 indices [0, --train-n), as in
`lightnas_nb201_tables`; targets = the --percentiles of the board's table (default the 5th and the 50th: β = 0's
cells on the digits proxy are cheap, ~10th-20th percentile, so the 5th needs β > 0 and the 50th β < 0, the signed
bisection of `hwsearch.surgenas`); SurgeNAS with that target (bisection on β, at most --max-trials searches),
LightNAS (same epochs, data and seed) and random search (#params proxy, the same MLP) at each one's budget.
The found cells are judged by `hwsearch.judge` (table latency against the target, CIFAR-100 accuracy, regret).

Budget: the distinct cells a search's predictor was asked about, recorded by `QueryLog`, without the
reachable-range check's 15,625 (it enumerates the space to refuse an unreachable target and chooses nothing).
For SurgeNAS that is every trial of the bisection: each α-step's |O| = 5 sampled paths, the argmax after every
step and epoch, and the β = 0 trial (its predictor is queried for the log though β·LAT is 0).
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
from lightnas_nb201_tables import QueryLog, judged, random_search, search_evaluations

from hwsearch import CostModel, as_cost_model, create_search, digits_proxy
from hwsearch.judge import load_table
from predictors.data import load_accuracy, load_xy
from predictors.importers import IMPORTERS
from predictors.registry import create_predictor
from profiler.store import Store
from spaces import create_space
from spaces.nb201 import OPS, live_edges

ROOT = Path(__file__).resolve().parents[1]
TASK = "cifar100"
THESIS = {"surgenas": 71.6, "darts_collapse": 15.6}  # Table 3.3, CIFAR-100 test (spec §6.3)
SKIP, NONE = OPS.index("skip_connect"), OPS.index("none")
QUICK = {"seeds": "0", "ablation_seeds": "0", "epochs": 2, "digits": 200, "boards": "raspi4", "max_trials": 2,
         "percentiles": "5",
         "train_n": 200}


def cell_ops(arch: list[int]) -> dict[str, Any]:
    """Skip-connect and none edges of a cell, over all 6 edges and over the live ones (on a path to the output)."""
    live = live_edges(tuple(arch))
    return {"skip": sum(op == SKIP for op in arch), "none": sum(op == NONE for op in arch),
            "live_edges": len(live), "live_skip": sum(arch[e] == SKIP for e in live),
            "ops": [OPS[k] for k in arch]}


def beta0_runs(args: argparse.Namespace, identity: bool, seeds: list[int], acc_of: dict[str, float],
               log: Any) -> list[dict[str, Any]]:
    """One SurgeNAS search per seed at β = 0 (no predictor): the found cell, its CIFAR-100 accuracy, its ops."""
    space = create_space("nb201")
    rows = []
    for seed in seeds:
        t0 = time.perf_counter()
        s = create_search("surgenas", space="nb201", epochs=args.epochs, seed=seed, identity=identity,
                          data_resolution=args.resolution, phi0=args.phi0)
        r = s.search(digits_proxy(resolution=args.resolution, seed=seed, n=args.digits))
        ce = [row["ce"] for row in r.log]
        row = {"seed": seed, "arch_id": r.arch_id, "index": space.index(tuple(r.arch)),
               "accuracy": acc_of.get(r.arch_id), "proxy_heldout_accuracy": r.heldout_accuracy,
               "ce_first_epoch_mean": float(np.mean(ce[: len(ce) // args.epochs])) / space.n_ops,
               "ce_last_epoch_mean": float(np.mean(ce[-(len(ce) // args.epochs):])) / space.n_ops,
               "fairness_equal": r.fairness["equal"], **cell_ops(r.arch),
               "search_s": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        log(f"identity={identity} seed {seed}: #{row['index']} acc {row['accuracy']} skip {row['skip']} none "
            f"{row['none']} CE/path {row['ce_first_epoch_mean']:.2f} -> {row['ce_last_epoch_mean']:.2f} "
            f"({row['search_s']} s)")
    return rows


def summarise_beta0(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not rows:
        return None
    acc = [r["accuracy"] for r in rows if r["accuracy"] is not None]
    return {"accuracy_mean": float(np.mean(acc)) if acc else None,
            "accuracy_min": min(acc) if acc else None, "accuracy_max": max(acc) if acc else None,
            "skip_mean": float(np.mean([r["skip"] for r in rows])),
            "none_mean": float(np.mean([r["none"] for r in rows])),
            "live_skip_mean": float(np.mean([r["live_skip"] for r in rows])),
            "runs": len(rows)}


def recorded(pred: Any, space: Any) -> tuple[CostModel, QueryLog]:
    cost = as_cost_model(pred)
    q = QueryLog(cost.module, space.n_layers, space.n_ops)
    return CostModel(q, cost.space, cost.space_config, cost.metric, cost.device_name, cost.source), q


def per_trial(calls: list[list[tuple[int, ...]]], space_size: int, trials: int) -> list[int] | None:
    """Distinct cells per bisection trial: every trial makes the same number of predictor calls (a search of
    the same length), so the calls after the reachable range split evenly; None when they do not."""
    k, seen = 0, 0
    while k < len(calls) and seen < space_size:
        seen, k = seen + len(calls[k]), k + 1
    rest = calls[k:]
    if not trials or len(rest) % trials:
        return None
    n = len(rest) // trials
    return [len({a for c in rest[i * n:(i + 1) * n] for a in c}) for i in range(trials)]


def board_mlp(store: Store, board: str, train_n: int, seed: int) -> tuple[Any, dict[int, float], np.ndarray]:
    """The MLP of a HELP board, fitted on NB201 indices [0, train_n) of its table: (predictor, {NB201 index:
    table latency}, the latencies of the board's cells). What the NB201 search benchmarks search with."""
    space = create_space("nb201")
    ids, y = load_xy(store, board, "nb201")
    table = {space.index(space.parse(a)): v for a, v in zip(ids, y, strict=True)}
    train_ids = [space.arch_id(space.from_index(i)) for i in range(train_n)]
    pred = create_predictor("mlp", space="nb201", seed=seed).fit(
        train_ids, np.array([table[i] for i in range(train_n)]))
    return pred, table, np.asarray(y)


def board_runs(args: argparse.Namespace, store: Store, board: str, log: Any) -> list[dict[str, Any]]:
    """SurgeNAS at the board's percentile targets beside LightNAS and random search, judged on the table."""
    space = create_space("nb201")
    pred, _, y = board_mlp(store, board, args.train_n, args.seed)
    both = load_table(store, board, "nb201", TASK)
    data = digits_proxy(resolution=args.resolution, seed=args.seed, n=args.digits)
    rows = []
    for pct in args.percentiles:
        target = float(np.percentile(y, pct))
        t0 = time.perf_counter()
        cost, q = recorded(pred, space)
        sg = create_search("surgenas", predictor=cost, target=target, epochs=args.epochs, seed=args.seed,
                           data_resolution=args.resolution, max_trials=args.max_trials, phi0=args.phi0)
        res = sg.search(data).to_dict()
        sg_s = round(time.perf_counter() - t0, 1)
        sg_evals = search_evaluations(q.calls, space.size)
        trial_evals = per_trial(q.calls, space.size, len(res["trials"]))
        t1 = time.perf_counter()
        lcost, lq = recorded(pred, space)
        ln = create_search("lightnas", predictor=lcost, target=target, epochs=args.epochs, seed=args.seed,
                           data_resolution=args.resolution).search(data).to_dict()
        ln_s = round(time.perf_counter() - t1, 1)
        ln_evals = search_evaluations(lq.calls, space.size)
        rand = random_search(pred, target, sg_evals["evaluations"], args.seed)
        rand_ln = random_search(pred, target, ln_evals["evaluations"], args.seed)
        verdicts = {"surgenas": judged(res, both), "lightnas": judged(ln, both),
                    "random_surgenas_budget": {**judged(rand, both), "n": rand["n"], "feasible": rand["feasible"]},
                    "random_lightnas_budget": {**judged(rand_ln, both), "n": rand_ln["n"],
                                               "feasible": rand_ln["feasible"]}}
        row = {"board": board, "percentile": pct, "target_ms": target,
               "surgenas": {"beta": res["beta"], "predicted_ms": res["predicted"],
                            "trials": [{k: t[k] for k in ("beta", "predicted", "error_vs_target", "arch_id",
                                                          "chosen")} for t in res["trials"]],
                            "evaluations": sg_evals, "evaluations_per_trial": trial_evals,
                            **cell_ops(res["arch"]), "search_s": sg_s},
               "lightnas": {"predicted_ms": ln["predicted"], "evaluations": ln_evals, "search_s": ln_s},
               "judged": verdicts}
        rows.append(row)
        s, lj = verdicts["surgenas"], verdicts["lightnas"]
        log(f"{board} p{pct} target {target:.3f} ms: SurgeNAS beta {res['beta']:.3g} after {len(res['trials'])} "
            f"trials, table {s['latency']:.3f} ms ({100 * s['error_vs_target']:+.1f}%) acc {s['accuracy']} regret "
            f"{s['regret']} evals {sg_evals['evaluations']} ({sg_s} s) | LightNAS {lj['latency']:.3f} ms acc "
            f"{lj['accuracy']} evals {ln_evals['evaluations']}")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--help-dir", default=str(ROOT.parent / "shared"), help="HELP folder or the shared folder")
    ap.add_argument("--accuracy-csv", default=str(ROOT.parent / "shared" / "data" / "NB201-accuracy"
                                                  / f"{TASK}.csv"), help="NB201 accuracy CSV (CIFAR-100 test)")
    ap.add_argument("--seeds", default="0,1,2", help="β = 0 searches' seeds (default 0,1,2: Table 3.3's 3; '': none)")
    ap.add_argument("--ablation-seeds", default="0,1,2", help="identity=False searches' seeds ('': none)")
    ap.add_argument("--epochs", type=int, default=6, help="epochs per search (default 6; warm-up round(epochs/3))")
    ap.add_argument("--resolution", type=int, default=8,
                    help="digits resolution (default 8: the digits' own; 16 is ~4x slower and adds no detail)")
    ap.add_argument("--digits", type=int, default=None, help="use the first N digits only (default all 1,797)")
    ap.add_argument("--phi0", type=float, default=2.0, help="identity weight at the start (default 2, the thesis')")
    ap.add_argument("--boards", default="raspi4,pixel3", help="HELP NB201 boards for β > 0 ('' to skip)")
    ap.add_argument("--percentiles", default="5,50",
                    help="targets: percentiles of each board's table (default 5,50: the beta = 0 cells sit near the "
                         "10th-20th, so the 5th asks for beta > 0 and the 50th for beta < 0)")
    ap.add_argument("--max-trials", type=int, default=4, help="SurgeNAS bisection: searches at most (default 4)")
    ap.add_argument("--train-n", type=int, default=900, help="MLP training cells: NB201 indices [0, N)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the β > 0 searches and the predictor")
    ap.add_argument("--quick", action="store_true", help=f"smoke size: {QUICK} (explicit options still win)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    if args.quick:
        ap.set_defaults(**QUICK)
        args = ap.parse_args(argv)
    args.percentiles = [float(p) for p in str(args.percentiles).split(",") if p.strip()]
    torch.set_num_threads(1)
    boards = [b.strip() for b in args.boards.split(",") if b.strip()]

    def log(msg: str) -> None:  # progress on stderr, with --json too
        print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "help.db") as store:
        imported = IMPORTERS["nb201-accuracy"](store, args.accuracy_csv)
        acc_ids, acc = load_accuracy(store, "nb201", TASK, "test_accuracy")
        acc_of = dict(zip(acc_ids, (float(v) for v in acc), strict=True))
        best = int(np.argmax(acc))
        space_stats = {"n": len(acc_of), "best_accuracy": float(acc[best]), "best_arch": acc_ids[best],
                       "mean_accuracy": float(np.mean(acc)), "median_accuracy": float(np.median(acc)),
                       "top_1pct_accuracy": float(np.percentile(acc, 99))}
        beta0 = beta0_runs(args, True, _ints(args.seeds), acc_of, log)
        ablation = beta0_runs(args, False, _ints(args.ablation_seeds), acc_of, log)
        targets: list[dict[str, Any]] = []
        if boards:
            IMPORTERS["help"](store, args.help_dir, spaces=("nb201",), devices=boards)
            for board in boards:
                targets += board_runs(args, store, board, log)
    out = {"quick": args.quick,
           "protocol": {"space": "nb201 (default config: C 16, N 5)", "data": digits_proxy(
                            resolution=args.resolution, n=args.digits)[0].name, "epochs": args.epochs,
                        "warmup_epochs": round(args.epochs / 3), "resolution": args.resolution, "digits": args.digits,
                        "seeds": args.seeds, "ablation_seeds": args.ablation_seeds, "phi0": args.phi0,
                        "accuracy": {"task": TASK, "file": args.accuracy_csv, "metric": "test_accuracy",
                                     "imported": {k: imported[k] for k in ("rows", "added", "skipped")}},
                        "targets": {"boards": boards, "percentiles": args.percentiles, "seed": args.seed,
                                    "predictor": f"mlp on NB201 indices [0, {args.train_n})",
                                    "max_trials": args.max_trials},
                        "budget": "distinct cells the predictor was asked about while searching (QueryLog), all "
                                  "bisection trials for SurgeNAS (the beta = 0 trial included); not counted: the "
                                  "reachable-range check's 15,625 cells",
                        "choices": "SurgeNAS defaults (hwsearch.surgenas): phi0 -> 0 linear over the alpha-steps, "
                                   "tau 1 -> 0.05 geometric, Adam alpha lr 3e-3, batch 64, SGD w lr 0.1 cosine"},
           "thesis": THESIS, "space": space_stats,
           "beta0": {"runs": beta0, "summary": summarise_beta0(beta0)},
           "ablation_no_identity": {"runs": ablation, "summary": summarise_beta0(ablation)},
           "targets": targets, "wall_s": round(time.perf_counter() - t_start, 1)}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print_table(out)
    return 0


def _ints(text: str) -> list[int]:
    return [int(s) for s in str(text).split(",") if s.strip()]


def _f(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def print_table(out: dict[str, Any]) -> None:
    p, sp = out["protocol"], out["space"]
    print(f"SurgeNAS on NB201, {p['data']}, {p['epochs']} epochs (warm-up {p['warmup_epochs']}), phi0 {p['phi0']}; "
          f"accuracy: NB201 {TASK} test")
    print(f"space: best {sp['best_accuracy']:.2f} ({sp['best_arch']}), mean of all {sp['n']} cells "
          f"{sp['mean_accuracy']:.2f}, median {sp['median_accuracy']:.2f}; thesis: SurgeNAS "
          f"{out['thesis']['surgenas']}, DARTS collapse {out['thesis']['darts_collapse']}")
    for key, label in (("beta0", "beta 0, identity on"), ("ablation_no_identity", "beta 0, identity OFF")):
        if not out[key]["runs"]:
            continue
        print(f"{label}:")
        print(f"  {'seed':>4s} {'index':>6s} {'acc':>6s} {'skip':>4s} {'none':>4s} {'live':>4s} {'CE/path':>13s} "
              f"{'proxy':>6s}  ops")
        for r in out[key]["runs"]:
            print(f"  {r['seed']:4d} {r['index']:6d} {_f(r['accuracy'], '6.2f')} {r['skip']:4d} {r['none']:4d} "
                  f"{r['live_edges']:4d} {r['ce_first_epoch_mean']:5.2f} -> {r['ce_last_epoch_mean']:5.2f} "
                  f"{_f(r['proxy_heldout_accuracy'], '6.1f')}  {' '.join(r['ops'])}")
        s = out[key]["summary"]
        if s is None:
            continue
        print(f"  mean accuracy {_f(s['accuracy_mean'], '.2f')} (min {_f(s['accuracy_min'], '.2f')}, max "
              f"{_f(s['accuracy_max'], '.2f')}); skip {s['skip_mean']:.2f}/6 edges, none {s['none_mean']:.2f}/6")
    if out["targets"]:
        print(f"beta > 0 at a target ({p['targets']['predictor']}, SurgeNAS bisection <= "
              f"{p['targets']['max_trials']} searches); budget = distinct predictor queries")
        print(f"  {'board':8s} {'target':>8s} {'method':24s} {'ms':>8s} {'err':>8s} {'acc':>6s} {'regret':>6s} "
              f"{'evals':>6s}  cell")
        names = {"surgenas": "SurgeNAS", "lightnas": "LightNAS", "random_surgenas_budget": "random@SurgeNAS",
                 "random_lightnas_budget": "random@LightNAS"}
        for r in out["targets"]:
            ev = {"surgenas": r["surgenas"]["evaluations"]["evaluations"],
                  "lightnas": r["lightnas"]["evaluations"]["evaluations"]}
            for k, (m, label) in enumerate(names.items()):
                j = r["judged"][m]
                n = j.get("n", ev.get(m))
                head = f"{r['board']:8s} {r['target_ms']:8.3f}" if k == 0 else " " * 17
                print(f"  {head} {label:24s} {_f(j['latency'], '8.3f')} {_f(100 * j['error_vs_target'], '+7.1f')}% "
                      f"{_f(j['accuracy'], '6.2f')} {_f(j['regret'], '6.2f')} {n:6d}  {j['short']}")
            s = r["surgenas"]
            trials = ", ".join(f"beta {t['beta']:.3g} -> {_f(t['predicted'], '.2f')} ms" for t in s["trials"])
            print(f"  {'':17s} SurgeNAS trials: {trials}; distinct cells per trial {s['evaluations_per_trial']}")
    print(f"{out['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
