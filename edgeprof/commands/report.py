"""Reports people look at: `report predictor P --device DEV --out DIR` writes a predicted-vs-measured
scatter (PNG) and the metrics table (Markdown and JSON); `report search RESULT.json ... --device DEV --task T`
judges search results on both axes, cost against the target and accuracy against the space's true Pareto front
(hwsearch.judge does the work), and draws them on the space (PNG)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from edgeprof.arguments import add_setting_arguments, check_out_path, setting_kwargs
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, print_json
from edgeprof.output import out as outc
from profiler.store import Store
from spaces.errors import UserInputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", metavar="WHAT")
    sub.required = True
    r = sub.add_parser("predictor", help="scatter plot and metrics of a predictor on a device")
    r.add_argument("predictor")
    r.add_argument("--db", default=DEFAULT_DB)
    r.add_argument("--device", required=True)
    r.add_argument("--out", required=True, help="folder for scatter.png, metrics.md, metrics.json")
    r.add_argument("--json", action="store_true", help="print JSON")
    add_setting_arguments(r)
    s = sub.add_parser("search", help="judge search results: cost vs target, accuracy and regret vs the true front")
    s.add_argument("results", nargs="+", metavar="RESULT", help="saved search results (JSON of edgeprof search)")
    s.add_argument("--db", default=DEFAULT_DB)
    s.add_argument("--device", required=True, help="the device whose measurements give the space's costs")
    s.add_argument("--task", required=True, help="the task of the accuracy records (e.g. cifar100)")
    s.add_argument("--metric", default="test_accuracy", help="the accuracy metric (default: test_accuracy)")
    s.add_argument("--source", help="the accuracy records' source, when the store holds several")
    s.add_argument("--target", type=float, default=None, metavar="T",
                   help="judge against this target (in the results' unit) instead of the one each result was "
                        "searched for: a network searched on a group's representative, judged on a member at "
                        "the member's own budget (edgeprof devices group)")
    s.add_argument("--out", help="the PNG (default: beside the first result, <stem>.report.png)")
    s.add_argument("--json", action="store_true", help="print JSON")
    add_setting_arguments(s)


def run(args: argparse.Namespace) -> int:
    if args.what == "search":
        return run_search(args)
    return run_predictor(args)


def run_predictor(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rich.markup import escape

    from predictors.evaluation import evaluate_saved, foreign_device_warning

    check_out_path(args.out, folder=True)  # before the evaluation
    with Store(args.db, readonly=True) as store:
        metrics, pred, true = evaluate_saved(args.predictor, store, args.device, **setting_kwargs(args))
    warning = foreign_device_warning(args.predictor, args.device)
    if warning:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(true, pred, s=6, alpha=0.5)
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="ideal")
    ax.plot([lo, hi], [lo * 1.1, hi * 1.1], ":", color="gray", lw=1, label="±10%")
    ax.plot([lo, hi], [lo * 0.9, hi * 0.9], ":", color="gray", lw=1)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(f"{Path(args.predictor).name} on {args.device}\nρ={metrics['spearman']:.3f}  "
                 f"Acc@10={100 * metrics['acc10']:.1f}%  MAPE={metrics['mape']:.1f}%", fontsize=10)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "scatter.png", dpi=120)
    plt.close(fig)
    rows = [("Spearman ρ", f"{metrics['spearman']:.4f}"), ("Kendall τ", f"{metrics['kendall']:.4f}"),
            ("Acc@5", f"{100 * metrics['acc5']:.1f}%"), ("Acc@10", f"{100 * metrics['acc10']:.1f}%"),
            ("MAPE", f"{metrics['mape']:.2f}%"), ("RMSE", f"{metrics['rmse']:.4f} ms"),
            ("MAE", f"{metrics['mae']:.4f} ms"), ("test archs", str(metrics["n"])),
            ("target-device samples", str(metrics["n_target_samples"])), ("split", metrics["split"])]
    (out / "metrics.md").write_text("| metric | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if args.json:
        print_json({"out": str(out), "metrics": metrics, "warnings": [warning] if warning else []})
    else:
        err.print(f"wrote {out / 'scatter.png'}, {out / 'metrics.md'}")
    return 0


def load_result(path: str) -> dict[str, Any]:
    """A saved search result, or a UserInputError naming the file: unreadable JSON, not a search result, a
    field missing."""
    from hwsearch.result import FORMAT

    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise UserInputError(f"{p}: is a folder; give a search result (JSON)") from None
    except UnicodeDecodeError:
        raise UserInputError(f"{p}: not a text file; give a search result (JSON)") from None
    except json.JSONDecodeError as e:
        raise UserInputError(f"{p}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise UserInputError(f"{p}: not a search result (format {got!r}, expected {FORMAT!r}; made by "
                             "edgeprof search ... --out)")
    missing = [k for k in ("search", "space", "arch_id", "target", "metric") if k not in data]
    if missing:
        raise UserInputError(f"{p}: a search result without {', '.join(missing)}")
    t = data["target"]
    if t is not None and (isinstance(t, bool) or not isinstance(t, int | float) or t <= 0):
        raise UserInputError(f"{p}: target {t!r} is not a positive number (or null: a search without a target)")
    return data


def default_png(first: str) -> Path:
    p = Path(first)
    return p.with_name(f"{p.stem}.report.png")


def run_search(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from hwsearch.judge import judge, load_table, plot_search_report

    results = [load_result(r) for r in args.results]
    if args.target is not None:
        if not (math.isfinite(args.target) and args.target > 0):
            raise UserInputError(f"--target must be a positive number, got {args.target}")
        results = [{**r, "searched_target": r["target"], "target": args.target} for r in results]
    out = Path(args.out or default_png(args.results[0]))
    if out.is_dir():
        raise UserInputError(f"--out {out}: is a folder; give a file name such as {out / 'report.png'}")
    if out.suffix.lower() != ".png":
        raise UserInputError(f"--out {out}: the report is a PNG; give a file name ending in .png")
    check_out_path(out, folder=False)
    first = results[0]
    for path, r in zip(args.results[1:], results[1:], strict=True):
        for key in ("space", "metric"):
            if r[key] != first[key]:
                raise UserInputError(f"{path}: a result of {key} {r[key]!r}, but {args.results[0]} is of "
                                     f"{first[key]!r}: one report judges one space on one quantity")
    with Store(args.db, readonly=True) as store:
        table = load_table(store, args.device, first["space"], args.task, args.metric, quantity=first["metric"],
                           source=args.source, **setting_kwargs(args))
    judged = [judge(r, table) for r in results]
    names = [j["search"] for j in judged]
    for path, j in zip(args.results, judged, strict=True):  # two runs of one search: tell them apart by file
        j["label"] = f"{j['search']} ({Path(path).stem})" if names.count(j["search"]) > 1 else j["search"]
    for path, j in zip(args.results, judged, strict=True):
        for note in j["notes"]:
            err.print(f"[yellow]note:[/] {escape(Path(path).name)}: {escape(note)}")
    title = (f"{table.space} on {table.device}: {args.task} {args.metric.replace('_', ' ')} vs {table.quantity}"
             f" ({table.n:,} archs)")
    png = plot_search_report(table, judged, out, title)
    summary = table.summary()
    if args.json:
        print_json({"results": [{"file": p, **j} for p, j in zip(args.results, judged, strict=True)],
                    "plot": str(png), "device": args.device, "task": args.task, "metric": args.metric,
                    "table": {k: v for k, v in summary.items() if k != "front"}, "front": summary["front"]})
        return 0
    outc.print(results_table(judged, table.quantity, table.unit))
    f = summary["front"]
    err.print(f"{table.n:,} archs with both a {table.quantity} on {table.device} and a {args.task} "
              f"{args.metric}; true front: {f['n']} archs, best accuracy {summary['best_accuracy']:.2f}%")
    err.print(f"wrote {escape(str(png))}")
    return 0


def results_table(judged: list[dict[str, Any]], quantity: str, unit: str) -> Any:
    """The judged results as a rich table (accuracy figures in percent, regrets in accuracy points)."""
    from rich.markup import escape
    from rich.table import Table

    def num(x: float | None, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    t = Table("search", "arch", f"{quantity} {unit} (source)", f"target {unit}", "error", "accuracy %",
              "regret pp", "regret @target pp", "best @target %", title="search results on both axes")
    for j in judged:
        cost = "-" if j[quantity] is None else f"{j[quantity]:.4g} ({j[f'{quantity}_source']})"
        err_ = "-" if j["error_vs_target"] is None else \
            f"{100 * j['error_vs_target']:+.1f}%" + ("" if j["within_target"] else " over")
        t.add_row(escape(str(j.get("label", j["search"]))), escape(j["short"]), cost,
                  "-" if j["target"] is None else f"{j['target']:g}", err_,
                  num(j["accuracy"], ".2f"), num(j["regret"], ".2f"), num(j["regret_at_target"], ".2f"),
                  num(j["best_at_target"], ".2f"))
    return t
