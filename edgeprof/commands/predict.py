"""Predict with a saved predictor (arch ids in the space's own format), in the unit of what it predicts:
latency in ms, energy in mJ, accuracy in % (the card's quantity)."""

from __future__ import annotations

import argparse

from edgeprof.output import out, print_json

# The JSON key of each quantity's prediction ("predicted_ms" is kept for latency, as scripts read it).
KEYS = {"latency": "predicted_ms", "energy": "predicted_mj", "accuracy": "predicted_accuracy"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictor", help="a predictor folder")
    p.add_argument("--arch", action="append", required=True, help="an architecture id (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from predictors.evaluation import refusing_unadapted
    from predictors.io import QUANTITIES, load_predictor

    pred = load_predictor(args.predictor)
    card = getattr(pred, "card_", {})
    quantity = card.get("quantity", "latency")
    unit = QUANTITIES.get(quantity, "")
    with refusing_unadapted(args.predictor):
        values = pred.predict(args.arch)
    key = KEYS.get(quantity, "predicted")
    rows = [{"arch_id": a, key: float(v)} for a, v in zip(args.arch, values, strict=True)]
    what = quantity
    if quantity == "accuracy":
        task = card.get("task") or ", ".join(getattr(pred, "meta_tasks_", [])) or "?"
        what = f"{card.get('metric')} on {task}" + ("" if card.get("task") else " (meta-init, not adapted)")
    if args.json:
        print_json({"predictor": args.predictor, "quantity": quantity, "unit": unit,
                    **({"task": card.get("task"), "metric": card.get("metric")} if quantity == "accuracy" else {}),
                    "predictions": rows})
    else:
        for r in rows:
            out.print(f"{r[key]:.4f} {unit}  {r['arch_id']}" + (f"  ({what})" if quantity == "accuracy" else ""))
    return 0
