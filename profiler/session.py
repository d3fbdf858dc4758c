"""One profiling run: sample architectures, export what is missing, measure through a transport, ingest.

Every result line is ingested as soon as it arrives, so an interrupt keeps all finished measurements and
the next run measures only what is still missing.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.backends import BACKENDS
from profiler.config import DeviceConfig
from profiler.jobs import ModelTask, build_job, job_text
from profiler.store import ModelRecord, Store, result_problem
from profiler.transports import Transport, open_transport
from profiler.transports.base import job_dir
from spaces import SearchSpace, UserInputError, export_onnx
from spaces.errors import RuntimeFailure
from spaces.export import export_space_package

POLL_S = 0.2


class AgentFailed(RuntimeFailure):
    """The agent ended without measuring its job (bad job, missing Python, crash)."""


class CorruptResults(RuntimeFailure):
    """A line of a board's results file is not a result (a damaged file): the good lines are stored, the run
    stops and the message names the board, the file and the line."""


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
    resumed_jobs: list[str] = field(default_factory=list)
    reconnects: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "space": self.space, "requested": self.requested,
                "already_measured": self.already_measured, "measured_ok": self.ok,
                "measured_error": len(self.errors), "errors": self.errors, "job_id": self.job_id,
                "wall_s": round(self.wall_s, 3), "interrupted": self.interrupted,
                "resumed_jobs": self.resumed_jobs, "reconnects": self.reconnects,
                "models_per_hour": round(3600 * (self.ok + len(self.errors)) / self.wall_s, 1)
                if self.wall_s > 0 else None}


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


_EXPORT_LOCK = threading.Lock()  # torch's ONNX exporter keeps global state: one export at a time


def _export_onnx(space: SearchSpace, arch: Any, cache: Path) -> tuple[Any, dict[str, Any]]:
    return export_onnx(space, arch, cache), {}


def _export_space(space: SearchSpace, arch: Any, cache: Path) -> tuple[Any, dict[str, Any]]:
    # the board imports the space's own package and builds the arch: eager modules, not a conversion
    return export_space_package(space, arch, cache), {"model_format": "space", "space": space.name,
                                                      "space_config": space.config, "arch": list(arch)}


# How the host makes each model format a backend can declare (agents.backends.base.MODEL_FORMATS):
# (model file, task options) of one architecture.
EXPORTERS: dict[str, Callable[[SearchSpace, Any, Path], tuple[Any, dict[str, Any]]]] = {
    "onnx": _export_onnx, "space": _export_space}


def model_format(backend: str) -> str:
    """The model format the backend declares (Backend.MODEL_FORMAT)."""
    return str(getattr(BACKENDS.get(backend), "MODEL_FORMAT", "onnx"))


def export_models(space: SearchSpace, archs: list[Any], store: Store, progress: Progress, backend: str = "onnxruntime",
                  cache: Path | None = None) -> list[ModelTask]:
    """Export archs in the form the backend declares (content-addressed) and record them with their costs."""
    cache = cache or model_cache_dir()
    export = EXPORTERS[model_format(backend)]
    tasks, records = [], []
    progress.on_phase("export", len(archs))
    shape = space.input_shape(1)
    for arch in archs:
        with _EXPORT_LOCK:
            m, opts = export(space, arch, cache)
        tasks.append(ModelTask(m.sha256, shape, filename=Path(m.path).name, options=opts))
        records.append(record_for(space, arch, m.sha256, m.nbytes))
        progress.on_step("export")
    store.add_models(records)
    return tasks


def _parse_lines(chunk: bytes) -> tuple[list[dict[str, Any]], list[tuple[bytes, str]]]:
    """(result dicts, [(line, why)] for the lines that are not JSON objects)."""
    results, bad = [], []
    for line in chunk.split(b"\n"):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError alike
            bad.append((line, f"not JSON: {e}"))
            continue
        if isinstance(r, dict):
            results.append(r)
        else:
            bad.append((line, f"not a JSON object but {type(r).__name__}"))
    return results, bad


def _ingest(chunk: bytes, device: str, store: Store, progress: Progress, report: ProfileReport,
            job_id: str = "?") -> int:
    """Ingest whole result lines; returns how many were left out as not this store's.

    A board's work folder can hold jobs of other datasets (another --db, another host): only lines of
    this device whose model this store registered (it does so before starting a job) are taken. A line
    that is not a result (a damaged file) is CorruptResults, raised after the good lines are stored.
    """
    results, bad = _parse_lines(chunk)
    known = store.known_models({r.get("model_sha256") for r in results})
    mine = [r for r in results if r.get("device") == device and r.get("model_sha256") in known]
    left_out = len(results) - len(mine)
    for r in mine:
        problem = result_problem(r)
        if problem:
            bad.append((json.dumps(r).encode(), problem))
    mine = [r for r in mine if not result_problem(r)]
    # Only rows new to the store are counted: the same lines are read again after an interrupt.
    new = store.add_new_results(mine) if mine else []
    for r in new:
        if r["status"] == "ok":
            report.ok += 1
        else:
            report.errors.append({"task_id": r["task_id"], "model_sha256": r["model_sha256"],
                                  **(r.get("error") or {})})
        progress.on_result(r)
    if bad:
        line, why = bad[0]
        raise CorruptResults(
            f"{device}: {job_dir(job_id)}/results.jsonl in the board's work folder holds {len(bad)} line(s) that "
            f"are not results (damaged file?); the first, {line[:120].decode(errors='replace')!r}, is {why}. "
            "The other lines are stored; delete the bad line(s) from that file and run again")
    return left_out


def follow(transport: Transport, job_id: str, device: str, store: Store, progress: Progress,
           report: ProfileReport, should_stop: Callable[[], bool] = lambda: False) -> int:
    """Ingest a job's result lines as they land until the agent ends; returns its exit status.

    Only whole lines are ingested; a line being written stays pending until its newline arrives.
    """
    offset, pending = 0, b""

    def drain() -> None:
        # The read position moves only once its lines are stored: an interrupt in between (Ctrl-C lands
        # anywhere) leaves them to be read again, and ingestion is idempotent.
        nonlocal offset, pending
        chunk = transport.read_results(job_id, offset)
        whole, _, rest = (pending + chunk).rpartition(b"\n")
        if whole:
            _ingest(whole, device, store, progress, report, job_id)
        offset, pending = offset + len(chunk), rest

    try:
        while True:
            status = transport.finished(job_id)
            drain()
            if status is not None:
                drain()
                break
            if should_stop():
                raise KeyboardInterrupt  # a fleet-wide stop: same path as Ctrl-C
            time.sleep(transport.poll_s)
    except KeyboardInterrupt:
        transport.stop(job_id)
        drain()
        raise
    if status == 0:
        transport.mark_ingested(job_id)
    return status


def sync_board(transport: Transport, device: str, store: Store, progress: Progress,
               report: ProfileReport) -> None:
    """Bring in what the board measured that the store may lack, before planning new work.

    Lines of jobs that ended while the host was away are ingested (idempotently); a job still running
    (the host crashed or lost its link) is followed to its end instead of being started again.
    """
    for job_id in transport.list_jobs():
        if transport.is_ingested(job_id):
            continue
        status = transport.finished(job_id)
        if status is None:
            progress.on_phase("measure", 0)
            report.resumed_jobs.append(job_id)
            follow(transport, job_id, device, store, progress, report)
            continue
        data = transport.read_results(job_id, 0)
        whole, _, _ = data.rpartition(b"\n")
        left_out = 0
        if whole:
            before = report.ok + len(report.errors)
            left_out = _ingest(whole, device, store, progress, report, job_id)
            if report.ok + len(report.errors) > before:
                report.resumed_jobs.append(job_id)
        if not left_out:  # lines of another dataset stay on the board for it
            transport.mark_ingested(job_id)


def run_job(transport: Transport, job: dict[str, Any], store: Store, progress: Progress,
            report: ProfileReport, should_stop: Callable[[], bool] = lambda: False) -> None:
    """Run one job on the board behind `transport`, ingesting every result line as it lands."""
    job_id = job["job_id"]
    transport.put_job(job_id, job_text(job))
    transport.start(job_id)
    progress.on_phase("measure", len(job["tasks"]))
    status = follow(transport, job_id, job["device"], store, progress, report, should_stop)
    if status != 0:
        raise AgentFailed(f"agent exited with status {status} on job {job_id}:\n{transport.log_tail(job_id)}")


def profile(config: DeviceConfig, space: SearchSpace, n: int, seed: int, batch: int, store: Store,
            progress: Progress | None = None, transport: Transport | None = None,
            protocol_overrides: dict[str, Any] | None = None,
            should_stop: Callable[[], bool] = lambda: False, archs: Sequence[Sequence[int]] | None = None,
            remeasure: bool = False) -> ProfileReport:
    """Measure `n` architectures of `space` (sampled from `seed`) on the device; skip what is measured.

    `archs` names the architectures instead of sampling (`n` is then their number); `remeasure` measures
    them again even when the store has them (a searched network verified in several rounds: each round is
    a new measurement row). The board is synced first, so a rerun after a crash or a dropped link collects
    what the board measured meanwhile and plans only what is still missing.
    """
    if archs is not None:
        archs = [space.validate(a) for a in archs]
        n = len(archs)
    if n < 1:
        raise UserInputError(f"--n must be at least 1, got {n}")
    if batch < 1:
        raise UserInputError(f"--batch must be at least 1, got {batch}")
    progress = progress or Progress()
    t0 = time.perf_counter()
    if archs is None:
        archs = space.sample_unique(n, np.random.default_rng(seed))
    report = ProfileReport(device=config.name, space=space.name, requested=n, already_measured=0)
    store.add_device(config.name, config.kind, {"path": str(config.path) if config.path else None,
                                                "backend": config.runtime.backend,
                                                "precision": config.runtime.precision})
    own = transport is None
    transport = transport or open_transport(config)
    try:
        transport.prepare()
        sync_board(transport, config.name, store, progress, report)
        done = store.measured_archs(config.name, space.name, config.runtime.backend, config.runtime.precision,
                                    batch)
        todo = list(archs) if remeasure else [a for a in archs if space.arch_id(a) not in done]
        report.already_measured = n - len(todo)
        report.ok, report.errors = 0, []  # count this run's own measurements from here on
        if todo:
            models = export_models(space, todo, store, progress, backend=config.runtime.backend)
            missing = set(transport.missing_models([m.filename for m in models]))
            progress.on_phase("upload", len(missing))
            for m in models:
                if m.filename in missing:
                    transport.put_model(model_cache_dir() / m.filename)
                    progress.on_step("upload")
            job = build_job(config, models, batch, protocol_overrides=protocol_overrides)
            report.job_id = job["job_id"]
            run_job(transport, job, store, progress, report, should_stop)
    except KeyboardInterrupt:
        report.interrupted = True  # every finished result is already in the store
    finally:
        report.wall_s = time.perf_counter() - t0
        report.reconnects = getattr(transport, "reconnects", 0)
        if own:
            transport.close()
    return report
