"""SurgeNAS against LightNAS on this CPU: the same predictor, data, epochs and targets; the found networks measured.

On `local-cpu` (ONNX Runtime, one intra-op thread) with the small MBConv space, as `lightnas_targets` (whose
measuring, predictor fitting and verification this script reuses):
1. measure the first `--n` archs of the seeded sample through the agent (resumable: only missing ones);
2. fit the predictor (default: the MLP, LightNAS's search predictor; `--predictor gnn` also) on 80% of them;
3. for targets at the 20th, 50th and 80th percentile of the measured latencies, run SurgeNAS with the target
   (`hwsearch.surgenas`: β found by bisection, one complete search of `--epochs` per trial, at most
   `--max-trials`) and LightNAS (one search of `--epochs`, λ by dual ascent) on the digits proxy, and measure
   each found network in `--rounds` separate agent jobs (median of the round medians). Open loop is the
   searched network; closed loop (`--correct`) measures up to that many neighbours while the miss exceeds
   `--tolerance`, and keeps the measured one nearest the target.
Per target and search: measured latency, its error against the target, the predictor's error on the found
network, β (SurgeNAS) or the final λ (LightNAS), the trials, the epochs run and the wall time. Equal epochs
per search, not equal cost: a SurgeNAS epoch trains all |O| sub-networks on every batch (|O| = 7 here), and
the bisection runs several searches, so the trials and the wall time are what its target costs.
Besides the error, the summary counts the networks measured under the target (for reading T as a budget) and
the predicted miss (predicted vs target: the search's own miss, apart from the predictor's error). `--out`
rewrites the JSON after every target; `--table-from` reprints a saved one.
Data: both get the same digits pair; LightNAS trains w on the first split and α on the second, SurgeNAS
(one-level) trains both on the first and reports its network's accuracy on the second.
Latencies on a shared 2-core machine move by 10% or more between jobs: keep it otherwise idle, `--rounds` >= 3.
`--quick` is a smoke size (8 networks, an MLP, 2 epochs, 100 digits, one target, 1 round, 2 trials, a short protocol,
a temporary dataset): it checks that the path runs, not the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from lightnas_targets import Bench, add_arguments, measure_and_fit, parse_and_run, percentiles_of, verified_row

from hwsearch import create_search, digits_proxy, target_errors
from hwsearch.pipeline import VerifyPlan
from spaces.errors import UserInputError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = ROOT / "benchmarks" / "out" / "lightnas_local.db"  # lightnas_targets' dataset: measured once
SEARCHES = ("surgenas", "lightnas")
QUICK = {"n": 8, "predictor": "mlp", "epochs": 2, "resolution": 16, "rounds": 1, "correct": 1, "percentiles": "50",
         "digits": 100, "threads": 1, "max_trials": 2,
         "searches": "surgenas"}  # LightNAS's side is lightnas_targets' own smoke (the same verified_row)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(ap, DEFAULT_DB, QUICK, {"predictor": "mlp", "rounds": 3, "epochs": 6, "resolution": 32})
    ap.add_argument("--max-trials", type=int, default=6,
                    help="SurgeNAS: searches the bisection on beta may run per target (default 6)")
    ap.add_argument("--searches", default=",".join(SEARCHES),
                    help=f"which searches to run, comma-separated (default {','.join(SEARCHES)})")
    ap.add_argument("--out", default=None,
                    help="also write the JSON here, rewritten after every target (a long run keeps what finished)")
    ap.add_argument("--table-from", default=None, metavar="JSON",
                    help="measure and search nothing: print the table (or --json) of a saved --out/--json file, "
                         "its summary recomputed")
    return parse_and_run(ap, argv, QUICK, DEFAULT_DB, run)


def search_once(name: str, b: Bench, target: float, data: Any, args: argparse.Namespace,
                plan: VerifyPlan) -> dict[str, Any]:
    """One search to `target` and its network measured (open and closed loop); a search that refuses the
    target (outside what the predictor says the space reaches) is recorded, not fatal."""
    opts: dict[str, Any] = {"max_trials": args.max_trials} if name == "surgenas" else {}
    t0 = time.perf_counter()
    try:
        res = create_search(name, predictor=b.pred, target=target, epochs=args.epochs, seed=args.seed,
                            data_resolution=args.resolution, **opts).search(data)
    except UserInputError as e:
        return {"failed": str(e), "search_s": round(time.perf_counter() - t0, 1)}
    search_s = time.perf_counter() - t0
    if name == "surgenas":
        trials = [{"beta": t["beta"], "predicted": t["predicted"], "chosen": t["chosen"]} for t in res.trials]
        extra = {"beta": res.beta, "trials": len(res.trials), "trial_log": trials,
                 "heldout_accuracy": res.heldout_accuracy}
    else:
        extra = {"lambda": res.lambda_history[-1] if res.lambda_history else 0.0, "trials": 1,
                 "refined": bool(res.refine.get("changed", False))}
    return {**verified_row(res, plan, b.pred), **extra, "epochs_run": extra["trials"] * args.epochs,
            "search_s": round(search_s, 1)}


def _fmt(name: str, r: dict[str, Any]) -> str:
    if "failed" in r:
        return f"{name}: failed after {r['search_s']:.0f} s: {r['failed']}"
    knob = f"β {r['beta']:.3g}" if name == "surgenas" else f"λ {r['lambda']:+.3g}"
    c = r["closed_loop"]
    return (f"{name}: measured {r['measured_ms']:.3f} ms ({100 * r['error']:+.2f}%), predicted "
            f"{r['predicted_ms']:.3f} ({100 * r['predictor_error']:+.2f}% vs measured), {knob}, {r['trials']} "
            f"trial(s), {r['search_s']:.0f} s; closed loop {100 * c['error_vs_target']:+.2f}% after "
            f"{c['measurements']} network(s)")


def run(args: argparse.Namespace) -> int:
    searches = [s.strip() for s in args.searches.split(",") if s.strip()]
    if not searches or set(searches) - set(SEARCHES):
        raise SystemExit(f"--searches: choose from {', '.join(SEARCHES)}, got {args.searches!r}")
    if args.table_from:
        return table_from(Path(args.table_from), args.json)
    if args.rounds < 3 and not args.quick:
        print("note: fewer than 3 rounds; a single round on a shared machine can move by 10% or more",
              file=sys.stderr)

    def log(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    b = measure_and_fit(args, log)
    if b is None:
        return 130
    data = digits_proxy(resolution=args.resolution, seed=args.seed, n=args.digits)
    plan = b.plan(args, Path(args.db))
    runs: list[dict[str, Any]] = []
    out = results(args, b, data, searches, runs, t0)
    for p, target in b.targets(percentiles_of(args)):
        row: dict[str, Any] = {"percentile": p, "target_ms": target}
        for name in searches:
            row[name] = search_once(name, b, target, data, args, plan)
            log(f"p{p} (target {target:.3f} ms) {_fmt(name, row[name])}")
        runs.append(row)
        out = results(args, b, data, searches, runs, t0)
        if args.out:
            Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print_table(out, searches)
    return 0


def table_from(path: Path, as_json: bool) -> int:
    """A saved run's table, its summary recomputed (a run stopped early, or one saved by an older version)."""
    try:
        out = json.loads(path.read_text())
        searches = [s for s in SEARCHES if all(s in r for r in out["runs"]) and out["runs"]]
        out["summary"] = {name: summary(out["runs"], name) for name in searches}
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"--table-from {path}: not a surgenas_targets JSON ({type(e).__name__}: {e})") from None
    if as_json:
        print(json.dumps(out, indent=2))
    else:
        print_table(out, searches)
    return 0


def results(args: argparse.Namespace, b: Bench, data: Any, searches: list[str], runs: list[dict[str, Any]],
            t0: float) -> dict[str, Any]:
    return {"device": b.config.name, "space": args.space, "space_config": b.space.config,
           "predictor": args.predictor, "quick": args.quick, "n_measured": len(b.ids), "n_fit": b.n_fit,
           "held_out": b.held,
           "data": data[0].name, "search_resolution": args.resolution, "epochs": args.epochs,
           "max_trials": args.max_trials, "rounds": args.rounds,
           "closed_loop": {"max_extra": args.correct, "tolerance": args.tolerance}, "runs": runs,
           "summary": {name: summary(runs, name) for name in searches},
           "measure_s": round(b.measure_s, 1), "wall_s": round(time.perf_counter() - t0, 1)}


def summary(runs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """`target_errors` of search `name`'s open and closed loop (and of its prediction) over the targets where it
    ran, and what it cost."""
    rows = [r[name] for r in runs]
    ok = [r for r in rows if "failed" not in r]
    targets = [run["target_ms"] for run in runs if "failed" not in run[name]]
    out: dict[str, Any] = {"failed": len(rows) - len(ok), "search_s": sum(r["search_s"] for r in rows)}
    if ok:
        out.update(target_errors([r["error"] for r in ok], 0.05))
        closed = [r["closed_loop"]["error_vs_target"] for r in ok]
        out["closed_loop"] = {**target_errors(closed, 0.05), "under_target": sum(e <= 0 for e in closed),
                              "measurements": [r["closed_loop"]["measurements"] for r in ok]}
        out["under_target"] = sum(r["error"] <= 0 for r in ok)  # T read as a budget
        out["trials"] = sum(r["trials"] for r in ok)
        out["epochs_run"] = sum(r["epochs_run"] for r in ok)
        out["mean_abs_predictor_error"] = sum(abs(r["predictor_error"]) for r in ok) / len(ok)
        out["predicted_vs_target"] = target_errors(
            [r["predicted_ms"] / t - 1.0 for r, t in zip(ok, targets, strict=True)], 0.05)
    return out


def print_table(out: dict[str, Any], searches: list[str]) -> None:
    held, n_fit = out["held_out"], out.get("n_fit", int(0.8 * out["n_measured"]))
    print(f"SurgeNAS vs LightNAS on {out['device']}, {out['space']}, {out['predictor']} on {n_fit} measured archs "
          f"(held-out rho {held['spearman']:.3f}, MAPE {held['mape']:.1f}%), {out['data']} at "
          f"{out['search_resolution']}px, {out['epochs']} epochs a search, {out['rounds']} rounds; "
          f"SurgeNAS up to {out['max_trials']} trials a target")
    print("error: measured vs target; pred-T: predicted vs target (the search's own miss); pred err: predicted vs "
          "measured; closed: the closed loop's error after nets measured")
    print(f"{'target':>6s} {'ms':>7s} {'search':>8s} {'measured':>8s} {'error':>7s} {'predicted':>9s} "
          f"{'pred-T':>7s} {'pred err':>8s} {'β / λ':>8s} {'trials':>6s} {'epochs':>6s} {'wall s':>7s} "
          f"{'closed':>7s} {'nets':>4s}")
    for row in out["runs"]:
        for name in searches:
            r = row[name]
            head = f"{'p' + str(row['percentile']):>6s} {row['target_ms']:7.3f} {name:>8s}"
            if "failed" in r:
                print(f"{head} failed: {r['failed']}")
                continue
            knob = r["beta"] if name == "surgenas" else r["lambda"]
            c = r["closed_loop"]
            print(f"{head} {r['measured_ms']:8.3f} {100 * r['error']:+6.2f}% {r['predicted_ms']:9.3f} "
                  f"{100 * (r['predicted_ms'] / row['target_ms'] - 1):+6.2f}% {100 * r['predictor_error']:+7.2f}% "
                  f"{knob:8.3g} {r['trials']:6d} {r['epochs_run']:6d} "
                  f"{r['search_s']:7.1f} {100 * c['error_vs_target']:+6.2f}% {c['measurements']:4d}")
    for name in searches:
        sm = out["summary"][name]
        if "max_abs_error" not in sm:
            print(f"{name}: every search failed")
            continue
        cl = sm["closed_loop"]
        print(f"{name}: open loop max |error| {100 * sm['max_abs_error']:.2f}% (mean "
              f"{100 * sm['mean_abs_error']:.2f}%, {sm['within']} within 5%), closed loop max "
              f"{100 * cl['max_abs_error']:.2f}% (mean {100 * cl['mean_abs_error']:.2f}%, {cl['within']} within 5%); "
              f"under the target {sm['under_target']}/{cl['under_target']} of {len(out['runs'])} (open/closed); "
              f"predicted vs target max {100 * sm['predicted_vs_target']['max_abs_error']:.2f}%; "
              f"{sm['trials']} searches, {sm['epochs_run']} epochs, {sm['search_s']:.0f} s searching"
              + (f"; {sm['failed']} failed" if sm["failed"] else ""))
    print(f"measuring {out['measure_s']:.0f} s, total {out['wall_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
