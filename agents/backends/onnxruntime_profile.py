"""ONNX Runtime's profiling JSON (Chrome-trace events) as per-node times: a pure parser.

The backend's layer_profile() runs the model with profiling on and hands the file here.
"""

import bisect
import json

KERNEL_SUFFIX = "_kernel_time"


def parse_profile(events, skip_runs=0):
    """Per-node times from an ORT profile (the JSON list of Chrome-trace events).

    Node events "<node>_kernel_time" are assigned to the "model_run" window holding them; the first
    skip_runs windows (warm-up) are dropped. Returns (records, n_runs) with records
    [{"name", "op_type", "provider", "time_ms" (mean per run), "calls" (per run)}] in execution order.
    Without model_run events (older or unusual traces) every node's first skip_runs calls are dropped.
    """
    if isinstance(events, dict):  # some writers wrap the list as {"traceEvents": [...]}
        events = events.get("traceEvents", [])
    runs = sorted(
        (float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0)))
        for e in events
        if isinstance(e, dict) and e.get("cat") == "Session" and e.get("name") == "model_run"
    )
    nodes = sorted(
        (
            e
            for e in events
            if isinstance(e, dict)
            and e.get("cat") == "Node"
            and str(e.get("name", "")).endswith(KERNEL_SUFFIX)
        ),
        key=lambda e: float(e.get("ts", 0)),
    )
    kept = []
    if runs:
        windows = runs[skip_runs:]
        n_runs = len(windows)
        starts = [w[0] for w in windows]
        for e in nodes:
            ts = float(e.get("ts", 0))
            k = bisect.bisect_right(starts, ts) - 1
            if k >= 0 and ts <= windows[k][1]:
                kept.append(e)
    else:
        seen = {}
        for e in nodes:
            seen[e["name"]] = seen.get(e["name"], 0) + 1
            if seen[e["name"]] > skip_runs:
                kept.append(e)
        n_runs = max(seen.values()) - skip_runs if seen else 0
    order = []
    acc = {}
    for e in kept:
        name = e["name"][: -len(KERNEL_SUFFIX)]
        args = e.get("args") or {}
        if name not in acc:
            order.append(name)
            acc[name] = {
                "name": name,
                "op_type": args.get("op_name"),
                "provider": args.get("provider"),
                "us": 0.0,
                "calls": 0,
            }
        acc[name]["us"] += float(e.get("dur", 0))
        acc[name]["calls"] += 1
    records = []
    for name in order:
        a = acc[name]
        div = float(max(n_runs, 1))
        records.append(
            {
                "name": name,
                "op_type": a["op_type"],
                "provider": a["provider"],
                "time_ms": a["us"] / 1e3 / div,
                "calls": a["calls"] / div,
            }
        )
    return records, n_runs


def read_profile(path, skip_runs=0):
    """parse_profile() of a profile file."""
    with open(path, encoding="utf-8") as f:
        return parse_profile(json.load(f), skip_runs)
