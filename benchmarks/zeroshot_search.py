"""Zero-shot search on NB201 under HELP's boards, and on local-cpu: TPC-NAS (`zeroshot`) and FTSO (`ftso`) beside
random search, LightNAS and SurgeNAS, judged on the true CIFAR-100 accuracy; best-by-proxy accuracies beside
the survey's Table IV.

(1) Per HELP board (raspi4, pixel3, gold_6226: all 15,625 NB201 cells measured) an MLP trained on the board's
latencies of NB201 indices [0, --train-n) (as the other NB201 benchmarks), and budgets = --percentiles of the
board's table. Per (board, budget): TPC-NAS with each --proxies (fast-path proxies: --iterations children;
one that builds each network, synflow: population 50, batch 8, --slow-iterations), FTSO replace (no predictor:
one cell for every board, judged at each budget, its prediction by the board's MLP) and FTSO with the budget
(the spec §2.8 extension: the strongest ops predicted within it), random search at each one's budget, and
LightNAS / SurgeNAS (digits proxy, --epochs, resolution 8) at --baselines-at budgets. Judged by
`hwsearch.judge` on the board's table: table latency against the budget, accuracy, regret at its own latency
and at the budget (best accuracy <= budget by the table - its accuracy: the distance to the true front).

Budget of predictor queries: the distinct cells the search's predictor was asked about (a recording wrapper,
QueryLog). Not counted: the queries before a search starts (TPC-NAS's speed probe and its predicted-cheapest
F0, which enumerates all 15,625 cells; LightNAS/SurgeNAS's reachable-range check, the same 15,625). Random
search (#params proxy, the same MLP and seed) samples that many distinct cells.

(2) Best-by-proxy: the accuracy of the cell each proxy ranks first, exhaustive over all 15,625 cells for the
fast-path proxies, and over the cells a proxy_correlation.py --scores JSONL holds (ScoreCache) for the others.

(3) TPC-NAS on local-cpu, mbconv-small: --lat-n networks profiled through the agent (store --db, so a rerun
measures only what is missing), an MLP on them (held-out rho on the last 20% first), TPC-NAS at their median
latency, and the --measure-final best candidates measured (hwsearch.zeroshot_result.measure_final, what
`search zeroshot --verify --measure-final K` runs): predicted against measured latency.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightnas_nb201_tables import QueryLog, judged, random_search, search_evaluations
from scipy.stats import spearmanr
from surgenas_nb201 import board_mlp, recorded

from hwsearch import create_search, digits_proxy
from hwsearch.cost import as_predict_model, predict_archs
from hwsearch.judge import load_table
from hwsearch.proxies import create_proxy
from predictors.data import load_accuracy
from predictors.importers import IMPORTERS
from predictors.registry import create_predictor
from profiler.store import Store
from spaces import create_space

ROOT = Path(__file__).resolve().parents[1]
TASK = "cifar100"
FAST = ("params", "flops", "tpc", "tpc-table8")
SURVEY_IV = {"params": 71.11, "flops": 71.11, "synflow": 62.22, "zen": 68.10, "grad_norm": 60.02, "snip": 60.02,
             "grasp": 60.02, "fisher": 60.02, "jacob_cov": 68.89, "ground_truth": 73.51}  # NB201 C100
QUICK = {"boards": "raspi4", "percentiles": "30", "proxies": "tpc,params", "iterations": 3000, "train_n": 200,
         "digits": 200, "epochs": 2, "max_trials": 2, "ftso_iterations": 1, "lat_n": 6, "measure_final": 1,
         "local_iterations": 3000, "baselines_at": "middle"}
QUICK_PROTOCOL = {"warmup_min_runs": 3, "warmup_min_s": 0.05, "min_runs": 5, "max_runs": 30, "target_rel_ci": 0.05}
DEFAULT_DB = ROOT / "benchmarks" / "out" / "zeroshot_search.db"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def distinct_after(q: QueryLog, skip_rows: int) -> int:
    """Distinct cells in the recorded calls after their first `skip_rows` rows (the set-up's queries)."""
    rows = [a for call in q.calls for a in call]
    return len(set(rows[skip_rows:]))


def _judge(res: dict[str, Any], table: Any, wall_s: float, evals: int | None) -> dict[str, Any]:
    j = judged(res, table)
    return {**{k: j[k] for k in ("arch_id", "short", "latency", "error_vs_target", "accuracy", "regret",
                                 "best_at_target", "regret_at_target")},
            "predicted": res.get("predicted"), "within": None if j["latency"] is None else
            bool(j["latency"] <= res["target"]), "wall_s": round(wall_s, 2), "evaluations": evals}


def _random(pred: Any, target: float, n: int, seed: int, table: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    r = random_search(pred, target, max(1, n), seed)
    return {**_judge(r, table, time.perf_counter() - t0, r["n"]), "feasible": r["feasible"]}


def zeroshot_run(pred: Any, space: Any, target: float, proxy: str, args: argparse.Namespace) -> tuple[dict, int]:
    """TPC-NAS at `target` with `proxy`; its result and the distinct cells its loop asked the predictor about."""
    cost, q = recorded(pred, space)
    kw = ({"iterations": args.iterations} if proxy in FAST else
          {"population": 50, "batch": 8, "iterations": args.slow_iterations})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = create_search("zeroshot", predictor=cost, target=target, proxy=proxy, seed=args.seed, **kw).search()
    return res.to_dict(), distinct_after(q, res.init_queries)


def board_runs(args: argparse.Namespace, store: Store, board: str, ftso_cell: dict[str, Any] | None
               ) -> list[dict[str, Any]]:
    """Every method at each budget of `board` (see the module's docstring)."""
    space = create_space("nb201")
    pred, lat, y = board_mlp(store, board, args.train_n, args.seed)
    table = load_table(store, board, "nb201", TASK)
    every = np.array([space.from_index(i) for i in range(space.size)])
    p_all = predict_archs(as_predict_model(pred), space, every)
    t_all = np.array([lat[i] for i in range(space.size)])
    rho = float(spearmanr(p_all[args.train_n:], t_all[args.train_n:])[0])
    mape = float(np.mean(np.abs(p_all[args.train_n:] / t_all[args.train_n:] - 1)))
    log(f"{board}: MLP on [0, {args.train_n}): held-out rho {rho:.3f}, MAPE {100 * mape:.1f}%")
    data = digits_proxy(resolution=args.resolution, seed=args.seed, n=args.digits)
    rows = []
    mid = len(args.percentiles) // 2
    for k, pct in enumerate(args.percentiles):
        target = float(np.percentile(y, pct))
        runs: dict[str, Any] = {}
        for proxy in args.proxies:
            t0 = time.perf_counter()
            res, n = zeroshot_run(pred, space, target, proxy, args)
            wall = time.perf_counter() - t0
            runs[f"zeroshot_{proxy}"] = {**_judge(res, table, wall, n), "proxy_value": res["proxy_value"],
                                         "iterations": res["iterations"]}
            runs[f"random@zeroshot_{proxy}"] = _random(pred, target, n, args.seed, table)
        if ftso_cell is not None:
            cell = {**ftso_cell["result"], "target": target,
                    "predicted": float(predict_archs(as_predict_model(pred), space, [ftso_cell["result"]["arch"]])[0])}
            runs["ftso_replace"] = _judge(cell, table, ftso_cell["wall_s"], 1)
            t0 = time.perf_counter()
            cost, q = recorded(pred, space)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fb = create_search("ftso", predictor=cost, target=target, iterations=args.ftso_iterations,
                                   seed=args.seed).search(data).to_dict()
            n = distinct_after(q, 0)
            runs["ftso_budget"] = {**_judge(fb, table, time.perf_counter() - t0, n), "feasible": fb["feasible"]}
            runs["random@ftso_budget"] = _random(pred, target, n, args.seed, table)
        if args.baselines_at == "all" or (args.baselines_at == "middle" and k == mid):
            for name in ("lightnas", "surgenas"):
                t0 = time.perf_counter()
                cost, q = recorded(pred, space)
                kw = {"max_trials": args.max_trials} if name == "surgenas" else {}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = create_search(name, predictor=cost, target=target, epochs=args.epochs, seed=args.seed,
                                      data_resolution=args.resolution, **kw).search(data).to_dict()
                n = search_evaluations(q.calls, space.size)["evaluations"]
                runs[name] = _judge(r, table, time.perf_counter() - t0, n)
                runs[f"random@{name}"] = _random(pred, target, n, args.seed, table)
        rows.append({"board": board, "percentile": pct, "target_ms": target, "runs": runs})
        log(f"{board} p{pct:g} {target:.2f} ms: " + ", ".join(
            f"{m} {_f(r['latency'], '.2f')} ms {_f(r['accuracy'], '.2f')}%" for m, r in runs.items()
            if not m.startswith("random")))
    return [{"board": board, "predictor": {"kind": "mlp", "train": f"NB201 indices [0, {args.train_n})",
                                           "heldout_spearman": rho, "heldout_mape": mape}, "budgets": rows}]


def summarise(boards: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method over every (board, budget) it ran at: runs, within the budget by the table, mean accuracy,
    regret at the budget, |error| against the budget, queries and wall time. Pure."""
    by: dict[str, list[dict[str, Any]]] = {}
    for b in boards:
        for row in b["budgets"]:
            for m, r in row["runs"].items():
                by.setdefault(m, []).append(r)

    def mean(rs: list[dict[str, Any]], key: str, f: Any = float) -> float | None:
        v = [f(r[key]) for r in rs if r[key] is not None]
        return float(np.mean(v)) if v else None

    return {m: {"runs": len(rs), "within": sum(bool(r["within"]) for r in rs),
                "accuracy_mean": mean(rs, "accuracy"), "regret_at_target_mean": mean(rs, "regret_at_target"),
                "abs_error_mean": mean(rs, "error_vs_target", abs), "evaluations_mean": mean(rs, "evaluations"),
                "wall_s_mean": mean(rs, "wall_s")} for m, rs in by.items()}


def best_by_proxy(acc_of: dict[str, float], scores_paths: list[str]) -> dict[str, Any]:
    """Accuracy of the cell each proxy ranks first: exhaustive for the fast-path proxies, over the cached
    cells for the others (ties: every cell at the top value; the mean is the headline, min/max beside)."""
    space = create_space("nb201")
    archs = [space.from_index(i) for i in range(space.size)]
    aids = [space.arch_id(a) for a in archs]
    out: dict[str, Any] = {}

    def top(name: str, ids: list[str], values: np.ndarray, how: str) -> None:
        ok = np.isfinite(values)
        best = values[ok].max()
        tied = [ids[i] for i in np.flatnonzero(ok & (values == best))]
        accs = [acc_of[a] for a in tied]
        sample_best = max(acc_of[a] for a in ids)
        out[name] = {"accuracy": float(np.mean(accs)), "min": min(accs), "max": max(accs), "tied": len(tied),
                     "cells": int(ok.sum()), "how": how, "best_of_cells": sample_best, "arch_id": tied[0],
                     "survey": SURVEY_IV.get(name)}

    for name in FAST:
        p = create_proxy(name)
        top(name, aids, np.asarray(p.oriented(p.fast_scores(space, archs)), dtype=float), "exhaustive")
    from hwsearch.proxy_eval import ScoreCache

    groups: dict[str, dict[str, float]] = {}
    for path in scores_paths:
        for rec in ScoreCache(path).entries.values():
            if rec.get("value") is None or rec["proxy"] in FAST or rec["arch"] not in acc_of:
                continue
            key = rec["proxy"] + ("" if rec["batch"] is None else f"[{rec['batch']}]")
            groups.setdefault(key, {})[rec["arch"]] = float(rec["value"])
    for key, vals in sorted(groups.items()):
        p = create_proxy(key.split("[")[0])
        ids = list(vals)
        top(key, ids, np.asarray(p.oriented(np.array([vals[a] for a in ids])), dtype=float), "cached cells")
        out[key]["survey"] = SURVEY_IV.get(key.split("[")[0])
    out["ground_truth"] = {"accuracy": max(acc_of.values()), "cells": len(acc_of), "how": "exhaustive",
                           "survey": SURVEY_IV["ground_truth"]}
    return out


def local_cpu(args: argparse.Namespace) -> dict[str, Any]:
    """TPC-NAS on local-cpu, mbconv-small, with its best candidates measured (see the module's docstring)."""
    from hwsearch.zeroshot_result import measure_final
    from profiler.config import resolve_device
    from profiler.session import profile

    space, config = create_space("mbconv-small"), resolve_device("local-cpu")
    protocol = QUICK_PROTOCOL if args.quick else None
    tmp = tempfile.TemporaryDirectory() if args.quick and args.db is None else None
    db = Path(args.db) if args.db else (Path(tmp.name) / "zs.db" if tmp else DEFAULT_DB)
    db.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with Store(db) as store:
        log(f"local-cpu: measuring {args.lat_n} {space.name} networks (store {db})")
        rep = profile(config, space, n=args.lat_n, seed=args.seed, batch=1, store=store, protocol_overrides=protocol)
        if rep.errors or rep.interrupted:
            raise SystemExit(f"error: measuring failed: {rep.errors[:1] or 'interrupted'}")
        lat = store.arch_costs(config.name, space.name, space.config, backend=config.runtime.backend,
                               precision=config.runtime.precision, batch=1)
    measure_s = time.perf_counter() - t0
    ids = [space.arch_id(a) for a in space.sample_unique(args.lat_n, np.random.default_rng(args.seed))]
    y = np.array([lat[i] for i in ids])
    cut = max(2, int(0.8 * len(ids)))
    held = None
    if len(ids) - cut >= 3:
        m = create_predictor("mlp", space=space.name, space_config=space.config, seed=args.seed).fit(ids[:cut], y[:cut])
        held = float(spearmanr(m.predict(ids[cut:]), y[cut:])[0])
    pred = create_predictor("mlp", space=space.name, space_config=space.config, seed=args.seed).fit(ids, y)
    target = float(np.median(y))
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = create_search("zeroshot", predictor=pred, target=round(target, 3), proxy="tpc",
                            iterations=args.local_iterations, seed=args.seed).search()
    search_s = time.perf_counter() - t1
    log(f"local-cpu: TPC-NAS at {target:.3f} ms (median of {len(y)}): predicted {res.predicted:.3f} ms "
        f"({search_s:.1f} s); measuring {args.measure_final} candidate(s)")
    mf = measure_final(res, config.name, db, args.rounds, args.measure_final, log, protocol=protocol)
    if tmp:
        tmp.cleanup()
    tpc = create_proxy("tpc")
    under = [i for i, v in zip(ids, y, strict=True) if v <= res.target]
    scores = tpc.fast_scores(space, [space.parse(i) for i in under]) if under else []
    b = int(np.argmax(scores)) if under else None
    best_measured = None if b is None else {"arch_id": under[b], "tpc": float(scores[b]), "measured_ms": lat[under[b]],
                                            "of": len(under)}
    cands = [{k: c[k] for k in ("arch_id", "proxy_value", "predicted", "measured", "within")}
             for c in mf["measure_final"]["candidates"]]
    first = cands[0]
    return {"space": space.name, "device": config.name, "lat_n": len(ids), "measured_range_ms": [y.min(), y.max()],
            "heldout_spearman": held, "target_ms": round(target, 3), "iterations": res.iterations,
            "search_s": round(search_s, 1), "measure_s": round(measure_s, 1), "rounds": args.rounds,
            "protocol": "quick (5-30 runs)" if protocol else "the device's",
            "searched": {"arch_id": res.arch_id, "predicted_ms": res.predicted, "measured_ms": first["measured"],
                         "predictor_error": first["predicted"] / first["measured"] - 1,
                         "error_vs_target": first["measured"] / res.target - 1},
            "kept": {"arch_id": mf["measure_final"]["chosen"], "measured_ms": mf["verify"]["median"]},
            "within": mf["measure_final"]["within"], "candidates": cands,
            "best_tpc_of_measured_within": best_measured}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--help-dir", default=str(ROOT.parent / "shared"), help="HELP folder or the shared folder")
    ap.add_argument("--accuracy-csv", default=str(ROOT.parent / "shared" / "data" / "NB201-accuracy" / f"{TASK}.csv"))
    ap.add_argument("--boards", default="raspi4,pixel3,gold_6226", help="HELP NB201 boards ('' to skip part 1)")
    ap.add_argument("--percentiles", default="10,30,60", help="budgets: percentiles of each board's table")
    ap.add_argument("--proxies", default="tpc,params,synflow", help="TPC-NAS proxies")
    ap.add_argument("--iterations", type=int, default=480_000, help="TPC-NAS children with a fast-path proxy")
    ap.add_argument("--slow-iterations", type=int, default=500,
                    help="TPC-NAS children with a proxy that builds each network (population 50, batch 8)")
    ap.add_argument("--train-n", type=int, default=900, help="MLP training cells: NB201 indices [0, N)")
    ap.add_argument("--no-ftso", action="store_true", help="skip FTSO")
    ap.add_argument("--ftso-iterations", type=int, default=None, help="FTSO topology iterations (default 1 epoch)")
    ap.add_argument("--baselines-at", choices=["all", "middle", "none"], default="middle",
                    help="LightNAS and SurgeNAS at every budget, the middle one per board (default), or none")
    ap.add_argument("--epochs", type=int, default=3, help="LightNAS/SurgeNAS epochs (default 3)")
    ap.add_argument("--max-trials", type=int, default=3, help="SurgeNAS bisection searches at most")
    ap.add_argument("--resolution", type=int, default=8)
    ap.add_argument("--digits", type=int, default=None, help="first N digits only (default all 1,797)")
    ap.add_argument("--scores", action="append", default=[],
                    help="proxy_correlation.py's per-cell cache (JSONL) for best-by-proxy (repeatable)")
    ap.add_argument("--no-local", action="store_true", help="skip part 3 (local-cpu)")
    ap.add_argument("--lat-n", type=int, default=60, help="local-cpu networks measured for the MLP")
    ap.add_argument("--local-iterations", type=int, default=480_000)
    ap.add_argument("--measure-final", type=int, default=3, help="local-cpu candidates measured (K)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--db", help=f"store of part 3 (default {DEFAULT_DB.relative_to(ROOT)}; --quick: a temp one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help=f"smoke size: {QUICK} (explicit options still win)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        ap.set_defaults(**QUICK)
        args = ap.parse_args(argv)
    args.percentiles = [float(p) for p in str(args.percentiles).split(",") if p.strip()]
    args.proxies = [p.strip() for p in args.proxies.split(",") if p.strip()]
    boards = [b.strip() for b in args.boards.split(",") if b.strip()]
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    out: dict[str, Any] = {"quick": args.quick, "protocol": {
        "predictor": f"mlp on NB201 indices [0, {args.train_n}) of each board's HELP table",
        "budgets": f"percentiles {args.percentiles} of each board's table", "proxies": args.proxies,
        "iterations": {"fast": args.iterations, "slow": args.slow_iterations, "slow_population": 50},
        "ftso": None if args.no_ftso else {"topology_iterations": args.ftso_iterations or "1 epoch",
                                           "replace": "no predictor: one cell, judged at every budget"},
        "baselines": {"at": args.baselines_at, "epochs": args.epochs, "resolution": args.resolution,
                      "digits": args.digits, "surgenas_max_trials": args.max_trials},
        "budget_of_queries": "distinct cells the search's predictor was asked about (QueryLog); not counted: "
                             "TPC-NAS's speed probe and predicted-cheapest F0 (all 15,625 cells), the "
                             "reachable-range check of LightNAS/SurgeNAS (all 15,625); random = #params proxy",
        "accuracy": f"NB201 {TASK} test accuracy"}}
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "help.db") as store:
        IMPORTERS["nb201-accuracy"](store, args.accuracy_csv)
        acc_ids, acc = load_accuracy(store, "nb201", TASK, "test_accuracy")
        acc_of = dict(zip(acc_ids, (float(v) for v in acc), strict=True))
        ftso_cell = None
        if boards and not args.no_ftso:
            t0 = time.perf_counter()
            r = create_search("ftso", iterations=args.ftso_iterations, seed=args.seed).search(
                digits_proxy(resolution=args.resolution, seed=args.seed, n=args.digits)).to_dict()
            ftso_cell = {"result": r, "wall_s": time.perf_counter() - t0}
        out["boards"] = []
        if boards:
            IMPORTERS["help"](store, args.help_dir, spaces=("nb201",), devices=boards)
            for board in boards:
                out["boards"] += board_runs(args, store, board, ftso_cell)
        out["summary"] = summarise(out["boards"])
        out["best_by_proxy"] = best_by_proxy(acc_of, args.scores)
    out["nb201_s"] = round(time.perf_counter() - t_start, 1)
    out["local_cpu"] = None if args.no_local else local_cpu(args)
    out["wall_s"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(out, indent=2, default=float) if args.json else "\n".join(table_lines(out)))
    return 0


def _f(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def table_lines(out: dict[str, Any]) -> list[str]:
    p = out["protocol"]
    lines = [f"zero-shot search on NB201 ({p['accuracy']}); {p['predictor']}; {p['budgets']}",
             f"budget of queries: {p['budget_of_queries']}"]
    for b in out["boards"]:
        pr = b["predictor"]
        lines.append(f"{b['board']}: MLP held-out rho {pr['heldout_spearman']:.3f}, MAPE "
                     f"{100 * pr['heldout_mape']:.0f}%")
        lines.append(f"  {'budget':>7s} {'method':24s} {'pred':>7s} {'table':>7s} {'vs bud':>7s} {'acc':>6s} "
                     f"{'best<=b':>7s} {'regret':>6s} {'reg@own':>7s} {'queries':>7s} {'wall s':>6s}  cell")
        for row in b["budgets"]:
            for k, (m, r) in enumerate(row["runs"].items()):
                head = f"{row['target_ms']:7.2f}" if k == 0 else " " * 7
                lines.append(f"  {head} {m:24s} {_f(r['predicted'], '7.2f')} {_f(r['latency'], '7.2f')} "
                             f"{_f(None if r['error_vs_target'] is None else 100 * r['error_vs_target'], '+6.1f')}% "
                             f"{_f(r['accuracy'], '6.2f')} {_f(r['best_at_target'], '7.2f')} "
                             f"{_f(r['regret_at_target'], '6.2f')} {_f(r['regret'], '7.2f')} "
                             f"{r['evaluations'] if r['evaluations'] is not None else '':>7} {r['wall_s']:6.1f}  "
                             f"{r['short']}")
    if out["boards"]:
        lines.append("regret = best accuracy within the budget by the table - its accuracy (negative: over the budget, "
                     "more accurate than any cell within it); reg@own = the same at its own table latency")
        lines.append("summary over the (board, budget) pairs (means; within: table latency <= budget)")
        lines.append(f"  {'method':24s} {'runs':>4s} {'within':>6s} {'acc':>6s} {'regret':>6s} {'|err|':>6s} "
                     f"{'queries':>7s} {'wall s':>6s}")
        for m, r in out["summary"].items():
            lines.append(f"  {m:24s} {r['runs']:4d} {r['within']:6d} {_f(r['accuracy_mean'], '6.2f')} "
                         f"{_f(r['regret_at_target_mean'], '6.2f')} {_f(100 * r['abs_error_mean'], '5.0f')}% "
                         f"{_f(r['evaluations_mean'], '7.0f')} {_f(r['wall_s_mean'], '6.1f')}")
    lines.append("best-by-proxy accuracy (NB201 CIFAR-100; ties: mean [min, max] of the tied cells)")
    lines.append(f"  {'proxy':22s} {'ours':>6s} {'min':>6s} {'max':>6s} {'tied':>5s} {'cells':>6s} "
                 f"{'best of cells':>13s} {'survey IV':>9s}")
    for name, r in out["best_by_proxy"].items():
        lines.append(f"  {name:22s} {r['accuracy']:6.2f} {_f(r.get('min'), '6.2f')} {_f(r.get('max'), '6.2f')} "
                     f"{r.get('tied', ''):>5} {r['cells']:6d} {_f(r.get('best_of_cells'), '13.2f')} "
                     f"{_f(r['survey'], '9.2f')}")
    lc = out["local_cpu"]
    if lc:
        s = lc["searched"]
        lo, hi = lc["measured_range_ms"]
        lines.append(f"local-cpu {lc['space']}: MLP on {lc['lat_n']} measured networks ({lo:.2f}-{hi:.2f} ms, "
                     f"held-out rho {_f(lc['heldout_spearman'], '.2f')}); "
                     f"TPC-NAS at {lc['target_ms']} ms (their median), {lc['iterations']:,} iterations, "
                     f"{lc['search_s']} s")
        lines.append(f"  searched: predicted {s['predicted_ms']:.3f} ms, measured {s['measured_ms']:.3f} ms "
                     f"(predictor {100 * s['predictor_error']:+.1f}%, {100 * s['error_vs_target']:+.1f}% vs "
                     f"target); {lc['within']}/{len(lc['candidates'])} candidates within; kept "
                     f"{lc['kept']['measured_ms']:.3f} ms")
        bm = lc["best_tpc_of_measured_within"]
        if bm:
            lines.append(f"  of the {bm['of']} measured networks within the target, the highest TPC: {bm['tpc']:.1f} "
                         f"({bm['measured_ms']:.3f} ms) {bm['arch_id']}")
        for c in lc["candidates"]:
            lines.append(f"    proxy {c['proxy_value']:.1f} predicted {c['predicted']:.3f} measured "
                         f"{c['measured']:.3f} ms  {c['arch_id']}")
    lines.append(f"{out['wall_s']:.0f} s")
    return lines


if __name__ == "__main__":
    sys.exit(main())
