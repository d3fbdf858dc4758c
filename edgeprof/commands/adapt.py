"""Adapt a meta-trained (HELP-style) predictor to a new device from K measurements of it.

The device also needs its latencies on the predictor's reference architectures (its hardware
embedding); the error lists them when they are not in the dataset, so you can profile them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, print_json
from profiler.store import Store


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictor", help="a meta-trained predictor folder (edgeprof train meta)")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--device", required=True)
    p.add_argument("--samples", type=int, default=10, help="K measured archs of the device (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for the adapted predictor")
    p.add_argument("--json", action="store_true", help="print JSON")


def _help_class():
    from predictors.meta import HelpPredictor

    return HelpPredictor


def train_meta(args: argparse.Namespace) -> int:
    """edgeprof train meta --devices a,b,c: meta-train across source devices."""
    from predictors.data import load_xy
    from predictors.io import save_predictor

    devices = [d for d in (args.devices or "").split(",") if d]
    if len(devices) < 2:
        raise ValueError("--devices: give at least two comma-separated source devices for meta-training")
    with Store(args.db) as store:
        tasks = {d: load_xy(store, d, args.space) for d in devices}
    hp = {"space": args.space, "seed": args.seed}
    if args.epochs is not None:
        hp["meta_iters"] = args.epochs
    pred = _help_class()(**hp)
    with err.status(f"meta-training on {len(devices)} devices"):
        pred.meta_fit(tasks)
    save_predictor(pred, Path(args.out), devices=devices)
    res = {"kind": "meta", "space": args.space, "devices": devices, "out": args.out}
    if args.json:
        print_json(res)
    else:
        err.print(f"meta-trained on {', '.join(devices)}; saved {args.out}; adapt with "
                  f"`edgeprof adapt {args.out} --device DEV --samples 10 --out ...`")
    return 0


def run(args: argparse.Namespace) -> int:
    from edgeprof.commands.evaluate import evaluation
    from edgeprof.commands.train import print_metrics
    from predictors.data import load_xy
    from predictors.io import load_predictor, save_predictor

    if args.samples < 2:
        raise ValueError(f"--samples: at least 2 measurements are needed to adapt, got {args.samples}")
    pred = load_predictor(args.predictor)
    if not hasattr(pred, "adapt"):
        raise ValueError(f"{args.predictor} is a {type(pred).__name__}, not a meta-trained predictor")
    with Store(args.db) as store:
        ids, y = load_xy(store, args.device, pred.space)
    have = dict(zip(ids, y.tolist()))
    refs = pred.reference_ids()
    missing = [r for r in refs if r not in have]
    if missing:
        raise ValueError(f"{args.device}: the reference architectures are not all measured ({len(missing)} "
                         f"missing): {', '.join(missing)}")
    pool = [a for a in ids if a not in set(refs)]
    if len(pool) < args.samples:
        raise ValueError(f"{args.device}: only {len(pool)} measured archs besides the references; "
                         f"--samples {args.samples} needs more")
    rng = np.random.default_rng(args.seed)
    picked = [pool[i] for i in rng.choice(len(pool), size=args.samples, replace=False)]
    pred.adapt(picked, np.array([have[a] for a in picked]), reference={r: have[r] for r in refs})
    out = Path(args.out)
    save_predictor(pred, out, devices=[args.device])
    (out / "train_archs.json").write_text(json.dumps(sorted(set(picked) | set(refs))))
    metrics, _, _ = evaluation(out, args.db, args.device)
    metrics["n_target_samples"] = args.samples
    if args.json:
        print_json({"device": args.device, "out": str(out), "samples": args.samples, "metrics": metrics})
    else:
        print_metrics(f"adapted to {args.device} with {args.samples} samples (+{len(refs)} reference archs)",
                      metrics)
    return 0
