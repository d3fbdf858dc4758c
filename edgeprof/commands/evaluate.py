"""Evaluate a saved predictor on a device's measurements (the archs it was not trained or adapted on)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgeprof.commands import DEFAULT_DB
from edgeprof.output import print_json
from profiler.store import Store


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictor", help="a predictor folder (from train or adapt)")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--device", required=True)
    p.add_argument("--json", action="store_true", help="print JSON")


def evaluation(predictor_dir: str | Path, db: str, device: str) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(metrics, predicted, measured) on the device's archs outside the predictor's own samples."""
    from predictors.data import load_xy
    from predictors.io import load_predictor
    from predictors.metrics import report

    path = Path(predictor_dir)
    pred = load_predictor(path)
    card = json.loads((path / "card.json").read_text())
    space = card["params"]["space"]
    with Store(db) as store:
        ids, y = load_xy(store, device, space, quantity=card.get("quantity", "latency"))
    seen = set(json.loads((path / "train_archs.json").read_text())) if (path / "train_archs.json").exists() else set()
    keep = [i for i, a in enumerate(ids) if a not in seen]
    if not keep:
        raise ValueError(f"{device}: every measured {space} arch was used to train {path}; nothing left to evaluate")
    ids = [ids[i] for i in keep]
    y = y[keep]
    p = pred.predict(ids)
    split = f"all {len(ids)} measured archs of {device} not used by the predictor"
    return report(p, y, n_target_samples=len(seen), split=split), p, y


def run(args: argparse.Namespace) -> int:
    from edgeprof.commands.train import print_metrics

    metrics, _, _ = evaluation(args.predictor, args.db, args.device)
    if args.json:
        print_json({"predictor": args.predictor, "device": args.device, "metrics": metrics})
    else:
        print_metrics(f"{args.predictor} on {args.device}", metrics)
    return 0
