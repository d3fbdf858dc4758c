"""One profiling run: sample architectures, export what is missing, measure through a transport, ingest.

Every result line is ingested as soon as it arrives, so an interrupt keeps all finished measurements and
the next run measures only what is still missing. The board is synced first (profiler.collect): what an
earlier run of this dataset left there is collected, other datasets' jobs are left alone. A model the board
finds damaged is sent again and measured in a follow-up job of the same run, and so are the tasks of an agent
killed mid-job (SIGKILL, an OOM kill, a reboot), a bounded number of times.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from agents.backends import BACKENDS
from agents.protocol import EXIT_BOARD_BUSY
from profiler.collect import CorruptResults, follow, result_task_ids, sync_board, wait_for_jobs
from profiler.config import DeviceConfig
from profiler.jobs import ModelTask, build_job, job_text
from profiler.report import ProfileReport, Progress
from profiler.store import ModelRecord, Store
from profiler.transports import Transport, open_transport
from spaces import SearchSpace, UserInputError, export_onnx
from spaces.errors import RuntimeFailure
from spaces.export import export_space_package

# The report, the progress callbacks and the collecting steps lived here first; callers import them from here.
__all__ = ["AgentFailed", "AgentKilled", "CorruptResults", "ProfileReport", "Progress", "export_models", "follow",
           "profile", "run_job", "sync_board"]

POLL_S = 0.2


class AgentFailed(RuntimeFailure):
    """The agent ended without measuring its job (bad job, missing Python, crash)."""


class BoardBusy(AgentFailed):
    """Another job held the board's lock, so the agent measured nothing (a job another dataset started after
    this run looked at the board)."""


class BoardLockHeld(AgentFailed):
    """The board's lock is held, but by no job running in the board's work folder: waiting will not free it."""


BUSY_RETRIES = 5  # new jobs after a busy board, each once the jobs running there have ended
BUSY_UNSEEN_WAIT_S = 2.0  # before the one retry when a busy board shows no running job


class AgentKilled(AgentFailed):
    """The agent died of a signal or is gone from the board (kill -9, an OOM kill, a reboot): its tasks without
    a result line can run again in a new job."""

    def __init__(self, message: str, job: dict[str, Any], status: int):
        super().__init__(message)
        self.job, self.job_id, self.status = job, str(job["job_id"]), status


# Follow-up jobs per run after the agent was killed: a model that crashes the runtime must not loop.
AGENT_RESTARTS = 2
# 128 + SIGINT / SIGTERM: someone stopped the agent on purpose (our own stop() sends SIGTERM, then the host
# stops too); not a crash to start again.
STOPPED_ON_PURPOSE = (130, 143)


def shell_status(status: int) -> int:
    """A status as a shell reports it: a local subprocess killed by signal N (Popen says -N) is 128 + N."""
    return 128 - status if status < 0 else status


def agent_killed(status: int) -> bool:
    """The agent died of a signal (137: SIGKILL) or is gone (255: no exit status on the board), as opposed
    to a status it set itself (1 failure, 2 invalid job, 75 board busy) or a deliberate stop."""
    return status > 128 and status not in STOPPED_ON_PURPOSE


def model_cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgeprof" / "models"
    base.mkdir(parents=True, exist_ok=True)
    return base


def record_for(space: SearchSpace, arch: Any, sha256: str, nbytes: int) -> ModelRecord:
    costs = space.costs(arch)
    return ModelRecord(sha256=sha256, space=space.name, space_config=space.config, arch_id=space.arch_id(arch),
                       input_shape=list(space.input_shape_of(arch, 1)), flops=int(costs["flops"]),
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


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_models(space: SearchSpace, archs: list[Any], store: Store, progress: Progress, backend: str = "onnxruntime",
                  cache: Path | None = None, report: ProfileReport | None = None) -> list[ModelTask]:
    """Export archs in the form the backend declares (content-addressed) and record them with their costs.

    The exporter keeps a cached file it finds under the right name, so a cached file whose bytes no longer
    hash to its name (a damaged disk, or a board copy hard-linked to it and truncated there) is deleted and
    exported again before it can be sent: counted in `report.cache_repaired`.
    """
    cache = cache or model_cache_dir()
    export = EXPORTERS[model_format(backend)]
    tasks, records = [], []
    progress.on_phase("export", len(archs))
    for arch in archs:
        with _EXPORT_LOCK:
            m, opts = export(space, arch, cache)
            if file_sha256(Path(m.path)) != m.sha256:
                Path(m.path).unlink()
                m, opts = export(space, arch, cache)
                if report is not None:
                    report.cache_repaired += 1
        tasks.append(ModelTask(m.sha256, space.input_shape_of(arch, 1), filename=Path(m.path).name, options=opts))
        records.append(record_for(space, arch, m.sha256, m.nbytes))
        progress.on_step("export")
    store.add_models(records)
    return tasks


def run_job(transport: Transport, job: dict[str, Any], store: Store, progress: Progress,
            report: ProfileReport, should_stop: Callable[[], bool] = lambda: False,
            damaged: dict[str, dict[str, Any]] | None = None) -> None:
    """Run one job on the board behind `transport`, ingesting every result line as it lands.

    `damaged`, when given, receives the lines of tasks whose model file the board found damaged (model sha256
    -> line) instead of the store, for the caller to send those models again."""
    job_id = job["job_id"]
    transport.put_job(job_id, job_text(job))
    transport.start(job_id)
    progress.on_phase("measure", len(job["tasks"]))
    status = shell_status(follow(transport, job_id, job["device"], store, progress, report, should_stop,
                                 damaged=damaged))
    if status == EXIT_BOARD_BUSY:
        raise BoardBusy(f"board busy, job {job_id} not run:\n{transport.log_tail(job_id)}")
    if agent_killed(status):
        raise AgentKilled(f"agent {'is gone' if status == 255 else 'was killed'} (status {status}) on job "
                          f"{job_id}:\n{transport.log_tail(job_id)}", job, status)
    if status != 0:
        raise AgentFailed(f"agent exited with status {status} on job {job_id}:\n{transport.log_tail(job_id)}")


def owner_of(store: Store) -> dict[str, Any]:
    """Who starts a job: this dataset (its stable id), with its file and this host for people to read."""
    return {"dataset_id": store.dataset_id, "db": str(store.path.resolve()), "host": socket.gethostname()}


def _upload(transport: Transport, models: list[ModelTask], cache: Path, progress: Progress,
            phase: str = "upload", resend: bool = False) -> int:
    """Send the models the board lacks (all of `models` when `resend`); returns how many files were sent."""
    files = list(dict.fromkeys(m.filename for m in models))
    send = files if resend else [f for f in files if f in set(transport.missing_models(files))]
    progress.on_phase(phase, len(send))
    for filename in send:
        transport.put_model(cache / filename)
        progress.on_step(phase)
    return len(send)


def running_jobs(transport: Transport) -> list[str]:
    """Jobs on the board whose agent is still running (whoever started them)."""
    return [j for j in transport.list_jobs() if not transport.is_ingested(j) and transport.finished(j) is None]


def _lock_refusal(log: str) -> str:
    """The agent's refusal line (agents.durable.ResultsLock: who holds the lock, since when, which file to
    delete), or the log's last line."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    return next((ln for ln in reversed(lines) if "board is busy" in ln), lines[-1] if lines else "(empty log)")


def run_when_free(transport: Transport, make_job: Callable[[], dict[str, Any]], store: Store, progress: Progress,
                  report: ProfileReport, should_stop: Callable[[], bool] = lambda: False,
                  damaged: dict[str, dict[str, Any]] | None = None) -> str:
    """Run a job from `make_job`; when the board is busy with a job that started after the sync (two datasets
    racing for one board), wait for the jobs running there and start a new one. Returns the id that ran.

    A busy board with no job of its work folder running is held by something else: a lock from another host
    (a shared disk), a live process that is not a job of this folder, a job started by hand. The agent already
    takes over a dead process's lock on its own host, so such a lock does not go away by itself: after one more
    try (the holder may just have ended or not yet written its status) the run fails naming the lock and its
    holder, instead of starting job after job."""
    unseen = 0
    for attempt in range(BUSY_RETRIES + 1):
        job = make_job()
        try:
            run_job(transport, job, store, progress, report, should_stop, damaged)
            return str(job["job_id"])
        except BoardBusy:
            if attempt == BUSY_RETRIES:
                raise
            report.board_busy += 1
            running = running_jobs(transport)
            if running:
                unseen = 0
                wait_for_jobs(transport, running, progress, report, should_stop)
                continue
            unseen += 1
            if unseen > 1:
                raise BoardLockHeld(
                    f"{job['device']}: the board's lock is held but no job in its work folder is running, so "
                    "waiting will not free it: "
                    f"{_lock_refusal(transport.log_tail(str(job['job_id'])))}. Check that no agent runs there "
                    "(another host sharing the folder, a run started by hand), then delete that lock file and "
                    "rerun") from None
            time.sleep(BUSY_UNSEEN_WAIT_S)
    raise AssertionError("unreachable")


def _run_restarting(transport: Transport, models: list[ModelTask], new_job: Callable[[list[ModelTask], bool],
                    dict[str, Any]], store: Store, progress: Progress, report: ProfileReport, cache: Path,
                    name: Callable[[ModelTask], str], should_stop: Callable[[], bool],
                    damaged: dict[str, dict[str, Any]] | None = None) -> None:
    """Run `models` in one job; when the agent is killed mid-job, run its tasks without a result line in a
    follow-up job (new id, same owner), AGENT_RESTARTS times per run at most (`report.agent_restarts`).

    A follow-up job that dies before any new result points at the task it was running (the first without a
    line): a model that crashes the runtime. It is left out, the others are measured, and the run ends with
    AgentFailed naming it."""
    todo, culprit, restart = list(models), "", False
    while todo:
        try:
            run_when_free(transport, partial(new_job, todo, restart), store, progress, report, should_stop, damaged)
            break
        except AgentKilled as e:
            have = result_task_ids(transport, e.job_id)
            tasks = e.job["tasks"]
            left = [m for m, t in zip(todo, tasks, strict=True) if t["task_id"] not in have]
            if not left:
                break  # died after its last line: nothing to run again
            first = next(t["task_id"] for t in tasks if t["task_id"] not in have)
            where = f"task {first} ({name(left[0])}) of job {e.job_id}"
            if restart and len(left) == len(todo):
                culprit = (f"the agent died again (status {e.status}) at {where} before any new result: that "
                           "network crashes the runtime on this board and was left out")
                left = left[1:]
            if not left:
                break
            if report.agent_restarts >= AGENT_RESTARTS:
                raise AgentFailed(f"{e}\nthe agent was killed at {where} after {report.agent_restarts} restarts "
                                  f"in this run; {len(left)} task(s) left, rerun to measure them"
                                  + (f"; {culprit}" if culprit else "")) from None
            report.agent_restarts += 1
            restart = True
            _upload(transport, left, cache, progress)  # the models are on the board unless it lost them
            todo = left
    if culprit:
        raise AgentFailed(culprit + "; the other networks are measured")


def measure_tasks(transport: Transport, config: DeviceConfig, models: list[ModelTask], batch: int, store: Store,
                  progress: Progress, report: ProfileReport, protocol_overrides: dict[str, Any] | None,
                  should_stop: Callable[[], bool], name: Callable[[ModelTask], str],
                  again: Callable[[list[ModelTask]], list[ModelTask]]) -> None:
    """Send and measure prebuilt `models` (their files in model_cache_dir()) in one job of this dataset.

    Models the board finds damaged (the agent moved them aside) are made again by `again` (from the space, or
    from the user's file), sent again and their tasks run in one follow-up job, where a second mismatch is
    stored as an error. A killed agent's tasks run again in follow-up jobs (_run_restarting). `name` says which
    network a task is, for messages."""
    cache = model_cache_dir()
    owner = owner_of(store)

    def job_for(field: str) -> Callable[[list[ModelTask], bool], dict[str, Any]]:
        def make(todo: list[ModelTask], restart: bool) -> dict[str, Any]:
            job = build_job(config, todo, batch, protocol_overrides=protocol_overrides, owner=owner)
            if restart:
                report.restart_job_ids.append(job["job_id"])
            else:
                setattr(report, field, job["job_id"])
            return job
        return make

    _upload(transport, models, cache, progress)
    damaged: dict[str, dict[str, Any]] = {}
    _run_restarting(transport, models, job_for("job_id"), store, progress, report, cache, name, should_stop,
                    damaged)
    if not damaged:
        return
    fresh = again([m for m in models if m.sha256 in damaged])
    report.models_resent = _upload(transport, fresh, cache, progress, "re-sending damaged models", resend=True)
    _run_restarting(transport, fresh, job_for("retry_job_id"), store, progress, report, cache, name, should_stop)


def _measure(transport: Transport, config: DeviceConfig, space: SearchSpace, archs: list[Any], batch: int,
             store: Store, progress: Progress, report: ProfileReport, protocol_overrides: dict[str, Any] | None,
             should_stop: Callable[[], bool]) -> None:
    """Export `archs` and measure them (measure_tasks); damaged models are exported again from their arch."""
    models = export_models(space, archs, store, progress, backend=config.runtime.backend, report=report)
    arch_of = {m.sha256: a for m, a in zip(models, archs, strict=True)}

    def name(m: ModelTask) -> str:
        return f"arch {space.arch_id(arch_of[m.sha256])}, model {m.sha256[:12]}" if m.sha256 in arch_of \
            else f"model {m.sha256[:12]}"

    def again(damaged: list[ModelTask]) -> list[ModelTask]:
        return export_models(space, [arch_of[m.sha256] for m in damaged], store, Progress(),
                             backend=config.runtime.backend, report=report)

    measure_tasks(transport, config, models, batch, store, progress, report, protocol_overrides, should_stop,
                  name, again)


def register_device(store: Store, config: DeviceConfig) -> None:
    """The device in the dataset, with the config file and setting its rows were measured under."""
    store.add_device(config.name, config.kind, {"path": str(config.path) if config.path else None,
                                                "backend": config.runtime.backend,
                                                "precision": config.runtime.precision})


def profile(config: DeviceConfig, space: SearchSpace, n: int, seed: int, batch: int, store: Store,
            progress: Progress | None = None, transport: Transport | None = None,
            protocol_overrides: dict[str, Any] | None = None,
            should_stop: Callable[[], bool] = lambda: False, archs: Sequence[Sequence[int]] | None = None,
            remeasure: bool = False) -> ProfileReport:
    """Measure `n` architectures of `space` (sampled from `seed`) on the device; skip what is measured.

    `archs` names the architectures instead of sampling (`n` is then their number); `remeasure` measures
    them again even when the store has them (a searched network verified in several rounds: each round is
    a new measurement row). The board is synced first, so a rerun after a crash or a dropped link collects
    what the board measured meanwhile and plans only what is still missing; a running job of another
    dataset is waited for. Models the board finds damaged are sent again and their tasks run once more.
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
    register_device(store, config)
    setting = (config.name, space.name, config.runtime.backend, config.runtime.precision, batch)
    before = store.measured_archs(*setting, space_config=space.config)
    own = transport is None
    transport = transport or open_transport(config)
    todo: list[Any] = []
    try:
        transport.prepare()
        busy = sync_board(transport, config.name, store, progress, report)
        done = store.measured_archs(*setting, space_config=space.config)
        todo = list(archs) if remeasure else [a for a in archs if space.arch_id(a) not in done]
        report.already_measured = 0 if remeasure else sum(space.arch_id(a) in before for a in archs)
        if todo:
            wait_for_jobs(transport, busy, progress, report, should_stop)
            _measure(transport, config, space, todo, batch, store, progress, report, protocol_overrides, should_stop)
    except KeyboardInterrupt:
        report.interrupted = True  # every finished result is already in the store
    finally:
        report.remaining = max(0, len(todo) - report.ok)
        report.wall_s = time.perf_counter() - t0
        report.reconnects = getattr(transport, "reconnects", 0)
        if own:
            transport.close()
    return report
