"""Zero-shot accuracy proxies: `proxies list`; `proxies evaluate` ranks sampled cells by each proxy against the
store's true accuracies (Spearman ρ, Kendall τ, all and top 5 %) and NASLib's reference scores; `proxies pareto`
compares the Pareto front each proxy finds on a board's latency table with the true one (PNG + JSON).
hwsearch.proxy_eval and hwsearch.proxy_pareto do the work."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from edgeprof.arguments import check_out_path
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import count_progress, err, print_json
from edgeprof.output import out as outc
from profiler.store import Store
from spaces.errors import UserInputError


def _common(p: argparse.ArgumentParser, n_default: str) -> None:
    p.add_argument("--space", default="nb201")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--task", required=True, help="the task of the accuracy records (e.g. cifar100)")
    p.add_argument("--metric", default="test_accuracy")
    p.add_argument("--proxies", help="comma-separated proxy names (default: every registered proxy but the "
                                     "training ones, bte and tse, which take seconds a network: name them)")
    p.add_argument("--n", default=n_default, help=f"cells to sample (seeded), or 'all' (default {n_default})")
    p.add_argument("--batch", default="digits", choices=("digits", "gaussian"),
                   help="the stand-in batch of the data-dependent proxies (we have no CIFAR images)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0, help="the sample, the batch and every network's init")
    p.add_argument("--scores", help="JSONL cache of per-cell values: read back, appended to (a rerun resumes)")
    p.add_argument("--json", action="store_true", help="print JSON")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True
    ls = sub.add_parser("list", help="the registered proxies and their flags")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ev = sub.add_parser("evaluate", help="ρ and τ of each proxy against the true accuracy (and NASLib's scores)")
    _common(ev, "100")
    ev.add_argument("--top", type=float, default=5.0, help="the top share by true accuracy, in percent (default 5)")
    ev.add_argument("--naslib", help="NASLib's zc_nasbench201.json: compare with its per-cell scores (the sample "
                                     "then takes NASLib's ~725 cells first)")
    pa = sub.add_parser("pareto", help="the Pareto front each proxy finds on a device's costs vs the true one")
    _common(pa, "500")
    pa.add_argument("--device", required=True, help="the device whose measured latencies give the costs")
    pa.add_argument("--out", required=True, help="the PNG (front.json is written beside it)")
    pa.add_argument("--backend", help="use the measurements taken with this backend")
    pa.add_argument("--precision", help="use the measurements taken at this precision")


def run(args: argparse.Namespace) -> int:
    return {"list": run_list, "evaluate": run_evaluate, "pareto": run_pareto}[args.what](args)


def run_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from hwsearch.proxies import list_proxies, proxy_class

    rows = []
    for name in list_proxies():
        cls = proxy_class(name)
        rows.append({"name": name, "data_free": cls.data_free, "needs_labels": cls.needs_labels,
                     "trains": cls.trains, "higher_is_better": cls.higher_is_better, "summary": cls.summary})
    if args.json:
        print_json({"proxies": rows})
        return 0
    t = Table("proxy", "data-free", "labels", "trains", "better", "what it measures")
    for r in rows:
        t.add_row(r["name"], "yes" if r["data_free"] else "no", "yes" if r["needs_labels"] else "no",
                  "yes" if r["trains"] else "no",
                  "higher" if r["higher_is_better"] else "lower", r["summary"])
    outc.print(t)
    return 0


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise UserInputError(f"--proxies {text!r}: give comma-separated proxy names")
    return names


def _check(args: argparse.Namespace) -> None:
    if args.batch_size < 2:
        raise UserInputError(f"--batch-size must be >= 2, got {args.batch_size}")
    if args.scores and Path(args.scores).is_dir():
        raise UserInputError(f"--scores {args.scores}: is a folder; give a .jsonl file")


def _f(x: Any, fmt: str = "{:+.3f}") -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else fmt.format(x)


def run_evaluate(args: argparse.Namespace) -> int:
    from hwsearch.proxy_eval import (
        ScoreCache,
        accuracy_space,
        create_proxies,
        evaluate,
        json_ready,
        load_naslib,
        parse_n,
        sample_cells,
    )

    n = parse_n(args.n)
    _check(args)
    if not 0 < args.top <= 100:
        raise UserInputError(f"--top is a percentage in (0, 100], got {args.top:g}")
    proxies = create_proxies(_names(args.proxies))
    naslib = load_naslib(args.naslib, args.task) if args.naslib else None
    with Store(args.db, readonly=True) as store:
        space, truth = accuracy_space(store, args.space, args.task, args.metric)
    cells = sample_cells(list(truth), n, args.seed, prefer=list(naslib or ()))
    cache = ScoreCache(args.scores)
    with count_progress("scoring cells", quiet=False) as step:
        result = evaluate(proxies, space, truth, cells, args.batch, args.batch_size, args.seed, args.top / 100,
                          cache, naslib, progress=step)
    result.update({"task": args.task, "metric": args.metric})
    result = json_ready(result)
    if args.json:
        print_json(result)
        return 0
    _print_evaluate(result, args)
    return 0


def _print_evaluate(result: dict[str, Any], args: argparse.Namespace) -> None:
    from rich.table import Table

    b = result["batch"]
    t = Table("proxy", "ρ all", "τ all", f"ρ top {args.top:g}%", f"τ top {args.top:g}%", "n", "s/cell", "failed",
              "ρ vs NASLib (n)", "NASLib ρ (n)",
              title=f"{result['space']} {args.task}: {result['n_cells']} cells, batch {b['kind']} x{b['batch_size']}, "
                    f"seed {result['seed']}")
    for r in result["proxies"]:
        nl = r["naslib"]
        t.add_row(r["name"] + ("" if r["higher_is_better"] else " (-)"), _f(r["spearman"]), _f(r["kendall"]),
                  _f(r["top"]["spearman"]), _f(r["top"]["kendall"]), f"{r['n']}/{r['top']['n']}",
                  _f(r["time_per_cell_s"], "{:.3g}"), str(r["n_failed"]),
                  "-" if not nl else f"{_f(nl['spearman_vs_ours'])} ({nl['n_common']})",
                  "-" if not nl else f"{_f(nl['naslib_spearman'])} ({nl['naslib_n']})")
    outc.print(t)
    for r in result["proxies"]:
        for f in r["failures"][:2]:
            err.print(f"[yellow]{r['name']} failed:[/] {f}", markup=True)
    err.print(f"{result['computed']} values computed, {result['cached']} read from "
              f"{result['scores_file'] or 'no cache'}; n = cells all/top; (-): lower is better, negated")


def run_pareto(args: argparse.Namespace) -> int:
    from hwsearch.proxy_eval import ScoreCache, create_proxies, json_ready, parse_n
    from hwsearch.proxy_pareto import evaluate_pareto, plot_proxy_fronts

    n = parse_n(args.n)
    _check(args)
    png = check_out_path(args.out, folder=False)
    if png.suffix.lower() != ".png":
        raise UserInputError(f"--out {args.out}: give a .png file (the JSON goes beside it)")
    proxies = create_proxies(_names(args.proxies))
    setting = {"backend": args.backend, "precision": args.precision}
    with Store(args.db, readonly=True) as store, count_progress("scoring cells") as step:
        table, result = evaluate_pareto(store, proxies, args.device, args.space, args.task, n, args.batch,
                                        args.batch_size, args.seed, ScoreCache(args.scores), args.metric, setting,
                                        progress=step)
    plot_proxy_fronts(table, result, png)
    jpath = png.with_suffix(".json")
    result = json_ready({**result, "png": str(png), "json": str(jpath)})
    jpath.write_text(json.dumps(result, indent=1) + "\n")
    if args.json:
        print_json(result)
        return 0
    _print_pareto(result)
    return 0


def _print_pareto(result: dict[str, Any]) -> None:
    from rich.table import Table

    unit = result["unit"]
    qs = result["named_quantiles"]
    rows = [r for r in result["proxies"] if "error" not in r]
    budgets = [] if not rows else [x["budget"] for x in rows[0]["named"]]
    t = Table("proxy", "n", "gap mean", "gap max", *[f"gap @{b:.3g} {unit} ({100 * q:g}%)" for q, b in
                                                     zip(qs, budgets, strict=True)], "HV ratio", "failed",
              title=f"{result['space']} {result['task']} on {result['device']}: accuracy gap (pp) between the "
                    f"truly best cell and the proxy's pick, per {result['quantity']} budget")
    for r in result["proxies"]:
        if "error" in r:
            t.add_row(r["name"], str(r["n"]), r["error"])
            continue
        t.add_row(r["name"], str(r["n"]), _f(r["gap"]["mean"], "{:.2f}"), _f(r["gap"]["max"], "{:.2f}"),
                  *[_f(x["gap"], "{:.2f}") for x in r["named"]], _f(r["hypervolume_ratio"], "{:.3f}"),
                  str(r["n_failed"]))
    outc.print(t)
    err.print(f"wrote {result['png']} and {result['json']}; budget (q%): the cost within which q% of the cells "
              "fall; HV ratio: the proxy front's hypervolume (at true accuracies) over the true front's")
