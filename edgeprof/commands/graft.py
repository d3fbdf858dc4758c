"""Domino's grafted networks: `train` them briefly on a proxy task into the accuracy table, `merge` one into
the deployed network and export it as ONNX.

`graft train` trains one network at a time and stores each (mask, accuracy) pair before the next starts:
Ctrl-C keeps what is stored (exit 130) and a rerun with the same options trains only the rest. Recipe: SGD
momentum 0.9, weight decay 4e-5, cosine lr to 0, batch 32, 1 epoch at lr 0.05 (the options change it; a task
keeps one recipe). `--data digits` is scikit-learn's digits (a CPU proxy: 8x8 digits upsampled); a folder
`<class>/<images>` is any ImageFolder. `graft merge` folds a (trained) grafted network into one convolution
per grafted block, checks it against the grafted network (max relative error <= 1e-4) and writes the ONNX file.
"""

from __future__ import annotations

import argparse
from typing import Any

from edgeprof.commands import DEFAULT_DB
from edgeprof.output import count_progress, err, print_json
from spaces.errors import UserInputError

EXIT_INTERRUPTED = 130


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    t = sub.add_parser("train", help="train grafted networks on a proxy task and store their accuracy")
    t.add_argument("--space", required=True, help="a grafting space (mobilenetv2-small, mobilenetv2, resnet50, "
                                                  "resnet50-small) or any other space")
    t.add_argument("--n", type=int, help="networks to train (the space's seeded sample)")
    t.add_argument("--masks", help="comma-separated masks to train instead of --n (e.g. 0110...,1111...)")
    t.add_argument("--seed", type=int, default=0, help="picks the sample and seeds each network's training")
    t.add_argument("--data", default="digits", help="'digits' (the CPU proxy, default) or an ImageFolder "
                                                    "<folder>/<class>/<images>")
    t.add_argument("--digits-n", type=int, help="digits: keep the first N images (a smoke size)")
    t.add_argument("--task", required=True, help="the task name the accuracies are stored under "
                                                 "(e.g. digits-r32)")
    t.add_argument("--resolution", type=int, default=32, help="input resolution (default 32)")
    t.add_argument("--epochs", type=int, default=1, help="epochs per network (default 1)")
    t.add_argument("--batch-size", type=int, default=32, help="default 32")
    t.add_argument("--lr", type=float, default=0.05, help="peak SGD learning rate, cosine to 0 (default 0.05)")
    t.add_argument("--save-weights", metavar="DIR", help="save each trained network's state_dict as "
                                                         "DIR/<space>-<mask>.pt (for graft merge --weights)")
    t.add_argument("--db", default=DEFAULT_DB)
    t.add_argument("--json", action="store_true", help="print JSON (no progress bar)")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    m = sub.add_parser("merge", help="merge a grafted network into the deployed one and export it as ONNX")
    m.add_argument("--space", required=True, help="a grafting space (mobilenetv2, resnet50, ...-small)")
    m.add_argument("--mask", required=True, help="the mask: one bit per block, 0 = grafted, 1 = original")
    m.add_argument("--weights", help="the grafted network's state_dict (graft train --save-weights); default: "
                                     "the seeded initial weights")
    m.add_argument("--out", required=True, help="the ONNX file to write")
    m.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    return run_train(args) if args.action == "train" else run_merge(args)


def run_train(args: argparse.Namespace) -> int:
    from profiler.proxy_accuracy import (
        Recipe,
        check_same_recipe,
        load_data,
        parse_masks,
        space_for,
        stored_recipes,
        train_and_store,
    )
    from profiler.store import Store

    if (args.n is None) == (args.masks is None):
        raise UserInputError("give --n (networks to sample) or --masks (the masks to train), one of them")
    if args.n is not None and args.n < 1:
        raise UserInputError(f"--n must be >= 1 (networks to train), got {args.n}")
    space_for(args.space, 10)  # an unknown space fails before the data is read
    recipe = Recipe(data=args.data, resolution=args.resolution, epochs=args.epochs, batch_size=args.batch_size,
                    lr=args.lr, digits_n=args.digits_n).check()
    data = load_data(recipe)
    space = space_for(args.space, data[0].num_classes)
    archs = parse_masks(space, args.masks) if args.masks else None
    quiet = args.quiet or args.json
    with Store(args.db) as store:  # a task trained with another recipe: refused before any bar is drawn
        check_same_recipe(stored_recipes(store, space.name, args.task), recipe, space.name, args.task)
    with Store(args.db) as store, count_progress(f"training {args.space} on {args.task}", quiet) as step:
        total = [0]

        def on_start(todo: int) -> None:
            total[0] = todo
            step(0, todo, "")

        def on_network(row: dict[str, Any]) -> None:
            step(len(done), total[0], f"{row['arch_id']} {row['accuracy']:.1f}% ({row['wall_s']:.1f} s)")

        done: list[Any] = []
        report = train_and_store(store, args.space, args.task, recipe, n=args.n, seed=args.seed, archs=archs,
                                 save_weights=args.save_weights, on_start=on_start,
                                 on_network=lambda row: (done.append(row), on_network(row)))
    rep = {**report.to_dict(), "recipe": recipe.as_dict(), "db": args.db}
    if args.json:
        print_json(rep)
    else:
        accs = [r["accuracy"] for r in report.trained]
        times = [r["wall_s"] for r in report.trained]
        line = f"{report.space} on {report.task}: trained {len(accs)}, skipped {report.skipped} already stored"
        if accs:
            line += (f"; accuracy {min(accs):.1f}-{max(accs):.1f}% (mean {sum(accs) / len(accs):.1f}), "
                     f"{sum(times) / len(times):.1f} s per network")
        err.print(line + (f" [yellow](interrupted: {report.remaining} left, rerun to finish)[/]"
                          if report.interrupted else ""))
        err.print(f"dataset: {args.db} (source edgeprof-proxy, metric test_accuracy)")
    return EXIT_INTERRUPTED if report.interrupted else 0


def run_merge(args: argparse.Namespace) -> int:
    from edgeprof.arguments import check_out_path
    from profiler.proxy_accuracy import export_merged, merge_checked
    from spaces import create_space

    check_out_path(args.out, folder=False)
    space = create_space(args.space)
    arch = space.parse(args.mask)
    merged, check = merge_checked(space, arch, args.weights)
    res = {**check, **export_merged(space, arch, merged, args.out)}
    if args.json:
        print_json(res)
    else:
        err.print(f"{space.name} {check['arch_id']}: {check['convs_grafted']} convs grafted -> "
                  f"{check['convs_merged']} merged; merged vs grafted max relative error "
                  f"{check['max_rel_error']:.2e} (max abs {check['max_abs_error']:.2e}, tolerance "
                  f"{check['tolerance']:g})")
        err.print(f"wrote {res['out']} ({res['nbytes'] / 1e6:.2f} MB, sha256 {res['sha256'][:12]})")
    return 0
