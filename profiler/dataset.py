"""Views of the store: a per-device summary and flat exports (CSV, Parquet).

Accuracy records (profiler/accuracy.py) appear in both: the summary's "accuracy" list (n, min, median, max per
space, task, metric and source), and the export either as their own table (`table="accuracies"`) or, in the
measurement table, as one column per (task, metric) joined on (space, arch_id): `cifar100_test_accuracy`, empty
where the network has no record (`<task>_<metric>_<source>` where several sources hold the same figures)."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from profiler.accuracy import accuracy_rows, accuracy_summary
from profiler.store import Store
from spaces.errors import UserInputError

GROUP_KEYS = ("device", "space", "backend", "precision", "batch")
EXPORT_COLUMNS = (
    "id", "device", "space", "arch_id", "model_sha256", "backend", "precision", "batch", "status",
    "error_type", "error_message", "median_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "p10_ms", "p90_ms",
    "p99_ms", "iqr_mean_ms", "cv", "n", "ci_halfwidth_ms", "converged", "energy_mj", "flops", "params",
    "mem_access", "intensity", "device_median_ms", "job_id", "task_id", "source", "measured_at",
)
ACCURACY_COLUMNS = ("space", "arch_id", "task", "metric", "value", "source", "space_config", "provenance",
                    "added_at")
TABLES = ("measurements", "accuracies")
# Environment facts worth showing per group (the full record stays in the store).
ENV_KEYS = ("hostname", "platform", "kernel", "board_model", "l4t", "jetpack", "agent_version")


def _env_summary(env: dict[str, Any]) -> dict[str, Any]:
    out = {k: env.get(k) for k in ENV_KEYS if env.get(k) is not None}
    cpu = env.get("cpu") or {}
    if cpu:
        out["cpu_model"] = cpu.get("model")
        out["cpu_count"] = cpu.get("count")
    if env.get("libraries"):
        out["libraries"] = env["libraries"]
    gov = {p.get("governor") for p in (env.get("cpufreq") or {}).values() if isinstance(p, dict)} - {None}
    if gov:
        out["cpu_governor"] = sorted(gov)
    return out


def onnx_labels(store: Store) -> dict[str, str]:
    """Model sha256 -> "onnx:<file> (<sha256[:8]>)" for the users' own files (profiler.onnx_profile): each is
    a network of its own, so a summary shows each apart instead of one "onnx" spread over unrelated files."""
    return {sha: f"onnx:{json.loads(cfg).get('file', '?')} ({sha[:8]})" for sha, cfg in store.db.execute(
        "SELECT sha256, space_config FROM models WHERE space='onnx'")}


def summarize(store: Store, device: str | None = None) -> dict[str, Any]:
    """Counts, latency spread and environment per (device, space, backend, precision, batch); a user's ONNX
    file is its own group (onnx_labels)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    labels = onnx_labels(store)
    for r in store.rows(device=device):
        if r["space"] == "onnx":
            r = {**r, "space": labels.get(r["model_sha256"], "onnx")}
        groups[tuple(r[k] for k in GROUP_KEYS)].append(r)
    out = []
    # batch sizes in numeric order (a sweep's 1, 8, 32), the other keys as text
    for key, rows in sorted(groups.items(), key=lambda kv: tuple(k if isinstance(k, int) else str(k)
                                                                 for k in kv[0])):
        ok = [r for r in rows if r["status"] == "ok"]
        g: dict[str, Any] = dict(zip(GROUP_KEYS, key, strict=True))
        g["ok"] = len(ok)
        g["error"] = len(rows) - len(ok)
        g["models"] = len({r["model_sha256"] for r in rows})
        if ok:
            med = np.array([r["median_ms"] for r in ok])
            g["latency_ms"] = {"min": float(med.min()), "p25": float(np.percentile(med, 25)),
                               "median": float(np.median(med)), "p75": float(np.percentile(med, 75)),
                               "max": float(med.max())}
            # Imported tables carry one number per model: no spread, run count or convergence.
            cvs = [r["cv"] for r in ok if r["cv"] is not None]
            runs = [r["n"] for r in ok if r["n"] is not None]
            conv = [bool(r["converged"]) for r in ok if r["converged"] is not None]
            g["cv_median"] = float(np.median(cvs)) if cvs else None
            g["runs_median"] = int(np.median(runs)) if runs else None
            g["converged_share"] = float(np.mean(conv)) if conv else None
            energy = [r["energy_mj"] for r in ok if r["energy_mj"] is not None]
            if energy:
                g["energy_mj"] = {"min": float(min(energy)), "median": float(np.median(energy)),
                                  "max": float(max(energy))}
            g["environment"] = _env_summary(json.loads(ok[-1]["environment"] or "{}") or {})  # "null": none recorded
        errors = Counter(r["error_type"] for r in rows if r["status"] != "ok")
        if errors:
            g["error_types"] = dict(errors)
        g["first_measured"] = min((r["measured_at"] or "" for r in rows), default=None)
        g["last_measured"] = max((r["measured_at"] or "" for r in rows), default=None)
        out.append(g)
    return {"db": str(store.path), "counts": store.counts(), "groups": out, "accuracy": accuracy_summary(store)}


def accuracy_columns(store: Store) -> dict[str, dict[tuple[str, str], float]]:
    """{column name: {(space, arch_id): value}} of every (task, metric[, source]) the dataset holds."""
    groups = accuracy_summary(store)
    sources: dict[tuple[str, str], set[str]] = defaultdict(set)
    for g in groups:
        sources[(g["task"], g["metric"])].add(g["source"])
    columns: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    for r in accuracy_rows(store):
        name = f"{r['task']}_{r['metric']}"
        if len(sources[(r["task"], r["metric"])]) > 1:
            name += f"_{r['source']}"
        columns[name][(r["space"], r["arch_id"])] = float(r["value"])
    return dict(columns)


def export(store: Store, path: str | Path, fmt: str | None = None, device: str | None = None,
           with_samples: bool = False, table: str = "measurements") -> int:
    """Write every measurement (or, with table="accuracies", every accuracy record) as one flat row; Parquet also
    carries the raw samples when asked. Measurement rows carry the accuracy columns (module docstring)."""
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower()
    if fmt not in ("csv", "parquet"):
        raise UserInputError(f"export format must be csv or parquet (from --format or the file suffix), got {fmt!r}")
    if table not in TABLES:
        raise UserInputError(f"--table must be one of {', '.join(TABLES)}, got {table!r}")
    if table == "accuracies":
        if device is not None or with_samples:
            raise UserInputError("--device and --samples select measurements; the accuracies table has neither")
        rows = [{c: r[c] for c in ACCURACY_COLUMNS} for r in accuracy_rows(store)]
        _write(path, fmt, list(ACCURACY_COLUMNS), rows)
        return len(rows)
    extra = accuracy_columns(store)
    rows = store.rows(device=device)
    cols = list(EXPORT_COLUMNS) + sorted(extra) + (["samples_ms"] if with_samples else [])
    out = []
    for r in rows:
        t = {c: r.get(c) for c in EXPORT_COLUMNS}
        for name in sorted(extra):
            t[name] = extra[name].get((r["space"], r["arch_id"]))
        if with_samples:
            samples = store.samples(t["id"])[0].tolist()
            t["samples_ms"] = json.dumps(samples) if fmt == "csv" else samples
        out.append(t)
    _write(path, fmt, cols, out)
    return len(out)


def _write(path: Path, fmt: str, cols: list[str], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({c: [r[c] for r in rows] for c in cols}), path)


def layer_table(store: Store, device: str, space: str, by: str = "layer", arch_id: str | None = None) -> dict[str, Any]:
    """Per-layer latency from the runtimes' own profilers, grouped by the space's layers or by op type.

    For each model, layer times are summed per group, then averaged over models; `share` is the mean
    fraction of the model's profiled time. With `arch_id`, one model's groups (its latest measurement).
    """
    from spaces import create_space

    if by not in ("layer", "op_type"):
        raise UserInputError(f"--by must be 'layer' or 'op_type', got {by!r}")
    rows = [r for r in store.rows(device=device, space=space, status="ok") if arch_id in (None, r["arch_id"])]
    configs = {r[0]: json.loads(r[1]) for r in store.db.execute(
        "SELECT sha256, space_config FROM models WHERE space=?", (space,)).fetchall()}
    per_model: list[dict[str, float]] = []
    for r in rows[-1:] if arch_id else rows:
        layers = store.layers(r["id"])
        if not layers:
            continue
        # a user's ONNX file has no space to name its layers: its own node names are the layers
        sp = None if space == "onnx" else create_space(space, **configs.get(r["model_sha256"], {}))
        arch = sp.parse(r["arch_id"]) if sp else None
        groups: dict[str, float] = defaultdict(float)
        for lay in layers:
            if by == "op_type":
                key = lay["op_type"] or "?"
            else:
                key = sp.layer_label(arch, lay["name"]) if sp else lay["name"]
            groups[key] += lay["time_ms"]
        per_model.append(dict(groups))
    if not per_model:
        raise UserInputError(f"no per-layer profiles for {device}/{space}"
                         + (f" arch {arch_id}" if arch_id else "") + " (profile with --layers)")
    keys = sorted({k for m in per_model for k in m}, key=lambda k: -np.mean([m.get(k, 0.0) for m in per_model]))
    totals = [sum(m.values()) for m in per_model]
    out = [{"group": k, "time_ms": float(np.mean([m.get(k, 0.0) for m in per_model])),
            "share": float(np.mean([m.get(k, 0.0) / t for m, t in zip(per_model, totals, strict=True) if t > 0]))}
           for k in keys]
    return {"device": device, "space": space, "by": by, "arch_id": arch_id, "models": len(per_model),
            "profiled_ms_mean": float(np.mean(totals)), "groups": out}
