"""Predict the latency of architectures with a saved predictor (ids in the space's own format)."""

from __future__ import annotations

import argparse

from edgeprof.output import out, print_json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictor", help="a predictor folder")
    p.add_argument("--arch", action="append", required=True, help="an architecture id (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from predictors.evaluation import refusing_unadapted
    from predictors.io import load_predictor

    pred = load_predictor(args.predictor)
    with refusing_unadapted(args.predictor):
        ms = pred.predict(args.arch)
    rows = [{"arch_id": a, "predicted_ms": float(v)} for a, v in zip(args.arch, ms, strict=True)]
    if args.json:
        print_json({"predictor": args.predictor, "predictions": rows})
    else:
        for r in rows:
            out.print(f"{r['predicted_ms']:.4f} ms  {r['arch_id']}")
    return 0
