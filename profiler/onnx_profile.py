"""Measure a user's own ONNX file, at one batch size or several, through the same job -> agent -> store path.

The record: a model of space "onnx" in the store's models table, not a new table or a `probes` space. That
table already is a general "model with parameters" record (space, space_config, arch_id, costs), every view
(dataset summary, export, layers) groups by its space name, and store.py has no room for a new table. Its
space_config {"file": <basename>, "inputs": {name: shape at batch 1}} says what was measured; arch_id is the
first 16 hex digits of the sha256, since a file has no architecture string and its bytes are its identity.

Content address: the sha256 of the bytes the board runs. When only the batch axis is dynamic these are the
file's own bytes (the sha256 a user gets from `sha256sum`); when another dim is dynamic, --input-shape pins it
in the graph inputs and the pinned copy is what is measured and addressed (a 224x224 and a 320x320 run of one
file are different measurements, and a runtime may build a static engine for them), with
space_config["source_sha256"] naming the file. The copy sits in session.model_cache_dir() as <sha256>.onnx,
so upload, "send only what the board lacks" and resending a damaged model work as for exported networks.

Resumable: a rerun measures only the batches without an ok row for (device, model sha256, backend, precision,
batch). One job per batch (as profile() runs one per batch size): a model the board finds damaged is then
resent and retried exactly as for a space's networks.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profiler.collect import sync_board, wait_for_jobs
from profiler.config import DeviceConfig
from profiler.jobs import ModelTask
from profiler.report import ProfileReport, Progress, batch_row
from profiler.session import file_sha256, measure_tasks, model_cache_dir, model_format, register_device
from profiler.store import ModelRecord, Store
from profiler.transports import Transport, open_transport
from spaces.errors import UserInputError
from spaces.export import write_atomic
from spaces.onnx_file import FLOAT_TYPES, model_inputs, onnx_costs, pin_inputs, read_model, resolve_shapes

SPACE = "onnx"


@dataclass(frozen=True)
class OnnxModel:
    """A user's file made ready to measure: the bytes the board runs, their address and the stored record."""

    path: Path  # the user's file
    data: bytes
    sha256: str
    inputs: dict[str, list[int]]  # shapes at batch 1
    dtype: str
    costs: dict[str, Any]  # spaces.onnx_file.onnx_costs, {} when shape inference could not follow the graph
    note: str = ""  # why costs are missing or partial
    source_sha256: str | None = None  # the user's file, when the measured bytes are a pinned copy of it

    @property
    def record(self) -> ModelRecord:
        config: dict[str, Any] = {"file": self.path.name, "inputs": self.inputs}
        if self.source_sha256:
            config["source_sha256"] = self.source_sha256
        c = self.costs
        return ModelRecord(sha256=self.sha256, space=SPACE, space_config=config, arch_id=self.sha256[:16],
                           input_shape=next(iter(self.inputs.values())) if len(self.inputs) == 1 else None,
                           flops=c.get("flops"), params=c.get("params"), mem_access=c.get("mem_access"),
                           intensity=c.get("intensity"), nbytes=len(self.data))

    def task(self) -> ModelTask:
        return ModelTask(self.sha256, tuple(next(iter(self.inputs.values()))), filename=f"{self.sha256}.onnx",
                         inputs={k: tuple(v) for k, v in self.inputs.items()}, dtype=self.dtype)

    def summary(self) -> dict[str, Any]:
        c = self.costs
        return {"file": str(self.path), "sha256": self.sha256, "arch_id": self.sha256[:16], "inputs": self.inputs,
                "dtype": self.dtype, "source_sha256": self.source_sha256, "note": self.note or None,
                **{k: c.get(k) for k in ("flops", "params", "mem_access", "intensity")},
                "uncounted_layers": len(c.get("uncounted", []))}


def prepare(path: str | Path, batches: Sequence[int], input_shapes: Mapping[str | None, Sequence[int]] | None = None,
            ) -> OnnxModel:
    """Read, check and address the file for these batches (every batch is checked before anything runs)."""
    path = Path(path)
    model = read_model(path)
    inputs = model_inputs(model)
    given = dict(input_shapes or {})
    for b in batches:
        resolve_shapes(inputs, given, b)  # a fixed batch that is not b, a dynamic dim without a size
    at_batch = resolve_shapes(inputs, given, batches[0])
    shapes = {k: [1, *v[1:]] for k, v in at_batch.items()}
    floats = sorted({i.dtype for i in inputs if i.dtype in FLOAT_TYPES})
    if len(floats) > 1:
        raise UserInputError(f"{path}: its inputs mix float types ({', '.join(floats)}); a job feeds one float "
                             "type")
    dynamic_rest = any(not isinstance(d, int) for i in inputs for d in i.dims[1:])
    raw = path.read_bytes()
    data = pin_inputs(model, at_batch).SerializeToString() if dynamic_rest else raw
    try:
        costs, note = onnx_costs(model, shapes), ""
    except UserInputError as e:  # measuring does not need the counts
        costs, note = {}, f"costs not counted: {e}"
    if costs.get("uncounted"):
        note = (f"{len(costs['uncounted'])} conv/linear layer(s) without a static shape not counted (e.g. "
                f"{costs['uncounted'][0]}): FLOPs and memory accesses are a lower bound")
    return OnnxModel(path, data, hashlib.sha256(data).hexdigest(), shapes, floats[0] if floats else "float32",
                     costs, note, hashlib.sha256(raw).hexdigest() if dynamic_rest else None)


def cache_model(m: OnnxModel, cache: Path | None = None) -> Path:
    """<cache>/<sha256>.onnx holding m's bytes; a cached file whose bytes no longer hash to its name is
    written again (as export_models does for exported networks)."""
    target = (cache or model_cache_dir()) / f"{m.sha256}.onnx"
    if target.exists() and file_sha256(target) != m.sha256:
        target.unlink()
    write_atomic(m.data, target)  # keeps a file already there
    return target


def measured_batches(store: Store, device: str, sha256: str, backend: str, precision: str) -> set[int]:
    """Batches of this model with an ok measurement under these settings."""
    return {int(r[0]) for r in store.db.execute(
        "SELECT DISTINCT batch FROM measurements WHERE device=? AND model_sha256=? AND backend=? AND precision=? "
        "AND status='ok'", (device, sha256, backend, precision))}


def batch_rows(store: Store, device: str, sha256: str, backend: str, precision: str,
               batches: Sequence[int]) -> list[dict[str, Any]]:
    """Per batch, the latest ok measurement: median, per-image latency, images/s, p10/p90 and runs."""
    rows = []
    for b in batches:
        r = store.db.execute(
            "SELECT median_ms, p10_ms, p90_ms, iqr_mean_ms, cv, n FROM measurements WHERE device=? AND "
            "model_sha256=? AND backend=? AND precision=? AND batch=? AND status='ok' ORDER BY id DESC LIMIT 1",
            (device, sha256, backend, precision, b)).fetchone()
        if r is None:
            rows.append(batch_row(b, None, p10_ms=None, p90_ms=None, iqr_mean_ms=None, cv=None, n=None))
        else:
            rows.append(batch_row(b, float(r[0]), p10_ms=r[1], p90_ms=r[2], iqr_mean_ms=r[3], cv=r[4], n=r[5]))
    return rows


@dataclass
class OnnxRun:
    """What profile_onnx did: the run's report, the model and one row per batch asked."""

    report: ProfileReport
    model: dict[str, Any]
    batches: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.report.to_dict(), "model": self.model, "batches": self.batches}


def check_backend(config: DeviceConfig) -> None:
    """A device whose backend does not take ONNX files (the torch backend builds a space's own modules)."""
    fmt = model_format(config.runtime.backend)
    if fmt != "onnx":
        raise UserInputError(f"{config.name}: its backend {config.runtime.backend!r} takes {fmt!r} models (a "
                             "space's own package), not ONNX files; use a device whose backend is onnxruntime "
                             "or tensorrt")


def profile_onnx(config: DeviceConfig, path: str | Path, batches: Sequence[int], store: Store,
                 input_shapes: Mapping[str | None, Sequence[int]] | None = None, progress: Progress | None = None,
                 transport: Transport | None = None, protocol_overrides: dict[str, Any] | None = None,
                 should_stop: Callable[[], bool] = lambda: False) -> OnnxRun:
    """Measure the file at each batch size on the device; batches measured ok before are skipped.

    As profile(): the board is synced first, only what it lacks is uploaded, every result is ingested as it
    lands, a killed agent's tasks and damaged models run again, Ctrl-C keeps what is done."""
    batches = list(batches)
    if not batches or any(b < 1 for b in batches):
        raise UserInputError(f"--batch must be positive batch sizes, got {batches}")
    check_backend(config)
    m = prepare(path, batches, input_shapes)
    progress = progress or Progress()
    t0 = time.perf_counter()
    setting = (config.name, m.sha256, config.runtime.backend, config.runtime.precision)
    register_device(store, config)
    store.add_models([m.record])  # before any job: sync_board keeps owner-less lines of registered models only
    before = measured_batches(store, *setting)
    report = ProfileReport(device=config.name, space=SPACE, requested=len(batches),
                           already_measured=sum(b in before for b in batches))
    own = transport is None
    transport = transport or open_transport(config)
    todo: list[int] = []
    try:
        transport.prepare()
        busy = sync_board(transport, config.name, store, progress, report)
        done = measured_batches(store, *setting)
        todo = [b for b in batches if b not in done]
        if todo:
            wait_for_jobs(transport, busy, progress, report, should_stop)
            cache_model(m)

        def again(tasks: list[ModelTask]) -> list[ModelTask]:
            cache_model(m)  # the host's copy is written again only if it no longer hashes to its name
            return [m.task() for _ in tasks]

        for b in todo:
            if should_stop():
                report.interrupted = True
                break
            measure_tasks(transport, config, [m.task()], b, store, progress, report, protocol_overrides,
                          should_stop, name=lambda t, b=b: f"{m.path.name} at batch {b}, model {t.sha256[:12]}",
                          again=again)
    except KeyboardInterrupt:
        report.interrupted = True  # every finished result is already in the store
    finally:
        report.remaining = len(set(batches) - measured_batches(store, *setting)) if todo else 0
        report.wall_s = time.perf_counter() - t0
        report.reconnects = getattr(transport, "reconnects", 0)
        if own:
            transport.close()
    return OnnxRun(report, m.summary(), batch_rows(store, *setting, batches))
