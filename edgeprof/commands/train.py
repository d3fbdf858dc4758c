"""Train a latency predictor from the dataset: mlp, gnn, gcn, gbdt, lut, flops, params (one device), or
meta (HELP-style, across devices; adapt it to a new device with `edgeprof adapt`).

The held-out metrics, stating the number of target-device samples and the split, go into the predictor's
card and are printed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, print_json
from profiler.store import Store


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", help="mlp, gnn, gcn, gbdt, lut, flops, params, or meta")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--space", required=True)
    p.add_argument("--device", help="the device to train for (all kinds but meta)")
    p.add_argument("--devices", help="meta: comma-separated source devices")
    p.add_argument("--valid-devices", help="meta: held-out devices that pick the meta-iteration and the "
                                             "ensemble weights (HELP's meta-valid role)")
    p.add_argument("--single", action="store_true",
                   help="meta: one HelpPredictor instead of the space's default ensemble")
    p.add_argument("--help-dir", help="meta on fbnet: HELP's folder, for its FBNet reference archs (default: "
                                      "10 archs measured on every source device)")
    p.add_argument("--train-n", type=int, default=None, help="training archs (default: 80%% of the device's data)")
    p.add_argument("--quantity", choices=["latency", "energy"], default="latency",
                   help="what to predict: latency (ms, default) or energy per inference (mJ)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the predictor's default epochs")
    p.add_argument("--out", required=True, help="predictor folder to write")
    p.add_argument("--json", action="store_true", help="print JSON")


def held_out_report(pred, test_ids: list[str], test_y, n_train: int, split: str) -> dict:
    from predictors.metrics import report

    return report(pred.predict(test_ids), test_y, n_target_samples=n_train, split=split)


def print_metrics(title: str, m: dict) -> None:
    err.print(f"{title}: ρ {m['spearman']:.3f}  τ {m['kendall']:.3f}  Acc@10 {100 * m['acc10']:.1f}%  "
              f"Acc@5 {100 * m['acc5']:.1f}%  MAPE {m['mape']:.2f}%  RMSE {m['rmse']:.4f} ms  "
              f"(n={m['n']}, {m['n_target_samples']} target samples, {m['split']})")


def run(args: argparse.Namespace) -> int:
    if args.kind == "meta":
        from edgeprof.commands.adapt import train_meta

        return train_meta(args)
    from edgeprof.output import training_progress
    from predictors.data import data_fingerprint, load_xy, split
    from predictors.io import save_predictor
    from predictors.nn import TorchPredictor
    from predictors.registry import create_predictor, list_predictors

    kinds = list_predictors(supervised=True)
    if args.kind not in kinds:
        raise ValueError(f"unknown predictor kind {args.kind!r} for train (known: {', '.join(kinds)}, meta)")
    if not args.device:
        raise ValueError("--device is required for a single-device predictor")
    with Store(args.db) as store:
        ids, y = load_xy(store, args.device, args.space, quantity=args.quantity)
    n = args.train_n if args.train_n is not None else max(1, int(0.8 * len(ids)))
    tr_ids, tr_y, te_ids, te_y = split(ids, y, n, seed=args.seed)
    hp = {"space": args.space, "seed": args.seed}
    if args.epochs is not None:
        hp["epochs"] = args.epochs
    pred = create_predictor(args.kind, **hp)
    t0 = time.perf_counter()
    label = f"training {args.kind} on {len(tr_ids)} {args.device} archs"
    if isinstance(pred, TorchPredictor):
        with training_progress(label, quiet=args.json) as step:
            pred.fit(tr_ids, tr_y, on_epoch=step)
    else:
        with err.status(label):
            pred.fit(tr_ids, tr_y)
    fit_s = time.perf_counter() - t0
    desc = f"random {len(tr_ids)} train / {len(te_ids)} test, seed {args.seed}"
    metrics = held_out_report(pred, te_ids, te_y, len(tr_ids), desc)
    out = Path(args.out)
    save_predictor(pred, out, metrics=metrics, data_fingerprint=data_fingerprint(tr_ids, tr_y),
                   devices=[args.device], quantity=args.quantity)
    (out / "train_archs.json").write_text(json.dumps(sorted(tr_ids)))
    res = {"kind": args.kind, "device": args.device, "space": args.space, "quantity": args.quantity, "out": str(out),
           "fit_s": round(fit_s, 2), "metrics": metrics}
    if args.json:
        print_json(res)
    else:
        print_metrics(f"{args.kind} on {args.device}/{args.space}", metrics)
        err.print(f"saved {out} ({fit_s:.1f} s to fit)")
    return 0
