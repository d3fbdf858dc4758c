"""Per-layer profiles from the three runtimes in one schema.

Each backend's layer_profile(n_runs) gives records {"name", "op_type", "time_ms" (mean per run),
"calls" (per run)}; they differ in what a "layer" is:
- tensorrt: an engine layer, often a fusion of ONNX nodes ("Conv_0 + Relu_1"); op_type from the engine
  inspector when the engine has it, else from the layer name;
- onnxruntime: a graph node after ORT's optimisations (op_type is the ONNX op, plus its provider);
- torch: a leaf nn.Module by its qualified name (op_type its class), or an aten op for TorchScript.

normalise() makes {"name", "op_type", "time_ms", "calls", "share"} with share = time / summed time, in
the runtime's execution order; group_by_op_type() sums them per op_type. Pure functions, no runtime.
"""

import math
import re

SCHEMA_KEYS = ("name", "op_type", "time_ms", "calls", "share")
PASS_THROUGH = ("provider",)  # optional keys kept when a runtime gives them
_NODE_SUFFIX = re.compile(r"(_\d+|\.\d+|:\d+)$")


def guess_op_type(name):
    """An op type from a layer name when the runtime gives none.

    "Conv_0 + Relu_1" -> "Conv+Relu" (a fusion), "/cells.0/edges.1/op/Conv" -> "Conv" (torch export
    names), "PWN(Relu_3)" -> "PWN(Relu)", "node_5" -> "node".
    """
    parts = []
    for part in str(name).split(" + "):
        part = part.strip()
        if "/" in part:
            tail = part.rstrip("/").split("/")[-1]
            part = tail or part
        prev = None
        while prev != part:
            prev = part
            part = _NODE_SUFFIX.sub("", part)
        part = re.sub(r"_\d+\)", ")", part)
        parts.append(part or "?")
    return "+".join(parts)


def _number(value, what, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
        raise ValueError(f"layer {name!r}: {what} must be a number >= 0, got {value!r}")
    return float(value)


def normalise(records):
    """Records of any backend -> [{"name", "op_type", "time_ms", "calls", "share"}, ...].

    Records with the same name are merged (times and calls added; the first op_type kept), order is the
    first appearance. A missing op_type is guessed from the name; calls default to 1. share is 0 for
    every layer when the total time is 0. None (no profiler) stays None.
    """
    if records is None:
        return None
    merged = {}
    order = []
    for rec in records:
        if not isinstance(rec, dict) or "name" not in rec:
            raise ValueError(f"layer record without a name: {rec!r}")
        name = str(rec["name"])
        time_ms = _number(rec.get("time_ms", 0.0), "time_ms", name)
        calls = _number(rec.get("calls", 1), "calls", name)
        op_type = rec.get("op_type") or guess_op_type(name)
        if name not in merged:
            out = {"name": name, "op_type": str(op_type), "time_ms": 0.0, "calls": 0.0}
            for key in PASS_THROUGH:
                if rec.get(key) is not None:
                    out[key] = rec[key]
            merged[name] = out
            order.append(name)
        merged[name]["time_ms"] += time_ms
        merged[name]["calls"] += calls
    total = sum(merged[n]["time_ms"] for n in order)
    out = []
    for name in order:
        rec = merged[name]
        calls = rec["calls"]
        rec["calls"] = int(calls) if float(calls).is_integer() else round(calls, 3)
        rec["share"] = rec["time_ms"] / total if total > 0 else 0.0
        out.append(rec)
    return out


def group_by_op_type(records):
    """Normalised (or raw) records -> one record per op_type, by time, largest first.

    [{"op_type", "time_ms", "calls", "layers" (how many), "share"}, ...]
    """
    layers = normalise(records) or []
    groups = {}
    for rec in layers:
        g = groups.setdefault(
            rec["op_type"], {"op_type": rec["op_type"], "time_ms": 0.0, "calls": 0, "layers": 0}
        )
        g["time_ms"] += rec["time_ms"]
        g["calls"] += rec["calls"]
        g["layers"] += 1
    total = sum(g["time_ms"] for g in groups.values())
    out = sorted(groups.values(), key=lambda g: (-g["time_ms"], g["op_type"]))
    for g in out:
        g["share"] = g["time_ms"] / total if total > 0 else 0.0
    return out


def total_ms(records):
    """Summed mean per-run time of the layers (ms)."""
    return sum(float(r["time_ms"]) for r in (records or []))
