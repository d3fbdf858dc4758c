"""Hardware-aware search: `search lightnas --device DEV --predictor P --target-ms T --out result.json`.

LightNAS trains a single-path supernet of the predictor's space on `--data` (an ImageFolder-style
directory) or the built-in digits proxy, with the latency (or energy) term driven by the frozen predictor
of DEV, and returns the architecture whose predicted cost lands on the target. `--verify` then measures
that network on DEV through the agent, in `--rounds` separate jobs, and reports the measured median
against the target and the prediction. `--correct N` closes the loop: while the measured network misses
the target by more than `--tolerance`, up to N neighbours are measured, chosen by predictions corrected
with the measured/predicted ratios (hwsearch.close_loop); the result is the measured one nearest the target. The result JSON holds the architecture, the prediction, the λ
history and the verification; a PNG beside it plots λ and the predicted cost over the search.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
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
    s.add_argument("--correct", type=int, default=0, metavar="N",
                   help="with --verify: when the found network misses the target by more than --tolerance, "
                        "measure up to N neighbours that the measurements point to, and keep the measured "
                        "network nearest the target (default 0: verify only)")
    s.add_argument("--loop-predictor", help="with --correct: a saved predictor of DEV (say a GNN) to judge the "
                                            "loop's candidates instead of --predictor")
    s.add_argument("--tolerance", type=float, default=0.02,
                   help="relative miss --correct accepts (default 0.02); keep it above the board's noise")
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


def measure_rounds(device: str, space: Any, arch: Sequence[int], metric: str, rounds: int, db: str,
                   quiet: bool) -> list[float]:
    """One network measured on the device in `rounds` separate agent jobs: each job's median (or energy)."""
    from profiler.config import resolve_device
    from profiler.session import profile
    from profiler.store import Store

    if rounds < 1:
        raise ValueError(f"--rounds must be at least 1, got {rounds}")
    config = resolve_device(device)
    values: list[float] = []
    with Store(db) as store:
        for i in range(rounds):
            if not quiet:
                err.print(f"measuring {space.arch_id(arch)}: round {i + 1}/{rounds} on {config.name}")
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
    return values


def verification(device: str, values: list[float], target: float, predicted: float) -> dict[str, Any]:
    """The median of the round medians, its error against the target and the predictor's against it (pure)."""
    median = float(np.median(values))
    return {"device": device, "rounds": len(values), "values": values, "median": median,
            "spread": float((max(values) - min(values)) / median), "error_vs_target": median / target - 1.0,
            "predictor_error": predicted / median - 1.0}


def verify(device: str, result: Any, rounds: int, db: str, quiet: bool) -> dict[str, Any]:
    """Measure a search result's network on the device in `rounds` separate jobs (see `verification`)."""
    from spaces import create_space

    space = create_space(result.space, **result.space_config)
    values = measure_rounds(device, space, result.arch, result.metric, rounds, db, quiet)
    return verification(device, values, result.target, result.predicted)


def known_measurements(db: str, device: str, space: Any, metric: str) -> list[tuple[tuple[int, ...], float]]:
    """(arch, cost) of every network of `space` the dataset measured on the device: the closed loop's prior
    probes. Empty when there are none (or several settings the store cannot pick between)."""
    from predictors.data import load_xy
    from profiler.config import resolve_device
    from profiler.store import Store

    config = resolve_device(device)
    with Store(db) as store:
        try:
            ids, y = load_xy(store, config.name, space.name, backend=config.runtime.backend,
                             precision=config.runtime.precision, batch=1, space_config=space.config,
                             quantity=metric)
        except ValueError:
            return []
    return [(space.parse(a), float(v)) for a, v in zip(ids, y, strict=True)]


def correct(device: str, search: Any, result: Any, rounds: int, db: str, tolerance: float, extra: int,
            quiet: bool, loop_predictor: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify the found network and, while it misses the target by more than `tolerance`, measure up to
    `extra` neighbours the measurements point to (hwsearch.close_loop); returns the closed loop's record
    and the verification of the network it settles on (always a measured one).

    `loop_predictor` (default: the search's own) judges the candidates: the loop wants the predictor that
    is most accurate per network (a GNN), the search one with smooth gradients (an MLP)."""
    from hwsearch import as_cost_model, close_loop
    from hwsearch.cost import check_space
    from spaces import create_space

    space = create_space(result.space, **result.space_config)
    model = search.cost_model_
    if loop_predictor is not None:
        model = as_cost_model(loop_predictor, result.metric)
        check_space(model, space)
    measured: dict[tuple[int, ...], list[float]] = {}

    def measure(arch: tuple[int, ...]) -> float:
        measured[arch] = measure_rounds(device, space, arch, result.metric, rounds, db, quiet)
        return float(np.median(measured[arch]))

    def report(p: Any) -> None:
        if not quiet:
            err.print(f"  {space.arch_id(p.arch)}: measured {p.measured:.4g}, predicted {p.predicted:.4g} "
                      f"({100 * p.gap(result.target):+.2f}% from the target)")

    loop = close_loop(result.arch, model, space, result.target, measure, alpha=search.alpha_,
                      tolerance=tolerance, max_measurements=1 + extra, on_probe=report,
                      known=known_measurements(db, device, space, result.metric))
    record = {**loop.to_dict(), "predictor": model.source}
    return record, verification(device, measured[loop.arch], result.target, loop.predicted)


def adopt_closed_loop(res: dict[str, Any], loop: dict[str, Any], space: Any) -> None:
    """The network to use is the one the closed loop settled on: it becomes the result's arch, and the
    searched one is kept as `searched_arch` (in place)."""
    res["closed_loop"] = loop
    if loop["arch"] != res["arch"]:
        res["searched_arch"], res["searched_arch_id"] = res["arch"], res["arch_id"]
        res["arch"], res["arch_id"] = loop["arch"], space.arch_id(loop["arch"])
        res["predicted"] = loop["predicted"]
        res["relative_error"] = res["predicted"] / res["target"] - 1.0


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
    if args.correct < 0:
        raise ValueError(f"--correct must be 0 or more, got {args.correct}")
    if args.correct and not args.verify:
        raise ValueError("--correct measures networks on the device: add --verify")
    if args.loop_predictor and not args.correct:
        raise ValueError("--loop-predictor judges the candidates of --correct: add --correct N")
    loop_pred = None
    if args.loop_predictor:
        loop_pred = load_predictor(args.loop_predictor)
        check_predictor_device(getattr(loop_pred, "card_", {}), args.loop_predictor, args.device)
        check_predictor_quantity(getattr(loop_pred, "card_", {}), args.loop_predictor, metric)
    if not 0 < args.tolerance < 1:
        raise ValueError(f"--tolerance must be a fraction in (0, 1), got {args.tolerance}")
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
    if args.verify and args.correct:
        res["closed_loop"], res["verify"] = correct(args.device, search, result, args.rounds, args.db,
                                                    args.tolerance, args.correct, args.json, loop_pred)
        adopt_closed_loop(res, res["closed_loop"], pred.space_obj())
    elif args.verify:
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
                  f"{100 * v['predictor_error']:+.2f}%"
                  + (f"; closed loop: {res['closed_loop']['measurements']} network(s) measured, "
                     f"{res['closed_loop']['stopped']}" if "closed_loop" in res else ""))
    err.print(f"wrote {out} and {png}")
    return 0
