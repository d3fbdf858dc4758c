"""Train a predictor from the dataset: mlp, mlp-ensemble, gnn, gnn-att, gcn, gbdt, lut, flops, params (one device), or
meta (HELP-style, across devices; adapt it to a new device with `edgeprof adapt`).

With `--quantity accuracy --task T` the supervised kinds learn accuracy instead, from the store's accuracy
table (no device); `maml-acc` meta-trains Domino's accuracy predictor on the tasks of `--tasks` (adapt it to
a target task with `edgeprof adapt P --task T`). Accuracy is regressed as is (the standardised identity
target, not log): it is bounded, errors that matter are absolute (accuracy points), and log stretches the
chance-level tail (1%) while squeezing the 60-73% where the ranking matters. Trained on 320 real NB201
CIFAR-100 pairs (3 draws x 3 splits, 80 held out), the MLP's held-out rho was 0.80-0.89 with the identity
and 0.54-0.77 with log, the identity ahead in all 9.

The held-out metrics, stating the number of target-device samples and the split, go into the predictor's
card and are printed. The predictor takes the full space config its data was measured under (where meta
sources share one), so `evaluate`, `adapt` and `report` pick that config without --space-config.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeprof.arguments import add_setting_arguments, check_out_path, given_options, setting_kwargs
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, print_json
from profiler.store import Store
from spaces.errors import UserInputError

if TYPE_CHECKING:
    from predictors.hardware_adaptive import HardwareAdaptivePredictor


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", help="mlp, mlp-ensemble, gnn, gnn-att, gcn, gbdt, lut, flops, params, meta, or maml-acc")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--space", required=True)
    p.add_argument("--device", help="the device to train for (latency/energy, all kinds but meta)")
    p.add_argument("--devices", help="meta: comma-separated source devices")
    p.add_argument("--valid-devices", help="meta: held-out devices that pick the meta-iteration and the "
                                             "ensemble weights (HELP's meta-valid role)")
    p.add_argument("--single", action="store_true",
                   help="meta: one HelpPredictor instead of the space's default ensemble")
    p.add_argument("--help-dir", help="meta on fbnet: HELP's folder, for its FBNet reference archs (default: "
                                      "10 archs measured on every source device)")
    p.add_argument("--train-n", type=int, default=None,
                   help="training archs (default: 80%% of the device's or task's data; maml-acc: per task)")
    p.add_argument("--quantity", choices=["latency", "energy", "accuracy"], default="latency",
                   help="what to predict: latency (ms, default), energy per inference (mJ), or accuracy (%%, "
                        "of --metric on --task, from the store's accuracy table)")
    p.add_argument("--task", help="--quantity accuracy: the task whose accuracy to learn (e.g. cifar100)")
    p.add_argument("--tasks", help="maml-acc: comma-separated accuracy tasks to meta-train on (one is enough)")
    p.add_argument("--metric", default="test_accuracy", help="accuracy: the stored metric (default test_accuracy)")
    p.add_argument("--source", help="accuracy: the source of the figures, when the store has several")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None,
                   help="override the predictor's default epochs (meta: the meta-iterations of each member)")
    p.add_argument("--out", required=True, help="predictor folder to write")
    p.add_argument("--force", action="store_true", help="replace the predictor already in --out")
    p.add_argument("--json", action="store_true", help="print JSON (progress still goes to stderr; -q hides it)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_setting_arguments(p)


def print_metrics(title: str, m: dict[str, Any]) -> None:
    from predictors.metrics import summary_line

    err.print(f"{title}: {summary_line(m)}")


def run(args: argparse.Namespace) -> int:
    from predictors.io import check_out_folder

    check_out_path(args.out, folder=True)  # before training, which can take minutes
    check_out_folder(args.out, args.force)
    check_accuracy_arguments(args)
    if args.kind == "meta":
        return train_meta(args)
    if args.kind == "maml-acc":
        return train_maml_acc(args)
    from edgeprof.output import training_progress
    from predictors.data import data_fingerprint, load_accuracy, load_with_settings, setting_config, split
    from predictors.io import save_predictor
    from predictors.metrics import report
    from predictors.nn import TorchPredictor
    from predictors.registry import create_predictor, list_predictors, predictor_class

    kinds = list_predictors(supervised=True)
    if args.kind not in kinds:
        raise UserInputError(f"unknown predictor kind {args.kind!r} for train (known: {', '.join(kinds)}, meta, "
                             "maml-acc)")
    accuracy = args.quantity == "accuracy"
    if not accuracy and not args.device:
        raise UserInputError("--device is required for a single-device predictor")
    with Store(args.db, readonly=True) as store:
        if accuracy:
            ids, y = load_accuracy(store, args.space, args.task, args.metric, args.source)
            space_config = None  # accuracy is of the space's networks as defined, not of a measured build
        else:
            ids, y, setting = load_with_settings(store, [args.device], args.space, quantity=args.quantity,
                                                 **setting_kwargs(args))[args.device]
            space_config = setting_config(setting)
    n = args.train_n if args.train_n is not None else max(1, int(0.8 * len(ids)))
    tr_ids, tr_y, te_ids, te_y = split(ids, y, n, seed=args.seed)
    hp: dict[str, Any] = {"space": args.space, "space_config": space_config, "seed": args.seed}
    if args.epochs is not None:
        hp["epochs"] = args.epochs
    if accuracy and "target" in predictor_class(args.kind)._param_names():
        hp["target"] = "linear"  # accuracy as is (standardised), not log: see the module docstring
    pred = create_predictor(args.kind, **hp)
    t0 = time.perf_counter()
    what = args.task if accuracy else args.device
    label = f"training {args.kind} on {len(tr_ids)} {what} archs"
    if isinstance(pred, TorchPredictor):
        with training_progress(label, quiet=args.quiet) as step:
            pred.fit(tr_ids, tr_y, on_epoch=step)
    else:
        with err.status(label):
            pred.fit(tr_ids, tr_y)
    fit_s = time.perf_counter() - t0
    desc = f"random {len(tr_ids)} train / {len(te_ids)} test, seed {args.seed}"
    metrics = report(pred.predict(te_ids), te_y, n_target_samples=len(tr_ids), split=desc, positive=not accuracy)
    out = Path(args.out)
    fingerprint = data_fingerprint(tr_ids, tr_y)
    if accuracy:
        save_predictor(pred, out, metrics=metrics, data_fingerprint=fingerprint, quantity="accuracy",
                       train_archs=tr_ids, task=args.task, metric=args.metric, source=args.source)
    else:
        save_predictor(pred, out, metrics=metrics, data_fingerprint=fingerprint, devices=[args.device],
                       quantity=args.quantity, train_archs=tr_ids)
    res = {"kind": args.kind, "device": None if accuracy else args.device, "space": args.space,
           "quantity": args.quantity, "out": str(out), "fit_s": round(fit_s, 2), "metrics": metrics}
    if accuracy:
        res.update(task=args.task, metric=args.metric, source=args.source)
    if args.json:
        print_json(res)
    else:
        if accuracy:
            print_accuracy_metrics(f"{args.kind} on {args.task} {args.metric}/{args.space}", metrics)
        else:
            print_metrics(f"{args.kind} on {args.device}/{args.space}", metrics)
        err.print(f"saved {out} ({fit_s:.1f} s to fit)")
    return 0


def print_accuracy_metrics(title: str, m: dict[str, Any]) -> None:
    from predictors.evaluation import accuracy_summary_line

    err.print(f"{title}: {accuracy_summary_line(m)}")


def check_accuracy_arguments(args: argparse.Namespace) -> None:
    """--task/--tasks go with accuracy (and maml-acc), --device/--devices and the measurement setting with
    latency or energy: a mix is refused with what to drop, before any data is read."""
    if args.kind == "maml-acc":
        if args.quantity == "energy":
            raise UserInputError("--quantity energy: maml-acc predicts accuracy")
        args.quantity = "accuracy"
        if args.task and args.tasks:
            raise UserInputError("maml-acc: give the meta-training tasks with --tasks (not also --task)")
        args.tasks = args.tasks or args.task
        if not args.tasks:
            raise UserInputError("maml-acc needs --tasks: the accuracy tasks of the store to meta-train on "
                                 "(e.g. --tasks cifar100)")
    elif args.quantity == "accuracy":
        if args.kind == "meta":
            raise UserInputError("--quantity accuracy: meta is a latency predictor; meta-train an accuracy "
                                 "predictor with `edgeprof train maml-acc --tasks ...`")
        if args.tasks:
            raise UserInputError("--tasks is for maml-acc; a supervised accuracy predictor learns one --task")
        if not args.task:
            raise UserInputError("--quantity accuracy needs --task: the accuracy task of the store to learn "
                                 "(e.g. --task cifar100; `edgeprof dataset summary` lists them)")
    else:
        given = given_options(args, "task", "tasks", "source")
        if given:
            raise UserInputError(f"{', '.join(given)}: only for --quantity accuracy (and maml-acc); a "
                                 f"{args.quantity} predictor learns a device's measurements (--device)")
        return
    given = given_options(args, "device", "devices", "valid_devices", settings=True)
    if given:
        raise UserInputError(f"{', '.join(given)}: an accuracy predictor learns a task's accuracy, which is no "
                             "device's; drop them")


def train_maml_acc(args: argparse.Namespace) -> int:
    """edgeprof train maml-acc --tasks a[,b]: meta-train Domino's accuracy predictor on the store's tasks.

    Of each task, `--train-n` archs (default 80%) meta-train it; they are the predictor's train archs, so
    `adapt` and `evaluate` on one of these tasks score only archs it has never seen. The meta-init's own
    held-out metrics per task (the "transferred as is" baseline) go into the card."""
    from predictors.data import data_fingerprint, load_accuracy, split
    from predictors.io import save_predictor
    from predictors.meta_accuracy import MetaAccuracyPredictor
    from predictors.metrics import report

    tasks = list(dict.fromkeys(t for t in args.tasks.split(",") if t))
    data, held = {}, {}
    with Store(args.db, readonly=True) as store:
        for task in tasks:
            ids, y = load_accuracy(store, args.space, task, args.metric, args.source)
            n = args.train_n if args.train_n is not None else max(1, int(0.8 * len(ids)))
            tr_ids, tr_y, te_ids, te_y = split(ids, y, n, seed=args.seed)
            data[task], held[task] = (tr_ids, tr_y), (te_ids, te_y, f"random {n} train / {len(te_ids)} test, "
                                                                     f"seed {args.seed}")
    hp: dict[str, Any] = {"space": args.space, "seed": args.seed}
    if args.epochs is not None:
        hp["meta_iters"] = args.epochs
    pred = MetaAccuracyPredictor(**hp)
    t0 = time.perf_counter()
    with err.status(f"meta-training maml-acc on {', '.join(tasks)}"):
        try:
            pred.meta_fit(data)
        except ValueError as e:  # too few pairs for an episode
            raise UserInputError(str(e)) from None
    fit_s = time.perf_counter() - t0
    metrics = {task: report(pred.predict(te_ids), te_y, n_target_samples=0, split=f"meta-init as is, {desc}",
                            positive=False)
               for task, (te_ids, te_y, desc) in held.items()}
    seen = [a for ids, _ in data.values() for a in ids]
    fingerprint = data_fingerprint([f"{t}:{a}" for t, (ids, _) in data.items() for a in ids],
                                   [v for _, y in data.values() for v in y])
    out = Path(args.out)
    save_predictor(pred, out, metrics={"meta_init_by_task": metrics}, data_fingerprint=fingerprint,
                   quantity="accuracy", train_archs=seen, metric=args.metric, source=args.source)
    res = {"kind": pred.kind, "space": args.space, "quantity": "accuracy", "tasks": tasks, "metric": args.metric,
           "source": args.source, "out": str(out), "fit_s": round(fit_s, 2), "meta_init_metrics": metrics}
    if args.json:
        print_json(res)
    else:
        for task, m in metrics.items():
            print_accuracy_metrics(f"maml-acc meta-init on {task} (before adapting)", m)
        err.print(f"meta-trained on {', '.join(tasks)} in {fit_s:.0f} s; saved {out}; adapt with "
                  f"`edgeprof adapt {out} --task TASK --samples 10 --out ...`")
    return 0


def meta_predictor(args: argparse.Namespace, reference: list[str] | None,
                   space_config: dict[str, Any] | None = None) -> HardwareAdaptivePredictor:
    """The space's default ensemble, or one HelpPredictor with --single; --epochs sets the meta-iterations."""
    from predictors.help import HelpPredictor
    from predictors.help_ensemble import HelpEnsemble, default_members

    hp: dict[str, Any] = {"space": args.space, "space_config": space_config, "seed": args.seed,
                          "reference": reference}
    if args.single:
        return HelpPredictor(**hp, **({} if args.epochs is None else {"meta_iters": args.epochs}))
    members = default_members(args.space)
    if args.epochs is not None:
        members = [{**m, "meta_iters": args.epochs} for m in members]
    return HelpEnsemble(**hp, members=members)


def train_meta(args: argparse.Namespace) -> int:
    """edgeprof train meta --devices a,b,c: meta-train across source devices."""
    from edgeprof.output import training_progress
    from predictors.data import load_with_settings, setting_config
    from predictors.hardware_adaptive import common_reference, help_fbnet_reference, valid_tasks
    from predictors.io import save_predictor

    devices = [d for d in (args.devices or "").split(",") if d]
    valid_names = [d for d in (args.valid_devices or "").split(",") if d]
    if len(devices) < 2:
        raise UserInputError("--devices: give at least two comma-separated source devices for meta-training")
    if set(devices) & set(valid_names):
        both = ", ".join(set(devices) & set(valid_names))
        raise UserInputError(f"--valid-devices must not repeat source devices: {both}")
    if args.quantity != "latency":
        raise UserInputError(f"--quantity {args.quantity}: meta-training predicts latency only")
    t0 = time.perf_counter()
    with Store(args.db, readonly=True) as store:
        # the setting options pick among the settings of the devices measured under several
        loaded = load_with_settings(store, devices + valid_names, args.space, **setting_kwargs(args),
                                    only_where_ambiguous=True)
    data = {d: (ids, y) for d, (ids, y, _) in loaded.items()}
    tasks = {d: data[d] for d in devices}
    configs = {json.dumps(setting_config(loaded[d][2]), sort_keys=True) for d in devices}
    space_config = json.loads(configs.pop()) if len(configs) == 1 else None  # the sources' config, if shared
    if args.space == "nb201":
        refs = None  # HELP's NB201 reference set
    elif args.space == "fbnet" and args.help_dir:
        refs = help_fbnet_reference(args.help_dir)  # HELP's FBNet reference set
    else:
        refs = common_reference(tasks, 10, args.seed)
    pred = meta_predictor(args, refs, space_config)
    valid = valid_tasks({d: data[d] for d in valid_names}, pred.reference_ids(), 10, args.seed) or None
    with training_progress(f"meta-training on {len(devices)} devices", quiet=args.quiet) as step:
        pred.meta_fit(tasks, valid, on_iter=step)
    save_predictor(pred, Path(args.out), devices=devices)
    fit_s = time.perf_counter() - t0
    res = {"kind": pred.kind, "space": args.space, "devices": devices, "valid_devices": valid_names,
           "valid_spearman": pred.valid_score_, "out": args.out, "fit_s": round(fit_s, 2)}
    if args.json:
        print_json(res)
    else:
        extra = f" (meta-valid ρ {pred.valid_score_:.3f} on {', '.join(valid_names)})" if valid else ""
        err.print(f"meta-trained on {', '.join(devices)}{extra} in {fit_s:.0f} s; saved {args.out}; adapt with "
                  f"`edgeprof adapt {args.out} --device DEV --samples 10 --out ...`")
    return 0
