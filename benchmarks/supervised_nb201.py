"""Supervised predictors on HELP's NB201 tables: 900 training archs per device, HELP's query set.

Protocol (HELP's loader): train on the archs at NB201 indices [0, 900) of one device (all 900 by default;
`--drop-train-outliers` drops the 10% fastest and slowest of them as HELP does for its pool), evaluate on
indices [900, 1900) without the 10% fastest and 10% slowest (800 archs). One predictor per device and
kind; Spearman rho (HELP's metric), Acc@10 (nn-Meter's +-10%) and MAPE. HELP's tables are imported into
a temporary Store first, so the numbers come through the same path (`load_xy`) as measured data.
Target: GNN mean rho >= 0.97 over the devices run. `--quick` is a smoke size (2 devices, 100 training
archs, 3 epochs): it checks that the benchmark runs, its figures mean little.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from predictors.data import load_xy
from predictors.importers import IMPORTERS
from predictors.importers.help import help_devices
from predictors.metrics import report
from predictors.registry import create_predictor, list_predictors
from profiler.store import Store
from spaces import create_space

ROOT = Path(__file__).resolve().parents[1]
HELP_TEST_DEVICES = ("titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss")  # HELP's meta-test
TORCH_KINDS = ("mlp", "gnn", "gnn-att", "gcn")
QUICK = {"devices": "raspi4,fpga", "train_n": 100, "epochs": 3}  # --quick: a smoke size


def drop_extremes(ids: list[str], y: np.ndarray, share: float = 0.1) -> tuple[list[str], np.ndarray]:
    """Without the `share` fastest and `share` slowest (by rank), as HELP's remove_outlier."""
    order = np.argsort(y, kind="stable")
    k = int(len(y) * share)
    keep = np.sort(order[k:len(y) - k])
    return [ids[i] for i in keep], y[keep]


def device_split(store: Store, device: str, train_n: int, drop_train: bool
                 ) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    ids, y = load_xy(store, device, "nb201")
    sp = create_space("nb201")
    by_index = {sp.index(sp.parse(a)): (a, v) for a, v in zip(ids, y, strict=True)}
    missing = [i for i in range(train_n + 1000) if i not in by_index]
    if missing:
        raise ValueError(f"{device}: no latency for NB201 indices {missing[:5]}...")
    train_ids = [by_index[i][0] for i in range(train_n)]
    train_y = np.array([by_index[i][1] for i in range(train_n)])
    query_ids = [by_index[i][0] for i in range(train_n, train_n + 1000)]
    query_y = np.array([by_index[i][1] for i in range(train_n, train_n + 1000)])
    if drop_train:
        train_ids, train_y = drop_extremes(train_ids, train_y)
    query_ids, query_y = drop_extremes(query_ids, query_y)
    return train_ids, train_y, query_ids, query_y


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--help-dir", default=str(ROOT.parent / "shared"),
                    help="HELP folder, its data folder, or the shared folder holding data/HELP")
    ap.add_argument("--devices", default="all",
                    help="comma-separated HELP device names, 'all' (default) or 'help-test' (HELP's 6)")
    ap.add_argument("--models", default="mlp,gnn,gbdt",
                    help=f"comma-separated kinds ({', '.join(list_predictors(supervised=True))})")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of the torch predictors (default: theirs)")
    ap.add_argument("--train-n", type=int, default=900, help="training archs: NB201 indices [0, n) (default 900)")
    ap.add_argument("--drop-train-outliers", action="store_true", help="drop the 10%% extremes of the pool too")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--quick", action="store_true", help=f"smoke size: {QUICK} (explicit options still win)")
    ap.add_argument("--json", action="store_true", help="print JSON")
    ap.add_argument("--save", metavar="JSON", help="also write the JSON output here after every device, so a "
                                                   "run stopped early keeps what it finished (--table-from reads it)")
    ap.add_argument("--table-from", nargs="+", metavar="JSON",
                    help="train nothing: print the tables of saved --json outputs, merged per device and kind "
                         "(runs of different kinds split over processes)")
    args = ap.parse_args(argv)
    if args.table_from:
        out = merge([json.loads(Path(f).read_text()) for f in args.table_from])
        if args.json:
            print(json.dumps(out, indent=2))
        else:
            print_tables(out)
        return 0
    if args.quick:
        ap.set_defaults(**QUICK)
        args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    known = help_devices(args.help_dir, "nb201")
    if args.devices == "all":
        devices = known
    elif args.devices == "help-test":
        devices = list(HELP_TEST_DEVICES)
    else:
        devices = [d.strip() for d in args.devices.split(",") if d.strip()]
    unknown = [d for d in devices if d not in known]
    if unknown:
        ap.error(f"no HELP NB201 table for {', '.join(unknown)}; known: {', '.join(known)}")
    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    for kind in kinds:
        if kind not in list_predictors(supervised=True):
            ap.error(f"unknown kind {kind!r}; known: {', '.join(list_predictors(supervised=True))}")

    def log(msg: str) -> None:  # on stderr with --json too: a full run takes an hour on a loaded 2-core machine
        print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    results: dict[str, dict[str, dict]] = {}

    def output(results: dict[str, dict[str, dict]]) -> dict:
        done = [d for d in devices if d in results]
        summary, targets = summarise(results, done, kinds)
        return {"protocol": {"train": f"NB201 indices [0, {args.train_n})" + (" minus 10% extremes"
                                                                            if args.drop_train_outliers else ""),
                             "query": f"indices [{args.train_n}, {args.train_n + 1000}) minus 10% fastest and "
                                      "slowest",
                             "epochs": args.epochs, "seed": args.seed, "threads": args.threads, "quick": args.quick},
                "devices": done, "results": results, "summary": summary, "targets": targets,
                "wall_s": round(time.perf_counter() - t_start, 1)}

    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "help.db") as store:
        t0 = time.perf_counter()
        IMPORTERS["help"](store, args.help_dir, spaces=("nb201",), devices=devices)
        log(f"imported {len(devices)} HELP NB201 tables in {time.perf_counter() - t0:.1f} s")
        for device in devices:
            train_ids, train_y, query_ids, query_y = device_split(store, device, args.train_n,
                                                                  args.drop_train_outliers)
            row: dict[str, dict] = {}
            for kind in kinds:
                hp: dict = {"seed": args.seed}
                if kind in TORCH_KINDS and args.epochs is not None:
                    hp["epochs"] = args.epochs
                pred = create_predictor(kind, **hp)
                t0 = time.perf_counter()
                pred.fit(train_ids, train_y)
                fit_s = time.perf_counter() - t0
                rep = report(pred.predict(query_ids), query_y, n_target_samples=len(train_y),
                             split="HELP nb201 query [900,1900) minus 10% extremes")
                rep["fit_s"] = round(fit_s, 2)
                row[kind] = rep
                log(f"{device:15s} {kind:7s} rho {rep['spearman']:.4f}  acc10 {rep['acc10']:.3f}  "
                    f"mape {rep['mape']:6.2f}%  fit {fit_s:5.1f} s")
            results[device] = row
            if args.save:
                partial = Path(args.save).with_suffix(".tmp")
                partial.write_text(json.dumps(output(results), indent=2))
                partial.replace(args.save)

    out = output(results)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print_tables(out)
    return 0


def summarise(results: dict[str, dict[str, dict]], devices: list[str], kinds: list[str]
              ) -> tuple[dict[str, dict], dict[str, bool]]:
    """Per kind: mean metrics over `devices` (and HELP's 6 test devices among them); the rho >= 0.97 targets."""
    help_subset = [d for d in HELP_TEST_DEVICES if d in devices]
    summary = {kind: {"mean_spearman": _mean(results, devices, kind, "spearman"),
                      "mean_acc10": _mean(results, devices, kind, "acc10"),
                      "mean_mape": _mean(results, devices, kind, "mape"),
                      "min_spearman": float(min(results[d][kind]["spearman"] for d in devices)),
                      "mean_spearman_help_test": (_mean(results, help_subset, kind, "spearman")
                                                  if help_subset else None),
                      "total_fit_s": round(sum(results[d][kind]["fit_s"] for d in devices), 1)}
               for kind in kinds}
    targets = {f"{k.replace('-', '_')}_mean_spearman_ge_0_97": summary[k]["mean_spearman"] >= 0.97
               for k in ("gnn", "gnn-att") if k in kinds}
    return summary, targets


def _mean(results: dict[str, dict[str, dict]], devices: list[str], kind: str, key: str) -> float:
    return float(np.mean([results[d][kind][key] for d in devices]))


def merge(runs: list[dict]) -> dict:
    """One output from several --json outputs of the same protocol: results joined per device and kind;
    wall_s is the longest run's (split runs run side by side)."""
    protocols = {json.dumps({k: v for k, v in r["protocol"].items() if k != "threads"}, sort_keys=True)
                 for r in runs}
    if len(protocols) > 1:
        raise SystemExit(f"--table-from: the runs differ in protocol: {sorted(protocols)}")
    results: dict[str, dict[str, dict]] = {}
    for r in runs:
        for device, by_kind in r["results"].items():
            results.setdefault(device, {}).update(by_kind)
    kinds = list(dict.fromkeys(k for r in runs for d in r["results"].values() for k in d))
    devices = sorted(d for d in dict.fromkeys(d for r in runs for d in r["devices"]) if set(kinds) <= set(results[d]))
    summary, targets = summarise(results, devices, kinds)
    return {"protocol": runs[0]["protocol"], "devices": devices, "results": {d: results[d] for d in devices},
            "summary": summary, "targets": targets, "wall_s": round(max(r["wall_s"] for r in runs), 1),
            "merged_from": len(runs)}


def print_tables(out: dict) -> None:
    """The plain tables of an output (one row per device, one column per kind)."""
    devices, results, summary = out["devices"], out["results"], out["summary"]
    kinds = list(summary)
    help_subset = [d for d in HELP_TEST_DEVICES if d in devices]
    train_n = next(iter(results[devices[0]].values()))["n_target_samples"]
    query_n = next(iter(results[devices[0]].values()))["n"]
    for metric, label, fmt in (("spearman", "Spearman rho", "{:.3f}"), ("acc10", "Acc@10", "{:.3f}"),
                               ("mape", "MAPE %", "{:.2f}")):
        print(f"\n{label} (train {train_n} archs, query {query_n} archs per device)")
        print(f"{'device':16s}" + "".join(f"{k:>9s}" for k in kinds))
        for d in devices:
            print(f"{d:16s}" + "".join(f"{fmt.format(results[d][k][metric]):>9s}" for k in kinds))
        print(f"{'mean':16s}" + "".join(f"{fmt.format(_mean(results, devices, k, metric)):>9s}" for k in kinds))
        if metric == "spearman":
            print(f"{'min':16s}" + "".join(f"{fmt.format(summary[k]['min_spearman']):>9s}" for k in kinds))
        if help_subset and len(help_subset) < len(devices):
            print(f"{'mean HELP test':16s}" + "".join(f"{fmt.format(_mean(results, help_subset, k, metric)):>9s}"
                                                      for k in kinds))
    print("\nfit time (s, all devices): " + ", ".join(f"{k} {summary[k]['total_fit_s']}" for k in kinds))
    for k, v in out["targets"].items():
        print(f"target {k}: {'met' if v else 'MISSED'}")
    print(f"wall {out['wall_s']} s")


if __name__ == "__main__":
    raise SystemExit(main())
