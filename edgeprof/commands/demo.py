"""The whole loop on this machine: profile NB201 and small-MBConv networks, train latency predictors, search.

1. Measure `--plan` networks per space on `--device` (default local-cpu) through the agent, exactly as on a
   board (job bundle, fresh process per model), into the dataset (resumable: only missing ones).
2. Train an MLP and a GNN per space on a random 80% of them and print their metrics on the other 20%; the
   predictors are saved under `--predictors`, ready for `edgeprof evaluate`, `predict` and `search`.
3. When small-MBConv networks were measured: LightNAS (driven by the GNN) to their measured median, the
   found network measured in 5 agent jobs, and the loop closed (up to 2 more networks, 3% tolerance), as
   `edgeprof search lightnas --verify --correct 2` does (`--no-search` skips it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from edgeprof.commands import DEFAULT_DB
from edgeprof.commands.dataset import summary_table
from edgeprof.commands.profile import print_report
from edgeprof.output import err, out, print_json, session_progress
from profiler.config import resolve_device
from profiler.dataset import summarize
from profiler.store import Store
from spaces import create_space

PLAN = (("nb201", 40), ("mbconv-small", 60))
SEARCH_SPACE = "mbconv-small"  # the space LightNAS searches in the demo
SEARCH_EPOCHS = 8
SEARCH_RESOLUTION = 64  # supernet images (a 224 px supernet takes ~10 s a batch on 2 cores)
VERIFY_ROUNDS = 5
CORRECT_EXTRA = 2  # the closed loop may measure this many neighbours when the found network misses
CORRECT_TOLERANCE = 0.03  # above this CPU's median-of-5 noise (a few %), so the loop does not chase noise
PREDICTORS = ("mlp", "gnn")
TRAIN_SHARE = 0.8  # random 80/20 split of each space's measurements


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="local-cpu", help="device to profile (default local-cpu)")
    p.add_argument("--db", default=DEFAULT_DB, help=f"dataset file (default {DEFAULT_DB})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--predictors", default="edgeprof-predictors",
                   help="folder for the trained predictors (default edgeprof-predictors)")
    p.add_argument("--no-train", action="store_true", help="measure only")
    p.add_argument("--no-search", action="store_true", help="measure and train, but skip the LightNAS loop")
    p.add_argument("--plan", type=parse_plan, default=PLAN,
                   help="networks per space, e.g. nb201=40,mbconv-small=20 (the default)")
    p.add_argument("--json", action="store_true", help="print the reports and summary as JSON")


def run(args: argparse.Namespace) -> int:
    from profiler.session import profile  # loads the exporters (torch, onnx): not at --help time

    config = resolve_device(args.device)
    t0 = time.perf_counter()
    reports = []
    with Store(args.db) as store:
        for space_name, n in args.plan:
            if not args.json:
                err.rule(f"{space_name}: {n} networks on {config.name}")
            with session_progress(args.json) as progress:
                rep = profile(config, create_space(space_name), n=n, seed=args.seed, batch=1, store=store,
                              progress=progress)
            reports.append(rep.to_dict())
            if not args.json:
                print_report(rep.to_dict(), args.db)
            if rep.interrupted:
                return 130
        summary = summarize(store, device=config.name)
        if not args.json:
            out.print(summary_table(summary))
        trained = [] if args.no_train else train_predictors(store, config.name, [s for s, _ in args.plan],
                                                            Path(args.predictors), args.seed, args.json,
                                                            config.setting())
    searched = None
    # the GNN drives the search: on this CPU's measurements it is far closer per network than the MLP
    # (benchmarks/local_cpu.py: Acc@10 85% against 51%), and a search lands where its predictor says
    gnn = next((t for t in trained if t["space"] == SEARCH_SPACE and t["kind"] == "gnn"), None)
    if gnn is not None and not args.no_search:
        spread = next(g["latency_ms"] for g in summary["groups"] if g["space"] == SEARCH_SPACE)
        searched = search_and_verify(config.name, gnn["path"], spread["median"], args)
    wall = time.perf_counter() - t0
    if args.json:
        print_json({"reports": reports, "summary": summary, "predictors": trained, "search": searched,
                    "wall_s": round(wall, 1)})
    else:
        err.print(f"demo finished in {wall:.0f} s; dataset: [bold]{args.db}[/] "
                  f"(try `edgeprof dataset summary --db {args.db}`)"
                  + (f"; predictors in [bold]{args.predictors}[/]" if trained else ""))
    return 0


def search_and_verify(device: str, predictor: str, target_ms: float, args: argparse.Namespace) -> dict[str, Any]:
    """LightNAS to `target_ms` with the given predictor of the searched space, then the found network measured on the
    device in VERIFY_ROUNDS agent jobs: the closed loop of measure -> predict -> search -> measure. A miss by
    more than CORRECT_TOLERANCE measures up to CORRECT_EXTRA neighbours (search --correct; hwsearch.pipeline)."""
    from rich.markup import escape

    from hwsearch import create_search, digits_proxy
    from hwsearch.pipeline import VerifyPlan, verify_result, write_result
    from predictors.io import load_predictor

    pred = load_predictor(predictor)
    if not args.json:
        err.rule(f"LightNAS on {SEARCH_SPACE}: target {target_ms:.3f} ms (the measured median) on {device}")
    search = create_search("lightnas", predictor=pred, target=target_ms, epochs=SEARCH_EPOCHS, seed=args.seed,
                           data_resolution=SEARCH_RESOLUTION, progress=not args.json)
    result = search.search(digits_proxy(resolution=SEARCH_RESOLUTION, seed=args.seed))
    plan = VerifyPlan(device, args.db, rounds=VERIFY_ROUNDS, correct=CORRECT_EXTRA, tolerance=CORRECT_TOLERANCE)
    res = verify_result(result, plan, pred, log=(lambda _: None) if args.json else (lambda t: err.print(escape(t))),
                        progress=lambda: session_progress(args.json))
    res["device"] = device
    path, png = write_result(result, res, Path(args.predictors) / "lightnas-result.json")
    v, loop = res["verify"], res["closed_loop"]
    if not args.json:
        err.print(f"found [bold]{escape(res['arch_id'])}[/]: predicted {res['predicted']:.3f} ms, measured "
                  f"{v['median']:.3f} ms (median of {v['rounds']} rounds) for a target of {target_ms:.3f} ms: "
                  f"[bold]{100 * v['error_vs_target']:+.1f}%[/] ({res['data']['name']}; search "
                  f"{res['wall_s']:.0f} s; {loop['measurements']} network(s) measured: {loop['stopped']}); "
                  f"{path}, {png}")
    return {"target_ms": target_ms, "arch_id": res["arch_id"], "predicted_ms": res["predicted"],
            "measured_ms": v["median"], "rounds_ms": v["values"], "error_vs_target": v["error_vs_target"],
            "predictor_error": v["predictor_error"], "search_s": round(res["wall_s"], 1),
            "data": res["data"]["name"], "result": str(path),
            "closed_loop": {k: loop[k] for k in ("measurements", "met", "stopped", "tolerance")},
            "searched_arch_id": res.get("searched_arch_id", res["arch_id"])}


def parse_plan(text: str) -> tuple[tuple[str, int], ...]:
    """'nb201=40,mbconv-small=20' -> (("nb201", 40), ("mbconv-small", 20)); names checked against the spaces."""
    from spaces import list_spaces

    plan = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        name, _, n = part.partition("=")
        if name not in list_spaces() or not n.isdigit() or int(n) < 1:
            raise argparse.ArgumentTypeError(f"{part!r}: expected SPACE=N with SPACE one of "
                                             f"{', '.join(list_spaces())} and N >= 1")
        plan.append((name, int(n)))
    if not plan:
        raise argparse.ArgumentTypeError("empty plan")
    return tuple(plan)


def train_predictors(store: Store, device: str, spaces: list[str], folder: Path, seed: int, quiet: bool,
                     setting: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """MLP and GNN per measured space, on a random 80% of the device's archs measured under `setting`
    (backend, precision, batch); metrics on the other 20%."""
    setting = setting or {}
    from edgeprof.commands.train import print_metrics
    from edgeprof.output import training_progress
    from predictors.data import data_fingerprint, load_xy, split
    from predictors.io import save_predictor
    from predictors.metrics import report
    from predictors.registry import create_predictor

    trained = []
    for space_name in spaces:
        ids, y = load_xy(store, device, space_name, **setting)  # what this run measured, not other runtimes
        n_train = int(TRAIN_SHARE * len(ids))
        if n_train < 2 or len(ids) - n_train < 2:
            err.print(f"[yellow]{space_name}: only {len(ids)} ok measurements; too few to train and test[/]")
            continue
        tr_ids, tr_y, te_ids, te_y = split(ids, y, n_train, seed=seed)
        desc = f"random {len(tr_ids)} train / {len(te_ids)} test, seed {seed}"
        for kind in PREDICTORS:
            pred = create_predictor(kind, space=space_name, seed=seed)
            with training_progress(f"{kind} on {space_name}", quiet=quiet) as step:
                pred.fit(tr_ids, tr_y, on_epoch=step)
            metrics = report(pred.predict(te_ids), te_y, n_target_samples=len(tr_ids), split=desc)
            path = folder / f"{device}-{space_name}-{kind}"
            save_predictor(pred, path, metrics=metrics, data_fingerprint=data_fingerprint(tr_ids, tr_y),
                           devices=[device], train_archs=tr_ids)  # evaluate skips these
            if not quiet:
                print_metrics(f"{kind} on {device}/{space_name}", metrics)
            trained.append({"space": space_name, "kind": kind, "path": str(path), "metrics": metrics})
    return trained
