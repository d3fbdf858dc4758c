"""LightNAS closed loop on this CPU: measure, train, search to a target, measure the found network.

On `local-cpu` (ONNX Runtime, one intra-op thread) with the small MBConv space (a few ms per network):
1. measure the first `--n` archs of the seeded sample through the agent (resumable: only missing ones);
2. train the predictor (default: MLP, LightNAS's) on them;
3. for three targets spread over the measured range (the 20th, 50th and 80th percentile), run LightNAS on
   the digits proxy and measure the found network in `--rounds` separate agent jobs (median of the round
   medians: a single round on a shared machine can move by 10% or more).
Prints the measured latency against the target, the predictor's error on the found network and the
search wall time. Target: every measured latency within +-5% of its target (the thesis lands within ~1%).
Two figures per target: open loop (the searched network) and closed loop (`search --correct`: while the
measured network misses by more than --tolerance, up to --correct neighbours chosen by ratio-corrected
predictions are measured, each in --rounds jobs; the measured one nearest the target is kept).
Open-loop remedy (issue 16; --remedy-members 0 skips it): an ensemble of --remedy-members MLPs (kind mlp-ensemble,
bootstrap resamples of the same training archs) drives a second search per target, whose refine scores the archs
up to --remedy-radius layers away by α log-probability − κ·disagreement (κ = --remedy-kappa); from that one
trajectory, the "ensemble" network (refine's thesis pick, κ 0, radius 1), the "remedy" network (the κ pick) and
the "remedy_trust" network (κ and a trust region of μ = --remedy-trust nats per layer between a candidate and the
nearest training arch) are measured in --rounds jobs each, open loop; "trust" is the plain search's trajectory with
the trust region alone (the MLP, μ, radius).
Keep the machine otherwise idle while it runs. `--quick` is a smoke size (10 networks, an MLP, 2 epochs, one
target, 1 round, a short protocol, a temporary dataset): it checks that the path runs, not the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

import predictors.ensemble  # noqa: F401  (registers kind mlp-ensemble)
from hwsearch import as_cost_model, create_search, digits_proxy, refine_arch, target_errors
from hwsearch.pipeline import VerifyPlan, close_loop_on_device
from hwsearch.result import SearchResult
from predictors.data import load_xy
from predictors.metrics import report
from predictors.registry import create_predictor
from profiler.config import DeviceConfig, resolve_device
from profiler.session import Progress, profile
from profiler.store import Store
from spaces import SearchSpace, create_space

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = ROOT / "benchmarks" / "out" / "lightnas_local.db"
PERCENTILES = (20, 50, 80)
# --quick: a smoke size and a short protocol; its measurements never go into the default dataset
QUICK = {"n": 8, "predictor": "mlp", "epochs": 2, "resolution": 16, "rounds": 1, "correct": 1, "percentiles": "50",
         "digits": 300, "threads": 1, "remedy_members": 2, "remedy_radius": 1}
QUICK_PROTOCOL = {"warmup_min_runs": 3, "warmup_min_s": 0.05, "min_runs": 5, "max_runs": 30, "target_rel_ci": 0.05}


def add_arguments(ap: argparse.ArgumentParser, default_db: Path, quick: dict[str, Any],
                  defaults: dict[str, Any] | None = None) -> None:
    """The options lightnas_targets and surgenas_targets share (dataset, device, predictor, verification);
    `defaults` replaces the predictor, epochs, resolution and rounds defaults."""
    d = {"predictor": "gnn", "epochs": 10, "resolution": 64, "rounds": 5, **(defaults or {})}
    ap.add_argument("--db", default=None,
                    help=f"dataset file (default {default_db.relative_to(ROOT)}; with --quick a temporary one)")
    ap.add_argument("--device", default="local-cpu")
    ap.add_argument("--space", default="mbconv-small")
    ap.add_argument("--n", type=int, default=300, help="measured archs to train the predictor (default 300)")
    ap.add_argument("--predictor", default=d["predictor"],
                    help=f"predictor kind (gnn, mlp, gcn; default {d['predictor']})")
    ap.add_argument("--epochs", type=int, default=d["epochs"], help=f"epochs of a search (default {d['epochs']})")
    ap.add_argument("--resolution", type=int, default=d["resolution"],
                    help=f"supernet training resolution (default {d['resolution']}: a 224 supernet takes ~10 s a "
                         "batch here)")
    ap.add_argument("--rounds", type=int, default=d["rounds"],
                    help=f"verification rounds per found network (default {d['rounds']})")
    ap.add_argument("--correct", type=int, default=3, help="closed loop: extra networks measured at most (default 3)")
    ap.add_argument("--tolerance", type=float, default=0.02, help="closed loop: accepted |error| (default 0.02)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for training and search")
    ap.add_argument("--percentiles", default=",".join(map(str, PERCENTILES)),
                    help="targets: these percentiles of the measured latencies (default 20,50,80)")
    ap.add_argument("--digits", type=int, default=None, help="use the first N digits only (default: all 1,797)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke size: {quick}, a short protocol (explicit options still win)")
    ap.add_argument("--json", action="store_true", help="print JSON")


def add_remedy_arguments(ap: argparse.ArgumentParser) -> None:
    """The open-loop remedy's options (lightnas_targets only)."""
    ap.add_argument("--remedy-members", type=int, default=5,
                    help="open-loop remedy: MLPs in the ensemble (default 5; 0: no remedy search)")
    ap.add_argument("--remedy-kappa", type=float, default=50.0,
                    help="open-loop remedy: refine's penalty κ on the ensemble's disagreement (default 50)")
    ap.add_argument("--remedy-trust", type=float, default=5.0,
                    help="open-loop remedy: trust region μ, nats per layer from the nearest training arch (default 5; "
                         "0: no trust columns)")
    ap.add_argument("--remedy-radius", type=int, default=2, choices=(1, 2),
                    help="open-loop remedy: refine's candidates, layers from the argmax (default 2)")


def parse_and_run(ap: argparse.ArgumentParser, argv: list[str] | None, quick: dict[str, Any], default_db: Path,
                  run_fn: Callable[[argparse.Namespace], int]) -> int:
    """Parse (`--quick` sets the smoke defaults, explicit options still win) and run with the dataset: a
    temporary one for --quick without --db, so a smoke run never writes into the default dataset."""
    args = ap.parse_args(argv)
    if args.quick:
        ap.set_defaults(**quick)
        args = ap.parse_args(argv)
    if args.quick and args.db is None:
        with tempfile.TemporaryDirectory() as tmp:
            args.db = str(Path(tmp) / default_db.name)
            return run_fn(args)
    args.db = args.db or str(default_db)
    return run_fn(args)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap, DEFAULT_DB, QUICK)
    add_remedy_arguments(ap)
    return parse_and_run(ap, argv, QUICK, DEFAULT_DB, run)


@dataclass
class Bench:
    """What the measured dataset and the fitted predictor give a target benchmark."""

    config: DeviceConfig
    space: SearchSpace
    ids: list[str]
    y: np.ndarray
    pred: Any
    held: dict[str, Any]
    n_fit: int
    measure_s: float
    protocol: dict[str, Any] | None
    fit_idx: np.ndarray | None = None  # the rows of ids/y the predictor was fitted on

    def targets(self, percentiles: list[int]) -> list[tuple[int, float]]:
        return [(p, float(np.percentile(self.y, p))) for p in percentiles]

    def plan(self, args: argparse.Namespace, db: Path) -> VerifyPlan:
        return VerifyPlan(self.config.name, db, rounds=args.rounds, correct=args.correct, tolerance=args.tolerance,
                          protocol=self.protocol)


def percentiles_of(args: argparse.Namespace) -> list[int]:
    return [int(p) for p in args.percentiles.split(",") if p.strip()]


def measure_and_fit(args: argparse.Namespace, log: Callable[[str], None]) -> Bench | None:
    """Steps 1-2: measure the first `--n` archs (only the missing ones) and fit the predictor on a random 80%,
    the rest held out. None when the measurement was interrupted."""
    protocol = QUICK_PROTOCOL if args.quick else None
    torch.set_num_threads(args.threads)
    config = resolve_device(args.device)
    space = create_space(args.space)
    db = Path(args.db)
    db.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with Store(db) as store:
        rep = profile(config, space, n=args.n, seed=args.seed, batch=1, store=store, progress=Progress(),
                      protocol_overrides=protocol)
        if rep.interrupted:
            return None
        ids, y = load_xy(store, config.name, args.space, backend=config.runtime.backend)
    measure_s = time.perf_counter() - t0
    log(f"{len(ids)} {args.space} archs measured on {config.name} ({measure_s:.0f} s); "
        f"{y.min():.3f}-{y.max():.3f} ms")
    pred = create_predictor(args.predictor, space=args.space, seed=args.seed)
    n_fit = int(0.8 * len(ids))
    order = np.random.default_rng(args.seed).permutation(len(ids))
    fit_idx, hold_idx = order[:n_fit], order[n_fit:]
    pred.fit([ids[i] for i in fit_idx], y[fit_idx])
    held = report(pred.predict([ids[i] for i in hold_idx]), y[hold_idx], n_target_samples=n_fit,
                  split=f"random {n_fit} train / {len(hold_idx)} held out")
    log(f"{args.predictor}: held-out rho {held['spearman']:.3f}, Acc@10 {100 * held['acc10']:.1f}%, "
        f"MAPE {held['mape']:.1f}%")
    return Bench(config, space, ids, y, pred, held, n_fit, measure_s, protocol, fit_idx)


def verified_row(res: SearchResult, plan: VerifyPlan, pred: Any) -> dict[str, Any]:
    """The found network measured in `plan.rounds` jobs (open loop: the first probe) and, while it misses by
    more than the tolerance, up to `plan.correct` more (closed loop)."""
    loop, v = close_loop_on_device(res, plan, pred)
    first = loop["probes"][0]
    return {"arch_id": res.arch_id, "predicted_ms": res.predicted, "measured_ms": first["measured"],
            "error": first["error_vs_target"], "predictor_error": first["predictor_error"],
            "closed_loop": {**loop, "rounds_ms": v["values"], "spread": v["spread"]}}


def other_pick(res: SearchResult, alpha: Any, model: Any, target: float, tolerance: float,
               **how: Any) -> tuple[SearchResult, dict[str, Any]]:
    """Refine's pick under other settings (`how`: refine_arch's kappa, radius, mu, known) from the same
    trajectory (the derived arch and α of `res`), as a result in place of the search's own."""
    space = search_space_of(res)
    arch, info = refine_arch(tuple(res.derived_arch), alpha, as_cost_model(model), space, target, tolerance, **how)
    return replace(res, arch=list(arch), arch_id=space.arch_id(arch),
                   predicted=info.get("after_predicted", info["before_predicted"])), info


def measured_open(results: dict[str, SearchResult], plan: VerifyPlan, pred: Any,
                  done: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Each result's network measured once, open loop (a network two picks share is measured once; `done`:
    arch id -> a row measured already)."""
    seen = dict(done or {})
    out = {}
    for name, res in results.items():
        if res.arch_id not in seen:
            row = verified_row(res, replace(plan, correct=0), pred)
            row.pop("closed_loop", None)
            seen[res.arch_id] = row
        out[name] = {**seen[res.arch_id], "predicted_ms": res.predicted}
    return out


def remedy_rows(args: argparse.Namespace, ens: Any, target: float, data: Any, plan: VerifyPlan,
                known: np.ndarray, done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The remedy's search (the ensemble's mean drives α and λ, refine with κ) and, from the same trajectory,
    refine's thesis pick (κ 0, radius 1) and the κ + trust-region pick: each network measured open loop."""
    t0 = time.perf_counter()
    search = create_search("lightnas", predictor=ens, target=target, epochs=args.epochs, seed=args.seed,
                           data_resolution=args.resolution, refine_kappa=args.remedy_kappa,
                           refine_radius=args.remedy_radius, refine_trust=0.0)
    res = search.search(data)
    search_s = round(time.perf_counter() - t0, 1)
    tol = search.refine_tolerance
    thesis, info = other_pick(res, search.alpha_, ens, target, tol)
    trust, tinfo = other_pick(res, search.alpha_, ens, target, tol, kappa=args.remedy_kappa,
                              radius=args.remedy_radius, mu=args.remedy_trust, known=known)
    rows = measured_open({"ensemble": thesis, "remedy": res, "remedy_trust": trust}, plan, ens, done)
    rows["ensemble"]["disagreement"] = info.get("after_disagreement")
    rows["remedy"]["disagreement"] = res.disagreement
    rows["remedy_trust"]["disagreement"] = tinfo.get("after_disagreement")
    rows["remedy_trust"]["from_known"] = tinfo.get("after_from_known")
    rows["remedy"]["refine"] = {k: res.refine.get(k) for k in ("changed", "within_tolerance", "candidates",
                                                               "before_disagreement", "after_disagreement")}
    return {**rows, "search_s_remedy": search_s}


def search_space_of(res: SearchResult) -> SearchSpace:
    return create_space(res.space, **(res.space_config or {}))


def run(args: argparse.Namespace) -> int:
    if args.rounds < 5 and not args.quick:
        print("note: fewer than 5 rounds; a single round on a shared machine can move by 10% or more",
              file=sys.stderr)

    def log(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    b = measure_and_fit(args, log)
    if b is None:
        return 130
    config, space, ids, pred, held, n_fit = b.config, b.space, b.ids, b.pred, b.held, b.n_fit
    data = digits_proxy(resolution=args.resolution, seed=args.seed, n=args.digits)
    runs = []
    plan = b.plan(args, Path(args.db))
    ens, known = None, None
    idx = b.fit_idx if b.fit_idx is not None else np.arange(n_fit)
    if getattr(args, "remedy_trust", 0):
        known = np.array([space.parse(ids[i]) for i in idx], dtype=np.int64)
    if getattr(args, "remedy_members", 0):
        ens = create_predictor("mlp-ensemble", space=args.space, space_config=pred.space_config, seed=args.seed,
                               members=args.remedy_members).fit([ids[i] for i in idx], b.y[idx])
    for p, target in b.targets(percentiles_of(args)):
        t1 = time.perf_counter()
        search = create_search("lightnas", predictor=pred, target=target, epochs=args.epochs, seed=args.seed,
                               data_resolution=args.resolution)
        res = search.search(data)
        search_s = time.perf_counter() - t1
        found = verified_row(res, plan, pred)
        loop = found["closed_loop"]
        row = {"percentile": p, "target_ms": target, **{k: v for k, v in found.items() if k != "closed_loop"},
               "search_s": round(search_s, 1), "refined": res.refine.get("changed", False), "closed_loop": loop}
        if known is not None:
            trust, tinfo = other_pick(res, search.alpha_, pred, target, search.refine_tolerance,
                                      radius=args.remedy_radius, mu=args.remedy_trust, known=known)
            done = {res.arch_id: {k: found[k] for k in ("arch_id", "measured_ms", "error", "predictor_error")}}
            row["trust"] = {**measured_open({"trust": trust}, plan, pred, done)["trust"],
                            "from_known": tinfo.get("after_from_known")}
            if ens is not None:
                done[trust.arch_id] = row["trust"]
                row.update(remedy_rows(args, ens, target, data, plan, known, done))
            log(f"p{p}: trust {100 * row['trust']['error']:+.2f}%" + (
                f", ensemble (thesis pick) {100 * row['ensemble']['error']:+.2f}%, remedy (κ pick) "
                f"{100 * row['remedy']['error']:+.2f}%, κ+trust {100 * row['remedy_trust']['error']:+.2f}%"
                if ens is not None else ""))
        runs.append(row)
        log(f"p{p}: target {target:.3f} ms, measured {row['measured_ms']:.3f} ms ({100 * row['error']:+.2f}%), "
            f"predicted {res.predicted:.3f} ({100 * row['predictor_error']:+.2f}% vs measured), "
            f"search {search_s:.0f} s; closed loop {100 * loop['error_vs_target']:+.2f}% after "
            f"{loop['measurements']} network(s)")

    out = {"device": config.name, "space": args.space, "space_config": space.config, "predictor": args.predictor,
           "quick": args.quick, "n_measured": len(ids), "held_out": held, "data": data[0].name,
           "search_resolution": args.resolution, "epochs": args.epochs,
           "rounds": args.rounds, "runs": runs,
           "closed_loop": {"max_extra": args.correct, "tolerance": args.tolerance},
           "summary": {**target_errors([r["error"] for r in runs], 0.05),
                       "closed_loop": {**target_errors([r["closed_loop"]["error_vs_target"] for r in runs], 0.05),
                                       "measurements": [r["closed_loop"]["measurements"] for r in runs]},
                       **{k: target_errors([r[k]["error"] for r in runs], 0.05)
                          for k in ("trust", "ensemble", "remedy", "remedy_trust") if runs and k in runs[0]}},
           "remedy": {"members": getattr(args, "remedy_members", 0), "kappa": getattr(args, "remedy_kappa", None),
                      "radius": getattr(args, "remedy_radius", None), "trust": getattr(args, "remedy_trust", None),
                      "ensemble": "the remedy search's trajectory, refine's thesis pick (kappa 0, radius 1)",
                      "trust_pick": "the plain search's trajectory, refine with the trust region (mu, radius)",
                      "remedy_trust": "the remedy search's trajectory, refine with kappa and mu"},
           "wall_s": round(time.perf_counter() - t0, 1)}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"LightNAS on {config.name}, {args.space}, {args.predictor} on {n_fit} measured archs "
          f"(held-out rho {held['spearman']:.3f}), {data[0].name} at {args.resolution}px, {args.epochs} epochs, "
          f"{args.rounds} rounds")
    print(f"{'target':>8s} {'ms':>8s} {'measured':>9s} {'error':>7s} {'predicted':>10s} {'pred err':>8s} "
          f"{'search s':>8s} {'closed':>7s} {'nets':>4s}")
    for r in runs:
        c = r["closed_loop"]
        print(f"{'p' + str(r['percentile']):>8s} {r['target_ms']:8.3f} {r['measured_ms']:9.3f} "
              f"{100 * r['error']:+6.2f}% {r['predicted_ms']:10.3f} {100 * r['predictor_error']:+7.2f}% "
              f"{r['search_s']:8.1f} {100 * c['error_vs_target']:+6.2f}% {c['measurements']:4d}")
    sm = out["summary"]
    print(f"open loop max |error| {100 * sm['max_abs_error']:.2f}%, closed loop "
          f"{100 * sm['closed_loop']['max_abs_error']:.2f}% -> target (all within 5%) open "
          f"{'met' if sm['target_met'] else 'NOT met'}, "
          f"closed {'met' if sm['closed_loop']['target_met'] else 'NOT met'}; {out['wall_s']:.0f} s")
    for k, label in (("trust", "MLP, trust pick"), ("ensemble", "ensemble, thesis pick"),
                     ("remedy", "ensemble, κ pick"), ("remedy_trust", "ensemble, κ+trust pick")):
        if k in sm:
            errs = " ".join(f"{100 * r[k]['error']:+.2f}%" for r in runs)
            print(f"{label}: {errs}; mean |error| {100 * sm[k]['mean_abs_error']:.2f}%, max "
                  f"{100 * sm[k]['max_abs_error']:.2f}%, {sm[k]['within']}/{len(runs)} within 5%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
