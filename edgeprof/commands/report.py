"""Reports people look at: `report predictor P --device DEV --out DIR` writes a predicted-vs-measured
scatter (PNG) and the metrics table (Markdown and JSON)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgeprof.arguments import add_setting_arguments, check_out_path, setting_kwargs
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, print_json
from profiler.store import Store


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


def run(args: argparse.Namespace) -> int:
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
