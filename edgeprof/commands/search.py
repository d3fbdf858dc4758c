"""Hardware-aware search: `search lightnas --device DEV --predictor P --target-ms T --out result.json`.

LightNAS trains a single-path supernet of the predictor's space on `--data` (an ImageFolder-style
directory) or the built-in digits proxy, with the latency (or energy) term driven by the frozen predictor
of DEV, and returns the architecture whose predicted cost lands on the target. `--verify` then measures
that network on DEV through the agent, in `--rounds` separate jobs, and reports the measured median
against the target and the prediction. The result JSON holds the architecture, the prediction, the λ
history and the verification; a PNG beside it plots λ and the predicted cost over the search.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, print_json, session_progress


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="search", metavar="SEARCH")
    sub.required = True
    s = sub.add_parser("lightnas", help="one-shot differentiable search to a latency or energy target")
    s.add_argument("--device", required=True, help="the device the predictor is for (and --verify measures on)")
    s.add_argument("--predictor", required=True, help="a saved mlp/gnn/gcn predictor folder of DEV")
    target = s.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-ms", type=float, help="latency target (ms)")
    target.add_argument("--target-mj", type=float, help="energy target (mJ; the predictor must predict energy)")
    data = s.add_mutually_exclusive_group()
    data.add_argument("--data", help="ImageFolder-style directory (one sub-folder of images per class)")
    data.add_argument("--proxy", choices=["digits"], help="built-in proxy task (default: digits)")
    s.add_argument("--epochs", type=int, default=10, help="supernet epochs (default 10)")
    s.add_argument("--resolution", type=int, default=None,
                   help="train the supernet on images of this side (a lower-resolution proxy; default: the "
                        "space's). The predictor still judges the space's own networks.")
    s.add_argument("--batch-size", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-refine", action="store_true", help="keep the argmax architecture as it is")
    s.add_argument("--verify", action="store_true", help="measure the found network on DEV through the agent")
    s.add_argument("--rounds", type=int, default=5, help="verification rounds, each a separate job (default 5)")
    s.add_argument("--db", default=DEFAULT_DB, help=f"dataset for the verification measurements (default {DEFAULT_DB})")
    s.add_argument("--out", required=True, help="result JSON to write (the plot goes beside it as .png)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")


def check_predictor_quantity(card: dict[str, Any], predictor: str, metric: str) -> None:
    """A latency predictor cannot drive an energy target, nor the other way round."""
    quantity = card.get("quantity", "latency")
    if quantity != metric:
        flag = "--target-ms" if quantity == "latency" else "--target-mj"
        raise ValueError(f"{predictor} predicts {quantity}, not {metric}: use {flag}, or train a {metric} "
                         f"predictor (edgeprof train ... --quantity {metric})")


def check_predictor_device(card: dict[str, Any], predictor: str, device: str) -> None:
    """A predictor is for the device(s) it was trained or adapted on; searching for another is refused."""
    devices = list(card.get("devices") or [])
    if devices and device not in devices:
        raise ValueError(f"{predictor} was trained for {', '.join(devices)}, not {device}: train or adapt a "
                         f"predictor on {device}'s measurements (edgeprof train ... --device {device})")


def load_data(args: argparse.Namespace, resolution: int) -> Any:
    from hwsearch import ImageFolderDataset, digits_proxy

    if args.data:
        return ImageFolderDataset(args.data, resolution)
    return digits_proxy(resolution=resolution, seed=args.seed)


def verify(device: str, result: Any, rounds: int, db: str, quiet: bool) -> dict[str, Any]:
    """Measure a search result's network on the device in `rounds` separate jobs: the median of the round
    medians, its error against the target and the predictor's error against it."""
    from profiler.config import resolve_device
    from profiler.session import profile
    from profiler.store import Store
    from spaces import create_space

    if rounds < 1:
        raise ValueError(f"--rounds must be at least 1, got {rounds}")
    config = resolve_device(device)
    space = create_space(result.space, **result.space_config)
    arch, metric = result.arch, result.metric
    values: list[float] = []
    with Store(db) as store:
        for i in range(rounds):
            if not quiet:
                err.print(f"verification round {i + 1}/{rounds} on {config.name}")
            with session_progress(quiet) as progress:
                rep = profile(config, space, n=1, seed=0, batch=1, store=store, progress=progress,
                              archs=[tuple(arch)], remeasure=True)
            if rep.interrupted:
                raise KeyboardInterrupt
            if rep.errors:
                e = rep.errors[0]
                raise RuntimeError(f"verification on {config.name} failed: {e.get('type')}: {e.get('message')}")
            row = store.db.execute(
                "SELECT median_ms, energy_mj FROM measurements WHERE job_id = ? AND status = 'ok'",
                (rep.job_id,)).fetchone()
            value = row[0] if metric == "latency" else row[1]
            if value is None:
                raise RuntimeError(f"{config.name} measured no {metric} for the network (no power meter?)")
            values.append(float(value))
    median = float(np.median(values))
    return {"device": config.name, "rounds": rounds, "values": values, "median": median,
            "spread": float((max(values) - min(values)) / median), "error_vs_target": median / result.target - 1.0,
            "predictor_error": result.predicted / median - 1.0}


def run(args: argparse.Namespace) -> int:
    from hwsearch import create_search, plot_history
    from predictors.io import load_predictor

    if args.epochs < 2:
        raise ValueError(f"--epochs must be at least 2 (α is updated after the warm-up epochs), got {args.epochs}")
    metric = "latency" if args.target_ms is not None else "energy"
    target = args.target_ms if metric == "latency" else args.target_mj
    pred = load_predictor(args.predictor)
    check_predictor_device(getattr(pred, "card_", {}), args.predictor, args.device)
    check_predictor_quantity(getattr(pred, "card_", {}), args.predictor, metric)
    if args.verify:
        from profiler.config import resolve_device

        resolve_device(args.device)  # an unknown device fails now, not after the search
    sp = pred.space_obj()
    data = load_data(args, args.resolution or sp.input_shape()[-1])
    search = create_search("lightnas", predictor=pred, target=target, metric=metric, epochs=args.epochs,
                           batch_size=args.batch_size, seed=args.seed, refine=not args.no_refine,
                           progress=not args.json, data_resolution=args.resolution)
    t0 = time.perf_counter()
    result = search.search(data)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 verifies, writes and prints
    res = result.to_dict()
    res["device"] = args.device
    res["predictor_path"] = str(args.predictor)
    res["search_s"] = round(time.perf_counter() - t0, 1)
    if args.verify:
        res["verify"] = verify(args.device, result, args.rounds, args.db, args.json)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import json

    out.write_text(json.dumps(res, indent=2, allow_nan=False) + "\n")
    png = plot_history(res, out.with_suffix(".png"))
    unit = res["unit"]
    if args.json:
        print_json({**res, "plot": str(png)})
        return 0
    err.print(f"[bold]{res['arch_id']}[/] predicted {res['predicted']:.4g} {unit} for a target of {target:g} {unit} "
              f"({100 * res['relative_error']:+.2f}%); data: {res['data'].get('name', '?')}; "
              f"{res['search_s']:.0f} s")
    if args.verify:
        v = res["verify"]
        err.print(f"measured on {v['device']}: {v['median']:.4g} {unit} (median of {v['rounds']} rounds, spread "
                  f"{100 * v['spread']:.1f}%): {100 * v['error_vs_target']:+.2f}% from the target, predictor "
                  f"{100 * v['predictor_error']:+.2f}%")
    err.print(f"wrote {out} and {png}")
    return 0
