"""Evaluate a saved predictor on a device's measurements (the archs it was not trained or adapted on)."""

from __future__ import annotations

import argparse

from edgeprof.arguments import add_setting_arguments, setting_kwargs
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, print_json
from profiler.store import Store


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictor", help="a predictor folder (from train or adapt)")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--device", required=True)
    p.add_argument("--json", action="store_true", help="print JSON")
    add_setting_arguments(p)


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from predictors.evaluation import evaluate_saved, foreign_device_warning, predictor_devices
    from predictors.metrics import summary_line

    with Store(args.db, readonly=True) as store:
        metrics, _, _ = evaluate_saved(args.predictor, store, args.device, **setting_kwargs(args))
    warning = foreign_device_warning(args.predictor, args.device)
    if warning:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    if args.json:
        print_json({"predictor": args.predictor, "device": args.device,
                    "predictor_devices": predictor_devices(args.predictor),
                    "warnings": [warning] if warning else [], "metrics": metrics})
    else:
        err.print(f"{args.predictor} on {args.device}: {summary_line(metrics)}")
    return 0
