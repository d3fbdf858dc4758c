"""Adapt a meta-trained (HELP-style) predictor to a new device from K measurements of it.

The device also needs its latencies on the predictor's reference architectures (its hardware
embedding); the error lists them when they are not in the dataset, so you can profile them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeprof.arguments import add_setting_arguments, check_out_path, setting_kwargs
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, print_json
from profiler.store import Store
from spaces.errors import UserInputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictor", help="a meta-trained predictor folder (edgeprof train meta)")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--device", required=True)
    p.add_argument("--samples", type=int, default=10, help="K measured archs of the device (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for the adapted predictor")
    p.add_argument("--force", action="store_true", help="replace the predictor already in --out")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_setting_arguments(p)


def run(args: argparse.Namespace) -> int:
    from predictors.evaluation import held_out, load_for
    from predictors.hardware_adaptive import HardwareAdaptivePredictor, draw_support
    from predictors.io import check_out_folder, load_predictor, save_predictor
    from predictors.metrics import summary_line

    if args.samples < 2:
        raise UserInputError(f"--samples: at least 2 measurements are needed to adapt, got {args.samples}")
    check_out_path(args.out, folder=True)
    check_out_folder(args.out, args.force)
    pred = load_predictor(args.predictor)
    if not isinstance(pred, HardwareAdaptivePredictor):
        raise UserInputError(f"{args.predictor} is a {pred.kind!r} predictor, not a meta-trained latency predictor "
                         "(edgeprof train meta)")
    with Store(args.db, readonly=True) as store:
        ids, y = load_for(pred, store, args.device, **setting_kwargs(args))  # the predictor's space config
    refs = pred.reference_ids()
    support, support_y, reference, rest, rest_y = draw_support(ids, y, refs, args.samples, args.seed, args.device)
    pred.adapt(support, support_y, reference=reference)
    out = Path(args.out)
    save_predictor(pred, out, devices=[args.device], train_archs=[*support, *refs])
    metrics, _, _ = held_out(pred, rest, rest_y, (), args.device, n_target_samples=args.samples)
    if args.json:
        print_json({"device": args.device, "out": str(out), "samples": args.samples, "metrics": metrics})
    else:
        err.print(f"adapted to {args.device} with {args.samples} samples (+{len(refs)} reference archs): "
                  f"{summary_line(metrics)}")
        err.print(f"saved {out}")
    return 0
