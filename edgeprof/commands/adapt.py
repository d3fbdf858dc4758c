"""Adapt a meta-trained predictor to its target from K samples of it: a HELP-style latency predictor to a
new device (`--device`), or a maml-acc accuracy predictor to a task (`--task`).

The device also needs its latencies on the predictor's reference architectures (its hardware
embedding); the error lists them when they are not in the dataset, so you can profile them. A maml-acc
predictor adapted to a task it was meta-trained on draws its K pairs, and is scored, only among the
archs meta-training never saw.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgeprof.arguments import add_setting_arguments, check_out_path, given_options, setting_kwargs
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, print_json
from profiler.store import Store
from spaces.errors import UserInputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictor", help="a meta-trained predictor folder (edgeprof train meta, or train maml-acc)")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--device", help="the device to adapt a latency predictor (train meta) to")
    p.add_argument("--task", help="the accuracy task to adapt a maml-acc predictor to (e.g. cifar100)")
    p.add_argument("--metric", help="maml-acc: the stored accuracy metric (default: the predictor's)")
    p.add_argument("--source", help="maml-acc: the source of the figures (default: the predictor's)")
    p.add_argument("--samples", type=int, default=10, help="K measured archs (or accuracy pairs) (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for the adapted predictor")
    p.add_argument("--force", action="store_true", help="replace the predictor already in --out")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_setting_arguments(p)


def run(args: argparse.Namespace) -> int:
    from predictors.hardware_adaptive import HardwareAdaptivePredictor
    from predictors.io import check_out_folder, load_predictor
    from predictors.meta_accuracy import MetaAccuracyPredictor

    if args.samples < 2:
        raise UserInputError(f"--samples: at least 2 measurements are needed to adapt, got {args.samples}")
    check_out_path(args.out, folder=True)
    check_out_folder(args.out, args.force)
    pred = load_predictor(args.predictor)
    if isinstance(pred, MetaAccuracyPredictor):
        return adapt_accuracy(args, pred)
    if not isinstance(pred, HardwareAdaptivePredictor):
        raise UserInputError(f"{args.predictor} is a {pred.kind!r} predictor, not a meta-trained one (edgeprof "
                             "train meta, or train maml-acc)")
    given = given_options(args, "task", "metric", "source")
    if given:
        raise UserInputError(f"{', '.join(given)}: {args.predictor} is a {pred.kind!r} latency predictor, adapted "
                             "to a device with --device (--task adapts a maml-acc accuracy predictor)")
    if not args.device:
        raise UserInputError(f"--device is required: the device to adapt the {pred.kind!r} latency predictor "
                             f"{args.predictor} to")
    return adapt_latency(args, pred)


def adapt_latency(args: argparse.Namespace, pred: Any) -> int:
    from predictors.evaluation import held_out, load_for
    from predictors.hardware_adaptive import draw_support
    from predictors.io import save_predictor
    from predictors.metrics import summary_line

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


def adapt_accuracy(args: argparse.Namespace, pred: Any) -> int:
    """maml-acc: K pairs of the task drawn (seeded) from the store's figures, scored on all the others."""
    from predictors.data import load_accuracy
    from predictors.evaluation import accuracy_summary_line, held_out
    from predictors.hardware_adaptive import draw_support
    from predictors.io import read_train_archs, save_predictor

    given = given_options(args, "device", settings=True)
    if given:
        raise UserInputError(f"{', '.join(given)}: {args.predictor} is a maml-acc accuracy predictor, adapted to a "
                             "task with --task, not to a device")
    if not args.task:
        raise UserInputError(f"--task is required: the accuracy task to adapt the maml-acc predictor "
                             f"{args.predictor} to (e.g. --task cifar100)")
    card = pred.card_
    metric = args.metric or card.get("metric") or "test_accuracy"
    source = args.source if args.source is not None else card.get("source")
    with Store(args.db, readonly=True) as store:
        ids, y = load_accuracy(store, pred.space, args.task, metric, source)
    seen: set[str] = set()
    if args.task in pred.meta_tasks_:  # meta-trained on this task: adapt and score on archs it never saw
        seen = read_train_archs(args.predictor)
    keep = [i for i, a in enumerate(ids) if a not in seen]
    where = f"task {args.task}" + (f" (without the {len(seen)} archs meta-training saw)" if seen else "")
    support, support_y, _, rest, rest_y = draw_support([ids[i] for i in keep], y[keep], [], args.samples,
                                                       args.seed, where)
    pred.adapt(support, support_y)
    metrics, _, _ = held_out(pred, rest, rest_y, (), f"task {args.task}", n_target_samples=args.samples)
    out = Path(args.out)
    save_predictor(pred, out, metrics=metrics, quantity="accuracy", train_archs=[*support, *seen], task=args.task,
                   metric=metric, source=source)
    if args.json:
        print_json({"task": args.task, "metric": metric, "source": source, "out": str(out),
                    "samples": args.samples, "meta_tasks": pred.meta_tasks_, "metrics": metrics})
    else:
        err.print(f"adapted to {args.task} ({metric}) with {args.samples} pairs: {accuracy_summary_line(metrics)}")
        err.print(f"saved {out}")
    return 0
