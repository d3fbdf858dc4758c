"""Evaluate a saved predictor on the archs it was not trained or adapted on: a latency or energy predictor
on a device's measurements (`--device`), an accuracy predictor on a task's accuracy figures (`--task`)."""

from __future__ import annotations

import argparse

from edgeprof.arguments import add_setting_arguments, given_options, setting_kwargs
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, print_json
from profiler.store import Store
from spaces.errors import UserInputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictor", help="a predictor folder (from train or adapt)")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--device", help="the device whose measurements score a latency or energy predictor")
    p.add_argument("--task", help="the task whose accuracy figures score an accuracy predictor (e.g. cifar100)")
    p.add_argument("--metric", help="--task: the stored accuracy metric (default: the predictor's)")
    p.add_argument("--source", help="--task: the source of the figures (default: the predictor's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_setting_arguments(p)


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from predictors.evaluation import (
        card_expected_error,
        evaluate_saved,
        expected_line,
        foreign_device_warning,
        predictor_devices,
    )
    from predictors.metrics import summary_line

    if args.task:
        return evaluate_accuracy(args)
    if args.metric or args.source:
        raise UserInputError("--metric/--source go with --task (an accuracy predictor)")
    if not args.device:
        raise UserInputError("give --device (the device whose measurements score a latency or energy predictor) or "
                             "--task (the task whose accuracy scores an accuracy predictor)")
    with Store(args.db, readonly=True) as store:
        metrics, _, _ = evaluate_saved(args.predictor, store, args.device, **setting_kwargs(args))
    warning = foreign_device_warning(args.predictor, args.device)
    if warning:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    expected = card_expected_error(args.predictor)
    if args.json:
        print_json({"predictor": args.predictor, "device": args.device,
                    "predictor_devices": predictor_devices(args.predictor),
                    "warnings": [warning] if warning else [], "metrics": metrics, "expected_error": expected})
    else:
        err.print(f"{escape(str(args.predictor))} on {escape(args.device)}: {summary_line(metrics)}")
        if expected is not None:
            err.print(escape(expected_line(expected, metrics)))
    return 0


def evaluate_accuracy(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from predictors.evaluation import (
        accuracy_summary_line,
        card_expected_error,
        evaluate_saved_accuracy,
        expected_line,
        foreign_task_warning,
    )

    given = given_options(args, "device", settings=True)
    if given:
        raise UserInputError(f"{', '.join(given)}: --task scores an accuracy predictor on a task's figures, which "
                             "are no device's; drop them")
    with Store(args.db, readonly=True) as store:
        metrics, _, _ = evaluate_saved_accuracy(args.predictor, store, args.task, args.metric, args.source)
    warning = foreign_task_warning(args.predictor, args.task)
    if warning:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    expected = card_expected_error(args.predictor)
    if args.json:
        print_json({"predictor": args.predictor, "task": args.task, "quantity": "accuracy",
                    "warnings": [warning] if warning else [], "metrics": metrics, "expected_error": expected})
    else:
        err.print(f"{args.predictor} on {args.task}: {accuracy_summary_line(metrics)}")
        if expected is not None:
            err.print(escape(expected_line(expected, metrics, "accuracy")))
    return 0
