"""LightNAS against measured NB201 latency tables, judged on both axes: does the searched network land on the
target, and how accurate is it on CIFAR-100 against the best the space offers at that latency?

HELP's NB201 tables (all 15,625 cells measured per device) stand in for real boards, and NAS-Bench-201's
CIFAR-100 test accuracy of every cell (`NB201-accuracy/cifar100.csv`) is the truth on the other axis. Both are
imported into a Store first, so the predictor trains through the same path (`load_xy`) as data measured by the
agent and the judging reads the accuracy table as `edgeprof report search` does (`hwsearch.judge`). Per device:
an MLP (LightNAS's predictor) is trained on the archs at NB201 indices [0, 900); LightNAS searches on the digits
proxy (scikit-learn's 8x8 digits upsampled to 32x32: a proxy task, not CIFAR); the found cell's latency is
looked up in the device's table. Targets: raspi4 at 3 ms and 47 ms (thesis Table 4.3) and, for the other
devices, the 25th, 50th and 75th percentile of the device's latencies. Latency: |table - target| / target per
run, target within +-5% in every run, mean within +-2%. Accuracy: the cell's CIFAR-100 test accuracy, its
regret (best accuracy at <= its table latency - its accuracy, in points) and the regret at the target (best
accuracy at <= target - its accuracy).

Open loop is the searched cell as it is; closed loop (`hwsearch.close_loop`) "measures" it by a table lookup
and, while it misses the target by more than --tolerance, measures neighbours whose predictions the
measured/predicted ratios correct, at most --measurements lookups in all. The 900 training cells count as
measured networks the loop knows. The loop judges candidates with a GNN fitted on the same 900 cells
(`--loop-predictor`).

Random search (`hwsearch.random_search`, the #params proxy, the same MLP, target and seed) runs beside every
search at the same budget of predictor evaluations: the distinct cells LightNAS's predictor was asked about
while it searched (every α-step's sampled path and argmax path, the argmax after each epoch, refine's
candidates), counted by a recording wrapper around the predictor. Not counted: the reachable-range check before
the search, which on NB201 predicts all 15,625 cells to refuse an unreachable target and chooses nothing; random
at that count (--random-large, default all 15,625 cells: the predictor's best #params under the target) is the
second random column. The digits proxy is checked per run (`hwsearch.proxy_check`): the trained supernet's own
α-split accuracy of the found cell and its 24 one-edge neighbours, ranked against their CIFAR-100 accuracy.

The open-loop remedy (issue 16; --remedy-members 0 skips it): an ensemble of --remedy-members MLPs (kind
mlp-ensemble, bootstrap resamples of the same 900 cells) drives a second LightNAS search per target (same data,
epochs, seed), whose refine scores candidates by α log-probability − κ·disagreement over the archs up to
--remedy-radius edges away (κ = --remedy-kappa). Three open-loop cells come from that one trajectory:
"ensemble" (refine's thesis pick: κ 0, radius 1), "remedy" (κ, radius) and "remedy + trust" (κ and a trust region
of μ = --remedy-trust nats per edge between a candidate and the nearest of the 900 training cells). "trust" is the
plain search's trajectory with the trust region alone (the MLP, μ, radius), "radius-2" the same without μ (what the
wider neighbourhood alone does). All judged like the plain search.

(Over 450 lines: one run's columns are the plain search, its closed loop, random at two budgets, the proxy check
and five remedy picks, judged in one place so they share the table and the trajectories; split, each would
re-fit the MLP and re-run the search.)
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
from torch import nn

import predictors.ensemble  # noqa: F401  (registers kind mlp-ensemble)
from hwsearch import CostModel, as_cost_model, close_loop, create_search, digits_proxy, target_errors
from hwsearch.cost import refine_arch
from hwsearch.judge import judge, load_table
from hwsearch.proxy_check import blind_regret, proxy_check
from hwsearch.random_search import InfeasibleTargetWarning
from predictors.data import load_xy
from predictors.importers import IMPORTERS
from predictors.registry import create_predictor
from profiler.store import Store
from spaces import create_space

ROOT = Path(__file__).resolve().parents[1]
DEVICES = {"raspi4": [3.0, 47.0], "pixel3": None, "eyeriss": None, "gold_6226": None}
PERCENTILES = (25, 50, 75)
TASK = "cifar100"
QUICK = {"devices": "raspi4", "train_n": 200, "epochs": 2, "digits": 300, "targets": 1, "measurements": 2,
         "loop_predictor": "same", "threads": 1, "proxy_calibration": 16, "remedy_members": 2}
METHODS = ("lightnas_open", "radius2_open", "trust_open", "ensemble_open", "remedy_open", "remedy_trust_open",
           "lightnas_closed", "random", "random_large")
LABELS = {"lightnas_open": "LightNAS open loop", "radius2_open": "MLP, radius-2 pick",
          "trust_open": "MLP, trust pick",
          "ensemble_open": "ensemble, thesis pick",
          "remedy_open": "ensemble, κ pick", "remedy_trust_open": "ensemble, κ+trust pick",
          "lightnas_closed": "LightNAS closed loop",
          "random": "random, same budget", "random_large": "random, large budget"}


class QueryLog(nn.Module):
    """A cost predictor that records every arch it is asked about (one list of rows per call): how many
    networks a search evaluated, counted from what it did rather than from what its log shows."""

    def __init__(self, inner: nn.Module, n_layers: int, n_ops: int) -> None:
        super().__init__()
        self.inner, self.shape = inner, (n_layers, n_ops)
        self.calls: list[list[tuple[int, ...]]] = []

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        codes = onehot.detach().reshape(len(onehot), *self.shape).argmax(-1)
        self.calls.append([tuple(row) for row in codes.cpu().tolist()])
        return self.inner(onehot)


class EnsembleQueryLog(QueryLog):
    """QueryLog around an ensemble's module, passing its members' predictions through (refine's κ pick)."""

    def member_predictions(self, onehot: torch.Tensor) -> torch.Tensor:
        return self.inner.member_predictions(onehot)


def picked(res: dict[str, Any], arch: tuple[int, ...], info: dict[str, Any], space: Any) -> dict[str, Any]:
    """A result JSON with refine's other pick from the same trajectory in place of the search's own."""
    return {**res, "arch": list(arch), "arch_id": space.arch_id(arch),
            "predicted": info.get("after_predicted", info["before_predicted"])}


def remedy_search(ens: Any, target: float, args: argparse.Namespace, data: Any, space: Any,
                  known: np.ndarray) -> dict[str, Any]:
    """The remedy's LightNAS search (the ensemble's mean drives α and λ, refine with κ) and, from the same
    trajectory, refine's thesis pick (κ 0, radius 1): their result JSONs and what refine did."""
    cost = as_cost_model(ens)
    q = EnsembleQueryLog(cost.module, space.n_layers, space.n_ops)
    wrapped = CostModel(q, cost.space, cost.space_config, cost.metric, cost.device_name, cost.source)
    t0 = time.perf_counter()
    search = create_search("lightnas", predictor=wrapped, target=target, epochs=args.epochs, seed=args.seed,
                           refine_kappa=args.remedy_kappa, refine_radius=args.remedy_radius, refine_trust=0.0)
    res = search.search(data).to_dict()
    derived = tuple(res["derived_arch"])
    plain_arch, plain_info = refine_arch(derived, search.alpha_, wrapped, space, target, search.refine_tolerance)
    trust_arch, trust_info = refine_arch(derived, search.alpha_, wrapped, space, target, search.refine_tolerance,
                                         kappa=args.remedy_kappa, radius=args.remedy_radius, mu=args.remedy_trust,
                                         known=known)
    return {"remedy": res, "ensemble": picked(res, plain_arch, plain_info, space),
            "remedy_trust": picked(res, trust_arch, trust_info, space), "search_s": round(time.perf_counter() - t0, 1),
            "trust_from_known": trust_info.get("after_from_known"),
            "refine": {k: res["refine"].get(k) for k in ("changed", "within_tolerance", "candidates",
                                                        "before_disagreement", "after_disagreement",
                                                        "log_prob_before", "log_prob_after")},
            "disagreement": res["disagreement"], "thesis_pick_disagreement": plain_info.get("after_disagreement")}


def search_evaluations(calls: list[list[tuple[int, ...]]], space_size: int) -> dict[str, Any]:
    """The distinct archs a LightNAS run's predictor evaluated while searching: its calls after the first ones,
    which enumerate the space (`space_size` rows) for the reachable range. Pure."""
    seen, k = 0, 0
    while k < len(calls) and seen < space_size:
        seen, k = seen + len(calls[k]), k + 1
    if seen != space_size:
        raise RuntimeError(f"expected the search to start by predicting all {space_size} archs (the reachable "
                           f"range), its first {k} calls predicted {seen}")
    rest = calls[k:]
    return {"evaluations": len({a for call in rest for a in call}), "calls": len(rest),
            "rows": sum(len(c) for c in rest), "reachable_range_rows": seen}


def judged(result: dict[str, Any], table: Any) -> dict[str, Any]:
    """The judge's figures of one result that the table and the summary use."""
    j = judge(result, table)
    keys = ("arch_id", "short", "latency", "error_vs_target", "accuracy", "best_at_its_cost", "regret",
            "best_at_target", "regret_at_target", "percentile_under_target", "notes")
    return {k: j[k] for k in keys}


def _mean(values: list[Any]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: latency error against the target (as before: all within 5%, mean within 2%), mean accuracy,
    regret and regret at target; the proxy check's means; the blind (latency-only) regret's mean."""
    out: dict[str, Any] = {}
    for m in METHODS:
        js = [r["judged"][m] for r in runs if m in r["judged"]]
        if not js:
            continue
        out[m] = {**target_errors([j["error_vs_target"] for j in js], 0.05, 0.02),
                  "accuracy_mean": _mean([j["accuracy"] for j in js]),
                  "regret_mean": _mean([j["regret"] for j in js]),
                  "regret_max": max((j["regret"] for j in js if j["regret"] is not None), default=None),
                  "regret_at_target_mean": _mean([j["regret_at_target"] for j in js])}
        if m.startswith("random"):  # runs where some sampled cell was predicted within the target
            out[m]["feasible"] = sum(bool(j["feasible"]) for j in js)
    rem = [r["remedy"] for r in runs if r.get("remedy")]
    if rem:
        out["remedy_disagreement_mean"] = _mean([x["disagreement"] for x in rem])
        out["ensemble_disagreement_mean"] = _mean([x["thesis_pick_disagreement"] for x in rem])
    out["closed_loop_measurements_mean"] = float(np.mean([r["closed_loop"]["measurements"] for r in runs]))
    out["evaluations_mean"] = float(np.mean([r["evaluations"]["evaluations"] for r in runs]))
    out["blind_regret_mean"] = _mean([r["blind_regret"]["mean"] for r in runs])
    checks = [r["proxy"] for r in runs if r.get("proxy")]
    if checks:
        rhos = [c["spearman"] for c in checks]
        out["proxy"] = {"spearman_mean": _mean(rhos), "runs": len(checks),
                        "spearman_defined": sum(x is not None for x in rhos),
                        "pick_regret_mean": _mean([c["pick"]["regret"] for c in checks]),
                        "pick_in_budget_regret_mean": _mean([(c["pick_in_budget"] or {}).get("regret")
                                                             for c in checks]),
                        "found_proxy_rank_mean": _mean([c["found_proxy_rank"] for c in checks]),
                        "found_true_rank_mean": _mean([c["found_true_rank"] for c in checks]),
                        **local_gains(runs)}
    # keep the old keys (open_loop / closed_loop) for readers of earlier JSON
    out["open_loop"], out["closed_loop"] = out["lightnas_open"], out["lightnas_closed"]
    return out


def local_gains(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """How much of the open-loop regret one edge could recover, per the proxy check's cells at <= the found
    cell's latency: the truly best of them minus the found cell (what a true ranking of the neighbours gains)
    and the supernet's pick minus the found cell (what the digits ranking gains; negative: it loses), means
    over the runs, and the first as a share of the summed regret. Pure."""
    truth, proxy, regrets = [], [], []
    for r in runs:
        c = r.get("proxy")
        ib = (c or {}).get("pick_in_budget") or {}
        if not ib.get("n") or r["judged"]["lightnas_open"]["regret"] is None:
            continue
        found = c["true_accuracy"][0]
        truth.append(ib["best_accuracy"] - found)
        proxy.append(ib["proxy_pick_accuracy"] - found)
        regrets.append(r["judged"]["lightnas_open"]["regret"])
    share = float(np.sum(truth) / np.sum(regrets)) if regrets and np.sum(regrets) > 0 else None
    return {"neighbour_gain_truth_mean": _mean(truth), "neighbour_gain_proxy_mean": _mean(proxy),
            "regret_share_recoverable_by_one_edge": share}


def random_search(pred: Any, target: float, n: int, seed: int) -> dict[str, Any]:
    """Random search's result (JSON), the infeasible-target warning kept in it rather than printed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InfeasibleTargetWarning)
        return create_search("random", predictor=pred, target=target, n=n, seed=seed).search().to_dict()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--help-dir", default=str(ROOT.parent / "shared"), help="HELP folder or the shared folder")
    ap.add_argument("--accuracy-csv", default=str(ROOT.parent / "shared" / "data" / "NB201-accuracy"
                                                  / f"{TASK}.csv"),
                    help="NB201 accuracy CSV (index,arch,test_accuracy; default: the shared CIFAR-100 file)")
    ap.add_argument("--devices", default=",".join(DEVICES),
                    help=f"comma-separated HELP NB201 devices (default {','.join(DEVICES)})")
    ap.add_argument("--predictor", default="mlp", help="predictor kind (mlp, gnn, gcn; default mlp)")
    ap.add_argument("--train-n", type=int, default=900)
    ap.add_argument("--epochs", type=int, default=10, help="LightNAS epochs (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on 2 shared cores the proxy check and the fits took "
                         "3-4x longer on 2 threads waiting for each other)")
    ap.add_argument("--measurements", type=int, default=4,
                    help="closed loop: networks measured per run, the found one included (default 4)")
    ap.add_argument("--tolerance", type=float, default=0.02, help="closed loop: accepted |error| (default 0.02)")
    ap.add_argument("--loop-predictor", default="gnn",
                    help="closed loop: predictor kind judging the candidates, fitted on the same cells "
                         "(default gnn: the most accurate per cell; 'same' reuses the search's)")
    ap.add_argument("--random-large", type=int, default=None,
                    help="random search's larger budget (default: every cell of the space, 15,625)")
    ap.add_argument("--proxy-calibration", type=int, default=256,
                    help="proxy check: w-split images that re-estimate batch norm per path (default 256; 0: "
                         "no proxy check)")
    ap.add_argument("--targets", type=int, default=None, help="the first N targets per device only (default: all)")
    ap.add_argument("--digits", type=int, default=None, help="use the first N digits only (default: all 1,797)")
    ap.add_argument("--remedy-members", type=int, default=5,
                    help="open-loop remedy: MLPs in the ensemble (default 5; 0: no remedy search)")
    ap.add_argument("--remedy-kappa", type=float, default=50.0,
                    help="open-loop remedy: refine's penalty κ on the ensemble's disagreement (default 50)")
    ap.add_argument("--remedy-trust", type=float, default=5.0,
                    help="open-loop remedy: trust region μ, nats per edge from the nearest training cell (default 5)")
    ap.add_argument("--remedy-radius", type=int, default=2, choices=(1, 2),
                    help="open-loop remedy: refine's candidates, layers from the argmax (default 2)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke size: {QUICK} (explicit options still win)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    if args.quick:
        ap.set_defaults(**QUICK)
        args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    space = create_space("nb201")
    large = space.size if args.random_large is None else min(args.random_large, space.size)
    train_data = digits_proxy(resolution=space.input_shape()[-1], seed=args.seed, n=args.digits)

    def log(msg: str) -> None:  # progress on stderr, with --json too: a full run takes most of an hour
        print(msg, file=sys.stderr, flush=True)

    runs = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "help.db") as store:
        IMPORTERS["help"](store, args.help_dir, spaces=("nb201",), devices=devices)
        imported = IMPORTERS["nb201-accuracy"](store, args.accuracy_csv)
        for device in devices:
            ids, y = load_xy(store, device, "nb201")
            table = {space.index(space.parse(a)): v for a, v in zip(ids, y, strict=True)}
            both = load_table(store, device, "nb201", TASK)  # latency and CIFAR-100 accuracy per cell
            train_ids = [space.arch_id(space.from_index(i)) for i in range(args.train_n)]
            train_y = np.array([table[i] for i in range(args.train_n)])
            pred = create_predictor(args.predictor, space="nb201", seed=args.seed).fit(train_ids, train_y)
            ens = create_predictor("mlp-ensemble", space="nb201", seed=args.seed, members=args.remedy_members).fit(
                train_ids, train_y) if args.remedy_members else None
            loop_pred = pred if args.loop_predictor in ("same", args.predictor) else \
                create_predictor(args.loop_predictor, space="nb201", seed=args.seed).fit(train_ids, train_y)
            targets = (DEVICES.get(device) or [float(np.percentile(y, p)) for p in PERCENTILES])[:args.targets]
            for target in targets:
                t0 = time.perf_counter()
                cost = as_cost_model(pred)
                queries = QueryLog(cost.module, space.n_layers, space.n_ops)
                recorded = CostModel(queries, cost.space, cost.space_config, cost.metric, cost.device_name,
                                     cost.source)
                search = create_search("lightnas", predictor=recorded, target=target, epochs=args.epochs,
                                       seed=args.seed)
                res = search.search(train_data)
                search_s = round(time.perf_counter() - t0, 1)
                evals = search_evaluations(queries.calls, space.size)
                measured = float(table[space.index(tuple(res.arch))])
                gap = measured / target - 1.0
                loop = close_loop(res.arch, as_cost_model(loop_pred), space, target,
                                  lambda a, t=table: float(t[space.index(a)]), alpha=search.alpha_,
                                  tolerance=args.tolerance, max_measurements=args.measurements,
                                  known=[(space.from_index(i), float(table[i])) for i in range(args.train_n)])
                found = res.to_dict()
                closed = {**found, "search": "lightnas+closed-loop", "arch": list(loop.arch),
                          "arch_id": space.arch_id(loop.arch)}
                rand = random_search(pred, target, evals["evaluations"], args.seed)
                rand_large = random_search(pred, target, large, args.seed)
                verdicts = {"lightnas_open": judged(found, both), "lightnas_closed": judged(closed, both),
                            "random": {**judged(rand, both), "n": rand["n"], "feasible": rand["feasible"]},
                            "random_large": {**judged(rand_large, both), "n": rand_large["n"],
                                             "feasible": rand_large["feasible"]}}
                known = np.array([space.from_index(i) for i in range(args.train_n)], dtype=np.int64)
                t_arch, t_info = refine_arch(tuple(res.derived_arch), search.alpha_, recorded, space, target,
                                             search.refine_tolerance, radius=args.remedy_radius, mu=args.remedy_trust,
                                             known=known)
                verdicts["trust_open"] = judged(picked(found, t_arch, t_info, space), both)
                r_arch, r_info = refine_arch(tuple(res.derived_arch), search.alpha_, recorded, space, target,
                                             search.refine_tolerance, radius=args.remedy_radius)
                verdicts["radius2_open"] = judged(picked(found, r_arch, r_info, space), both)
                remedy = remedy_search(ens, target, args, train_data, space, known) if ens is not None else None
                if remedy is not None:
                    verdicts["ensemble_open"] = judged(remedy["ensemble"], both)
                    verdicts["remedy_open"] = judged(remedy["remedy"], both)
                    verdicts["remedy_trust_open"] = judged(remedy["remedy_trust"], both)
                    remedy = {k: v for k, v in remedy.items() if k not in ("remedy", "ensemble", "remedy_trust")} | {
                        "arch_id": remedy["remedy"]["arch_id"], "predicted_ms": remedy["remedy"]["predicted"],
                        "ensemble_arch_id": remedy["ensemble"]["arch_id"],
                        "ensemble_predicted_ms": remedy["ensemble"]["predicted"]}
                check, t1 = None, time.perf_counter()
                if args.proxy_calibration > 0:
                    check = proxy_check(search.supernet_, space, res.arch, train_data[1], both.accuracy_of,
                                        calibration_data=train_data[0], calibration_n=args.proxy_calibration,
                                        cost=both.cost_of, budget=both.cost_of[res.arch_id]).to_dict()
                runs.append({"device": device, "target_ms": round(target, 4), "arch_id": res.arch_id,
                             "predicted_ms": res.predicted, "measured_ms": measured, "error": gap,
                             "predictor_error": res.predicted / measured - 1.0,
                             "derived_predicted_ms": res.derived_predicted,
                             "refined": res.refine.get("changed", False),
                             "final_lambda": res.lambda_history[-1], "search_s": search_s,
                             "closed_loop": loop.to_dict(), "evaluations": evals, "judged": verdicts,
                             "blind_regret": blind_regret(both.cost, both.accuracy, target, 0.05),
                             "proxy": check, "proxy_check_s": round(time.perf_counter() - t1, 1),
                             "remedy": remedy, "trust_from_known": t_info.get("after_from_known")})
                o, c, r = (verdicts[m] for m in ("lightnas_open", "lightnas_closed", "random"))
                log(f"{device:12s} target {target:8.3f} ms  error {100 * gap:+6.2f}% acc {_f(o['accuracy'], '.2f')} "
                    f"regret {_f(o['regret'], '.2f')} | closed {100 * loop.error:+6.2f}% acc "
                    f"{_f(c['accuracy'], '.2f')} | random@{evals['evaluations']} {100 * r['error_vs_target']:+6.2f}% "
                    f"acc {_f(r['accuracy'], '.2f')}"
                    + (f" | proxy rho {_f(check['spearman'], '+.2f')}" if check else "")
                    + f" | trust {100 * verdicts['trust_open']['error_vs_target']:+6.2f}%"
                    + (f" | ensemble {100 * verdicts['ensemble_open']['error_vs_target']:+6.2f}% remedy "
                       f"{100 * verdicts['remedy_open']['error_vs_target']:+6.2f}% +trust "
                       f"{100 * verdicts['remedy_trust_open']['error_vs_target']:+6.2f}% acc "
                       f"{_f(verdicts['remedy_open']['accuracy'], '.2f')}" if remedy else "")
                    + f"  (search {search_s} s, all {round(time.perf_counter() - t0, 1)} s)")
    summary = summarise(runs)
    out = {"quick": args.quick,
           "protocol": {"train": f"NB201 indices [0, {args.train_n}) of each table", "predictor": args.predictor,
                        "data": train_data[0].name, "epochs": args.epochs, "seed": args.seed,
                        "closed_loop": {"max_measurements": args.measurements, "tolerance": args.tolerance,
                                        "predictor": args.loop_predictor},
                        "accuracy": {"task": TASK, "file": args.accuracy_csv, "metric": "test_accuracy",
                                     "imported": {k: imported[k] for k in ("rows", "added", "skipped", "replaced")},
                                     "regret": "best accuracy at <= the cell's table latency - its accuracy "
                                               "(points); at target: best accuracy at <= target - its accuracy"},
                        "random": {"proxy": "params", "predictor": args.predictor, "seed": args.seed,
                                   "budget": "the distinct cells LightNAS's predictor evaluated while searching "
                                             "(each alpha-step's sampled and argmax paths, the argmax after each "
                                             "epoch, refine's candidates); not counted: the reachable-range "
                                             f"check's {space.size} cells, which choose nothing",
                                   "large_budget": large},
                        "proxy_check": {"cells": "the open-loop cell and its one-edge neighbours",
                                        "proxy": "the trained supernet's accuracy on the digits alpha-split, batch "
                                                 "norm re-estimated per path on w-split images",
                                        "calibration_images": args.proxy_calibration,
                                        "in_budget": "cells at <= the found cell's table latency"},
                        "remedy": None if not args.remedy_members else {
                            "predictor": f"mlp-ensemble, {args.remedy_members} bootstrap members, same cells",
                            "kappa": args.remedy_kappa, "radius": args.remedy_radius, "trust": args.remedy_trust,
                            "ensemble_open": "the remedy search's trajectory, refine's thesis pick (kappa 0, "
                                             "radius 1)"},
                        "blind_regret": "mean regret of the cells within 5% of the target: what hitting the "
                                        "latency alone buys"},
           "runs": runs, "summary": summary, "wall_s": round(time.perf_counter() - t_start, 1)}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print_table(out, space)
    return 0


def _f(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def print_table(out: dict[str, Any], space: Any) -> None:
    """The runs (one line per method), then the summary lines."""
    p, runs, s = out["protocol"], out["runs"], out["summary"]
    print(f"LightNAS on HELP NB201 tables ({p['predictor']} on {p['train']}, {p['data']}, {p['epochs']} epochs); "
          f"accuracy: NB201 {TASK} test accuracy; random: #params proxy, same predictor, target and seed")
    print(f"{'device':10s} {'target':>8s} {'method':22s} {'ms':>8s} {'err':>8s} {'acc':>6s} {'regret':>6s} "
          f"{'best@T':>6s} {'reg@T':>6s}  cell")
    methods = [m for m in METHODS if all(m in r["judged"] for r in runs)]
    for r in runs:
        for k, m in enumerate(methods):
            j = r["judged"][m]
            name = LABELS[m] if "n" not in j else f"random@{j['n']}" + ("" if j["feasible"] else " (none<=T)")
            head = f"{r['device']:10s} {r['target_ms']:8.3f}" if k == 0 else " " * 19
            print(f"{head} {name:22s} {_f(j['latency'], '8.3f')} {_f(100 * j['error_vs_target'], '+7.2f')}% "
                  f"{_f(j['accuracy'], '6.2f')} {_f(j['regret'], '6.2f')} {_f(j['best_at_target'], '6.2f')} "
                  f"{_f(j['regret_at_target'], '6.2f')}  {j['short']}")
        c, b = r["proxy"], r["blind_regret"]
        line = f"{'':19s} latency alone (cells within 5% of target, n={b['n']}): mean regret {_f(b['mean'], '.2f')}"
        if c:
            ib = c["pick_in_budget"] or {}
            line += (f"; proxy rho {_f(c['spearman'], '+.2f')} over {len(c['cells'])} cells, found cell ranked "
                     f"{c['found_proxy_rank']} by the supernet and {c['found_true_rank']} truly; the supernet's "
                     f"pick at <= its latency loses {_f(ib.get('regret'), '.2f')} pts to the best there")
        print(line)
    for m in methods:
        x = s[m]
        print(f"{LABELS[m]:21s}: |err| mean {100 * x['mean_abs_error']:.2f}%, max {100 * x['max_abs_error']:.2f}%, "
              f"{x['within']}/{len(runs)} within 5% ({'met' if x['target_met'] else 'NOT met'}); accuracy mean "
              f"{_f(x['accuracy_mean'], '.2f')}, regret mean {_f(x['regret_mean'], '.2f')} (max "
              f"{_f(x['regret_max'], '.2f')}), regret at target mean {_f(x['regret_at_target_mean'], '.2f')}"
              + (f"; {x['feasible']}/{len(runs)} runs had a sampled cell predicted <= target" if "feasible" in x
                 else ""))
    print(f"budget: LightNAS's predictor evaluated {s['evaluations_mean']:.0f} distinct cells per run on average "
          f"(random at the same count); closed loop measured {s['closed_loop_measurements_mean']:.1f} networks; "
          f"latency alone (a cell within 5% of target) regrets {_f(s['blind_regret_mean'], '.2f')} pts on average")
    if "proxy" in s:
        x = s["proxy"]
        print(f"digits proxy vs {TASK}: Spearman rho mean {_f(x['spearman_mean'], '+.3f')} ({x['spearman_defined']}/"
              f"{x['runs']} defined) over the found cell and its neighbours; picking by the supernet loses "
              f"{_f(x['pick_regret_mean'], '.2f')} pts (all neighbours) and "
              f"{_f(x['pick_in_budget_regret_mean'], '.2f')} pts (at <= the found latency) to picking by the "
              f"truth; found cell's rank mean "
              f"{_f(x['found_proxy_rank_mean'], '.1f')} by the supernet, {_f(x['found_true_rank_mean'], '.1f')} truly")
        share = x["regret_share_recoverable_by_one_edge"]
        print(f"one edge away at <= the found latency: the truly best neighbour gains "
              f"{_f(x['neighbour_gain_truth_mean'], '+.2f')} pts on average ("
              f"{_f(None if share is None else 100 * share, '.0f')}% of the open-loop regret), the supernet's "
              f"pick {_f(x['neighbour_gain_proxy_mean'], '+.2f')} pts")
    if "remedy_disagreement_mean" in s:
        print(f"ensemble disagreement (std/mean) of the pick: thesis pick "
              f"{_f(s['ensemble_disagreement_mean'], '.3f')}, "
              f"κ pick {_f(s['remedy_disagreement_mean'], '.3f')} (κ {p['remedy']['kappa']:g}, radius "
              f"{p['remedy']['radius']})")
    print(f"{out['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
