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


def common_reference(tasks: dict[str, tuple[list[str], np.ndarray]], n: int, seed: int) -> list[str]:
    """`n` archs measured on every source device, drawn with `seed`: a reference set for a space that has
    none of HELP's (the new device must then be measured on these too)."""
    common = set.intersection(*(set(ids) for ids, _ in tasks.values()))
    if len(common) < n:
        raise ValueError(f"meta-training needs {n} reference archs measured on every source device; only "
                         f"{len(common)} are common to {', '.join(tasks)}")
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(sorted(common), n, replace=False).tolist())


def valid_tasks(tasks: dict[str, tuple[list[str], np.ndarray]], refs: list[str], k: int, seed: int) -> dict:
    """Held-out devices as few-shot tasks: K random non-reference archs to adapt on, the rest to score."""
    from predictors.meta import FewShotTask

    out = {}
    for d, (ids, y) in tasks.items():
        table = dict(zip(ids, y.tolist()))
        missing = [r for r in refs if r not in table]
        if missing:
            raise ValueError(f"--valid-devices: {d} lacks {len(missing)} reference archs: {', '.join(missing)}")
        rest = [a for a in ids if a not in set(refs)]
        if len(rest) < k + 2:
            raise ValueError(f"--valid-devices: {d} has {len(rest)} non-reference archs; need at least {k + 2}")
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(rest))
        sup, query = [rest[i] for i in perm[:k]], [rest[i] for i in perm[k:]]
        out[d] = FewShotTask(sup, np.array([table[a] for a in sup]), query, np.array([table[a] for a in query]),
                             {r: table[r] for r in refs})
    return out


def train_meta(args: argparse.Namespace) -> int:
    """edgeprof train meta --devices a,b,c: meta-train across source devices."""
    from edgeprof.output import training_progress
    from predictors.data import load_xy
    from predictors.io import save_predictor
    from predictors.meta import HelpEnsemble, HelpPredictor, default_members, help_fbnet_reference

    devices = [d for d in (args.devices or "").split(",") if d]
    valid_names = [d for d in (args.valid_devices or "").split(",") if d]
    if len(devices) < 2:
        raise ValueError("--devices: give at least two comma-separated source devices for meta-training")
    if set(devices) & set(valid_names):
        raise ValueError(f"--valid-devices must not repeat source devices: {', '.join(set(devices) & set(valid_names))}")
    with Store(args.db) as store:
        tasks = {d: load_xy(store, d, args.space) for d in devices}
        held = {d: load_xy(store, d, args.space) for d in valid_names}
    if args.space == "nb201":
        refs = None  # HELP's NB201 reference set
    elif args.space == "fbnet" and args.help_dir:
        refs = help_fbnet_reference(args.help_dir)  # HELP's FBNet reference set
    else:
        refs = common_reference(tasks, 10, args.seed)
    hp: dict = {"space": args.space, "seed": args.seed, "reference": refs}
    if args.single:
        if args.epochs is not None:
            hp["meta_iters"] = args.epochs
        pred = HelpPredictor(**hp)
    else:
        members = default_members(args.space)
        if args.epochs is not None:
            members = [{**m, "meta_iters": args.epochs} for m in members]
        pred = HelpEnsemble(**hp, members=members)
    ref_ids = pred.reference_ids() if isinstance(pred, HelpPredictor) else pred._member(0).reference_ids()
    valid = valid_tasks(held, ref_ids, 10, args.seed) if held else None
    with training_progress(f"meta-training on {len(devices)} devices", quiet=args.json) as step:
        pred.meta_fit(tasks, valid, on_iter=step)
    save_predictor(pred, Path(args.out), devices=devices)
    res = {"kind": pred.kind, "space": args.space, "devices": devices, "valid_devices": valid_names,
           "valid_spearman": getattr(pred, "valid_score_", None), "out": args.out}
    if args.json:
        print_json(res)
    else:
        extra = (f" (meta-valid ρ {pred.valid_score_:.3f} on {', '.join(valid_names)})"
                 if getattr(pred, "valid_score_", None) is not None else "")
        err.print(f"meta-trained on {', '.join(devices)}{extra}; saved {args.out}; adapt with "
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
