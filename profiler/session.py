"""One profiling run: sample architectures, export what is missing, measure through a transport, ingest.

Every result line is ingested as soon as it arrives, so an interrupt keeps all finished measurements and
the next run measures only what is still missing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from profiler.config import DeviceConfig
from profiler.jobs import ModelTask, build_job, job_text
from profiler.store import ModelRecord, Store
from profiler.transports import Transport, open_transport
from spaces import SearchSpace, export_onnx

POLL_S = 0.2


class AgentFailed(RuntimeError):
    """The agent ended without measuring its job (bad job, missing Python, crash)."""


@dataclass
class ProfileReport:
    device: str
    space: str
    requested: int
    already_measured: int
    job_id: str | None = None
    ok: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "space": self.space, "requested": self.requested,
                "already_measured": self.already_measured, "measured_ok": self.ok,
                "measured_error": len(self.errors), "errors": self.errors, "job_id": self.job_id,
                "wall_s": round(self.wall_s, 3), "interrupted": self.interrupted}


@dataclass
class Progress:
    """Callbacks the CLI turns into progress bars; all optional."""

    on_phase: Callable[[str, int], None] = lambda phase, total: None
    on_step: Callable[[str], None] = lambda phase: None
    on_result: Callable[[dict[str, Any]], None] = lambda result: None


def model_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgeprof" / "models"
    base.mkdir(parents=True, exist_ok=True)
    return base


def record_for(space: SearchSpace, arch: Any, sha256: str, nbytes: int) -> ModelRecord:
    costs = space.costs(arch)
    return ModelRecord(sha256=sha256, space=space.name, space_config=space.config, arch_id=space.arch_id(arch),
                       input_shape=list(space.input_shape(1)), flops=int(costs["flops"]),
                       params=int(costs["params"]), mem_access=int(costs["mem_access"]),
                       intensity=float(costs["intensity"]), nbytes=nbytes)


def export_models(space: SearchSpace, archs: list[Any], store: Store, progress: Progress,
                  cache: Path | None = None) -> list[tuple[str, Path]]:
    """Export archs to ONNX (content-addressed) and record them with their costs in the store."""
    cache = cache or model_cache_dir()
    out, records = [], []
    progress.on_phase("export", len(archs))
    for arch in archs:
        m = export_onnx(space, arch, cache)
        out.append((m.sha256, Path(m.path)))
        records.append(record_for(space, arch, m.sha256, m.nbytes))
        progress.on_step("export")
    store.add_models(records)
    return out


def run_job(transport: Transport, job: dict[str, Any], store: Store, progress: Progress,
            report: ProfileReport) -> None:
    """Run one job on the board behind `transport`, ingesting every result line as it lands."""
    job_id = job["job_id"]
    transport.put_job(job_id, job_text(job))
    transport.start(job_id)
    offset, pending = 0, b""
    progress.on_phase("measure", len(job["tasks"]))

    def drain() -> None:
        nonlocal offset, pending
        chunk = transport.read_results(job_id, offset)
        offset += len(chunk)
        pending += chunk
        *lines, pending = pending.split(b"\n")
        results = [json.loads(line) for line in lines if line.strip()]
        if results:
            store.add_results(results)
        for r in results:
            if r["status"] == "ok":
                report.ok += 1
            else:
                report.errors.append({"task_id": r["task_id"], "model_sha256": r["model_sha256"],
                                      **(r.get("error") or {})})
            progress.on_result(r)

    try:
        while True:
            status = transport.finished(job_id)
            drain()
            if status is not None:
                drain()
                break
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        report.interrupted = True
        transport.stop(job_id)
        drain()
        raise
    if status != 0:
        raise AgentFailed(f"agent exited with status {status} on job {job_id}:\n{transport.log_tail(job_id)}")


def profile(config: DeviceConfig, space: SearchSpace, n: int, seed: int, batch: int, store: Store,
            progress: Progress | None = None, transport: Transport | None = None,
            protocol_overrides: dict[str, Any] | None = None) -> ProfileReport:
    """Measure `n` architectures of `space` (sampled from `seed`) on the device; skip what is measured."""
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    if batch < 1:
        raise ValueError(f"--batch must be at least 1, got {batch}")
    progress = progress or Progress()
    t0 = time.perf_counter()
    archs = space.sample_unique(n, np.random.default_rng(seed))
    done = store.measured_archs(config.name, space.name, config.runtime.backend, config.runtime.precision, batch)
    todo = [a for a in archs if space.arch_id(a) not in done]
    report = ProfileReport(device=config.name, space=space.name, requested=n, already_measured=n - len(todo))
    store.add_device(config.name, config.kind, {"path": str(config.path) if config.path else None,
                                                "backend": config.runtime.backend,
                                                "precision": config.runtime.precision})
    if not todo:
        report.wall_s = time.perf_counter() - t0
        return report
    models = export_models(space, todo, store, progress)
    own = transport is None
    transport = transport or open_transport(config)
    try:
        transport.prepare()
        missing = set(transport.missing_models([sha for sha, _ in models]))
        progress.on_phase("upload", len(missing))
        for sha, path in models:
            if sha in missing:
                transport.put_model(path, sha)
                progress.on_step("upload")
        shape = space.input_shape(1)
        job = build_job(config, [ModelTask(sha, shape) for sha, _ in models], batch,
                        protocol_overrides=protocol_overrides)
        report.job_id = job["job_id"]
        run_job(transport, job, store, progress, report)
    except KeyboardInterrupt:
        report.interrupted = True  # every finished result is already in the store
    finally:
        report.wall_s = time.perf_counter() - t0
        if own:
            transport.close()
    return report
