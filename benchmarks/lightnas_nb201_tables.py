"""LightNAS against measured NB201 latency tables: does the searched network land on the target?

HELP's NB201 tables (all 15,625 cells measured per device) stand in for real boards. They are imported
into a Store first, so the predictor trains through the same path (`load_xy`) as data measured by the
agent. Per device: an MLP (LightNAS's predictor) is trained on the archs at NB201 indices [0, 900); LightNAS
searches on the digits proxy (scikit-learn's 8x8 digits upsampled to 32x32: a proxy task, not CIFAR);
the found cell's latency is looked up in the device's table. Targets: raspi4 at 3 ms and 47 ms (thesis
Table 4.3) and, for the other devices, the 25th, 50th and 75th percentile of the device's latencies.
Prints |measured - target| / target per run. Target: within +-5% in every run, mean within +-2%.

Two figures per run: open loop (the searched cell as it is, the issue's protocol) and closed loop
(`hwsearch.close_loop`: the found cell is "measured" by a table lookup and, while it misses the target by
more than --tolerance, the loop measures neighbours whose predictions the measured/predicted ratios
correct, at most --measurements lookups in all; on a board each lookup is one verification). The 900
training cells count as measured networks the loop knows (as the store's measurements do for the CLI).
The loop judges candidates with a GNN fitted on the same 900 cells (`--loop-predictor`; the CLI's
`search --loop-predictor`): the MLP's smooth gradients drive the search, the GNN's per-cell accuracy the
discrete steps after it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hwsearch import as_cost_model, close_loop, create_search, digits_proxy, target_errors
from predictors.data import load_xy
from predictors.importers import IMPORTERS
from predictors.registry import create_predictor
from profiler.store import Store
from spaces import create_space

ROOT = Path(__file__).resolve().parents[1]
DEVICES = {"raspi4": [3.0, 47.0], "pixel3": None, "eyeriss": None, "gold_6226": None}
PERCENTILES = (25, 50, 75)
QUICK = {"devices": "raspi4", "train_n": 200, "epochs": 2, "digits": 300, "targets": 1, "measurements": 2,
         "loop_predictor": "same", "threads": 1}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--help-dir", default=str(ROOT.parent / "shared"), help="HELP folder or the shared folder")
    ap.add_argument("--devices", default=",".join(DEVICES),
                    help=f"comma-separated HELP NB201 devices (default {','.join(DEVICES)})")
    ap.add_argument("--predictor", default="mlp", help="predictor kind (mlp, gnn, gcn; default mlp)")
    ap.add_argument("--train-n", type=int, default=900)
    ap.add_argument("--epochs", type=int, default=10, help="LightNAS epochs (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--measurements", type=int, default=4,
                    help="closed loop: networks measured per run, the found one included (default 4)")
    ap.add_argument("--tolerance", type=float, default=0.02, help="closed loop: accepted |error| (default 0.02)")
    ap.add_argument("--loop-predictor", default="gnn",
                    help="closed loop: predictor kind judging the candidates, fitted on the same cells "
                         "(default gnn: the most accurate per cell; 'same' reuses the search's)")
    ap.add_argument("--targets", type=int, default=None, help="the first N targets per device only (default: all)")
    ap.add_argument("--digits", type=int, default=None, help="use the first N digits only (default: all 1,797)")
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
    train_data = digits_proxy(resolution=space.input_shape()[-1], seed=args.seed, n=args.digits)

    def log(msg: str) -> None:
        if not args.json:
            print(msg, file=sys.stderr, flush=True)

    runs = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "help.db") as store:
        IMPORTERS["help"](store, args.help_dir, spaces=("nb201",), devices=devices)
        for device in devices:
            ids, y = load_xy(store, device, "nb201")
            table = {space.index(space.parse(a)): v for a, v in zip(ids, y, strict=True)}
            train_ids = [space.arch_id(space.from_index(i)) for i in range(args.train_n)]
            train_y = np.array([table[i] for i in range(args.train_n)])
            pred = create_predictor(args.predictor, space="nb201", seed=args.seed).fit(train_ids, train_y)
            loop_pred = pred if args.loop_predictor in ("same", args.predictor) else \
                create_predictor(args.loop_predictor, space="nb201", seed=args.seed).fit(train_ids, train_y)
            targets = (DEVICES.get(device) or [float(np.percentile(y, p)) for p in PERCENTILES])[:args.targets]
            for target in targets:
                t0 = time.perf_counter()
                search = create_search("lightnas", predictor=pred, target=target, epochs=args.epochs,
                                       seed=args.seed)
                res = search.search(train_data)
                measured = float(table[space.index(tuple(res.arch))])
                gap = measured / target - 1.0
                loop = close_loop(res.arch, as_cost_model(loop_pred), space, target,
                                  lambda a, t=table: float(t[space.index(a)]), alpha=search.alpha_,
                                  tolerance=args.tolerance, max_measurements=args.measurements,
                                  known=[(space.from_index(i), float(table[i])) for i in range(args.train_n)])
                runs.append({"device": device, "target_ms": round(target, 4), "arch_id": res.arch_id,
                             "predicted_ms": res.predicted, "measured_ms": measured, "error": gap,
                             "predictor_error": res.predicted / measured - 1.0,
                             "derived_predicted_ms": res.derived_predicted,
                             "refined": res.refine.get("changed", False),
                             "final_lambda": res.lambda_history[-1], "search_s": round(time.perf_counter() - t0, 1),
                             "closed_loop": loop.to_dict()})
                log(f"{device:12s} target {target:8.3f} ms  measured {measured:8.3f}  predicted {res.predicted:8.3f}"
                    f"  error {100 * gap:+6.2f}%  closed loop {100 * loop.error:+6.2f}% after "
                    f"{len(loop.probes)} measurement(s)  ({runs[-1]['search_s']} s)")
    summary = {"open_loop": target_errors([r["error"] for r in runs], 0.05, 0.02),
               "closed_loop": {**target_errors([r["closed_loop"]["error_vs_target"] for r in runs], 0.05, 0.02),
                               "measurements_mean": float(np.mean([r["closed_loop"]["measurements"]
                                                                   for r in runs]))}}
    out = {"quick": args.quick,
           "protocol": {"train": f"NB201 indices [0, {args.train_n}) of each table", "predictor": args.predictor,
                        "data": train_data[0].name, "epochs": args.epochs, "seed": args.seed,
                        "closed_loop": {"max_measurements": args.measurements, "tolerance": args.tolerance,
                                        "predictor": args.loop_predictor}},
           "runs": runs, "summary": summary, "wall_s": round(time.perf_counter() - t_start, 1)}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"LightNAS on HELP NB201 tables ({args.predictor} on {args.train_n} archs, {train_data[0].name}, "
          f"{args.epochs} epochs)")
    print(f"{'device':12s} {'target ms':>10s} {'measured':>10s} {'predicted':>10s} {'err':>7s} {'closed':>7s} "
          f"{'meas':>4s}  arch (closed loop)")
    for r in runs:
        c = r["closed_loop"]
        print(f"{r['device']:12s} {r['target_ms']:10.3f} {r['measured_ms']:10.3f} {r['predicted_ms']:10.3f} "
              f"{100 * r['error']:+6.2f}% {100 * c['error_vs_target']:+6.2f}% {c['measurements']:4d}  "
              f"{space.arch_id(c['arch'])}")
    for name, s in (("open loop", summary["open_loop"]), ("closed loop", summary["closed_loop"])):
        print(f"{name:11s}: mean |err| {100 * s['mean_abs_error']:.2f}%, max {100 * s['max_abs_error']:.2f}%, "
              f"{s['within']}/{len(runs)} within 5% -> target (all <= 5%, mean <= 2%) "
              f"{'met' if s['target_met'] else 'NOT met'}")
    print(f"closed loop measured {summary['closed_loop']['measurements_mean']:.1f} networks per run on average; "
          f"{out['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
