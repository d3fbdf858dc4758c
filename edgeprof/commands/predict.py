"""Predict with a saved predictor (arch ids in the space's own format), in the unit of what it predicts:
latency in ms, energy in mJ, accuracy in % (the card's quantity). `--interval LEVEL` adds a range around each
prediction from the leave-one-out error `edgeprof adapt` writes into an adapted predictor's card."""

from __future__ import annotations

import argparse
from typing import Any

from edgeprof.output import out, print_json
from spaces.errors import UserInputError

# The JSON key of each quantity's prediction ("predicted_ms" is kept for latency, as scripts read it).
KEYS = {"latency": "predicted_ms", "energy": "predicted_mj", "accuracy": "predicted_accuracy"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictor", help="a predictor folder")
    p.add_argument("--arch", action="append", required=True, help="an architecture id (repeatable)")
    p.add_argument("--interval", type=float, metavar="LEVEL",
                   help="also print a LEVEL prediction interval (e.g. 0.9) from the card's leave-one-out error "
                        "(adapted few-shot predictors; K samples support levels up to K/(K+1))")
    p.add_argument("--json", action="store_true", help="print JSON")


def expected_of(folder: str, card: dict[str, Any]) -> dict[str, Any]:
    """The card's expected error, or the user's next step when it has none."""
    from predictors.uncertainty import check_expected

    expected = card.get("expected_error")
    if expected is None:
        raise UserInputError(f"--interval: {folder} has no expected error on its card, so no interval; it is "
                             "written by `edgeprof adapt` (leave-one-out over the K samples): adapt the meta-trained "
                             "predictor again, e.g. `edgeprof adapt META --db DB --device DEVICE --samples 10 --out "
                             "ADAPTED`, and predict with ADAPTED")
    return dict(check_expected(expected))


def run(args: argparse.Namespace) -> int:
    from predictors.evaluation import refusing_unadapted
    from predictors.io import QUANTITIES, load_predictor
    from predictors.uncertainty import interval

    level = args.interval
    if level is not None and not 0 < level < 1:
        raise UserInputError(f"--interval: the level is a share between 0 and 1 (e.g. 0.9 for 90%), got {level:g}")
    pred = load_predictor(args.predictor)
    card = getattr(pred, "card_", {})
    quantity = card.get("quantity", "latency")
    unit = QUANTITIES.get(quantity, "")
    with refusing_unadapted(args.predictor):
        values = pred.predict(args.arch)
    key = KEYS.get(quantity, "predicted")
    rows: list[dict[str, Any]] = [{"arch_id": a, key: float(v)} for a, v in zip(args.arch, values, strict=True)]
    band: dict[str, Any] = {}
    if level is not None:
        expected = expected_of(args.predictor, card)
        lo, hi = interval(expected, values, level)
        lo_key, hi_key = key.replace("predicted", "lo"), key.replace("predicted", "hi")
        for r, a, b in zip(rows, lo, hi, strict=True):
            r[lo_key], r[hi_key] = float(a), float(b)
        band = {"interval": {"level": level, "k": expected["k"], "method": expected["method"],
                             "expected_mape": expected["mape"]}}
    what = quantity
    if quantity == "accuracy":
        task = card.get("task") or ", ".join(getattr(pred, "meta_tasks_", [])) or "?"
        what = f"{card.get('metric')} on {task}" + ("" if card.get("task") else " (meta-init, not adapted)")
    if args.json:
        print_json({"predictor": args.predictor, "quantity": quantity, "unit": unit,
                    **({"task": card.get("task"), "metric": card.get("metric")} if quantity == "accuracy" else {}),
                    **band, "predictions": rows})
    else:
        for r in rows:
            span = (f"  ({100 * level:g}% interval {r[lo_key]:.4f} to {r[hi_key]:.4f} {unit})"
                    if level is not None else "")
            out.print(f"{r[key]:.4f} {unit}{span}  {r['arch_id']}" + (f"  ({what})" if quantity == "accuracy" else ""))
    return 0
