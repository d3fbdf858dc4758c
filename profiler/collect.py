"""Bringing a board's result lines into the store: while a job runs (follow) and before planning (sync_board).

A board's work folder can hold jobs of several datasets (another --db, another host). A job records the
dataset that started it (`owner`, docs/contracts.md): only the owner ingests it and marks it ingested; other
datasets, and copies of the owner's file (same dataset id, another file), report it and leave it there, and so
does everyone for a job whose job.json cannot be read. Ingest is idempotent, so lines read twice (after an
interrupt or a dropped link) are stored once.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from profiler.report import ProfileReport, Progress
from profiler.store import Store, result_problem
from profiler.transports import Transport
from profiler.transports.base import job_dir
from spaces.errors import RuntimeFailure

# The agent's error type for a model file whose sha256 is not the job's (agents.worker.ModelChecksumError): the
# file was moved aside on the board, so the line says nothing about the model and the host sends it again.
DAMAGED_MODEL = "ModelChecksumError"


class CorruptResults(RuntimeFailure):
    """A line of a board's results file is not a result (a damaged file): the good lines are stored, the run
    stops and the message names the board, the file and the line."""


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


def is_damaged_model(r: dict[str, Any]) -> bool:
    return r.get("status") == "error" and (r.get("error") or {}).get("type") == DAMAGED_MODEL


def _ingest(chunk: bytes, device: str, store: Store, progress: Progress, report: ProfileReport,
            job_id: str = "?", collecting: bool = False, damaged: dict[str, dict[str, Any]] | None = None) -> int:
    """Ingest whole result lines; returns how many were left out as not this store's.

    Only lines of this device whose model this store registered (it does so before starting a job) are
    taken. New rows count as `collected` (a job of an earlier run) or as this run's measurements. A
    damaged-model line goes into `damaged` (model sha256 -> line) instead of the store when a dict is given:
    the caller sends the model again. Keyed by model, not task id: task ids repeat across jobs (every job numbers
    its tasks from t00000), and a follow-up job after a killed agent fills the same dict. A line that is not a
    result is CorruptResults, raised after the good lines are stored.
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
    if damaged is not None:
        damaged.update((r["model_sha256"], r) for r in mine if is_damaged_model(r))
        mine = [r for r in mine if not is_damaged_model(r)]
    # Only rows new to the store are counted: the same lines are read again after an interrupt.
    new = store.add_new_results(mine) if mine else []
    for r in new:
        if collecting:
            report.collected += 1
            report.collected_jobs[job_id] = report.collected_jobs.get(job_id, 0) + 1
        elif r["status"] == "ok":
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
           report: ProfileReport, should_stop: Callable[[], bool] = lambda: False, collecting: bool = False,
           damaged: dict[str, dict[str, Any]] | None = None) -> int:
    """Ingest a job's result lines as they land until the agent ends; returns its exit status.

    Only whole lines are ingested; a line being written stays pending until its newline arrives. The job
    is marked ingested when the agent ended well and no line was left out as another dataset's.
    """
    offset, pending, left_out = 0, b"", 0

    def drain() -> None:
        # The read position moves only once its lines are stored: an interrupt in between (Ctrl-C lands
        # anywhere) leaves them to be read again, and ingestion is idempotent.
        nonlocal offset, pending, left_out
        chunk = transport.read_results(job_id, offset)
        whole, _, rest = (pending + chunk).rpartition(b"\n")
        if whole:
            left_out += _ingest(whole, device, store, progress, report, job_id, collecting, damaged)
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
    if status == 0 and not left_out:
        transport.mark_ingested(job_id)
    return status


def result_task_ids(transport: Transport, job_id: str) -> set[str]:
    """Task ids of the job's whole result lines on the board (error lines included): what a follow-up job
    after a killed agent leaves out."""
    whole, _, _ = transport.read_results(job_id, 0).rpartition(b"\n")
    return {str(r["task_id"]) for r in _parse_lines(whole)[0] if "task_id" in r}


class UnreadableJob(ValueError):
    """A job folder whose job.json is missing or not a job (being written by another host right now, or
    damaged): nobody can tell whose it is, so it is neither ingested nor marked."""


def job_owner(job_text: bytes) -> dict[str, Any] | None:
    """The owner a job.json records ({"dataset_id", "db", "host"}), or None for a job of an older host (a job
    without an `owner` key). UnreadableJob when the file is missing (read as empty), not JSON, not an object,
    or holds an owner of the wrong shape (the agent refuses such a job)."""
    if not job_text.strip():
        raise UnreadableJob("no job.json")
    try:
        doc = json.loads(job_text)
    except ValueError as e:
        raise UnreadableJob(f"job.json is not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise UnreadableJob("job.json is not a JSON object")
    if "owner" not in doc:
        return None
    owner = doc["owner"]
    if isinstance(owner, dict) and isinstance(owner.get("dataset_id"), str) and owner["dataset_id"]:
        return owner
    raise UnreadableJob("job.json holds an owner of the wrong shape")


def _same_file(a: str, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def copy_owner(owner: dict[str, Any], store: Store) -> bool | None:
    """For an owner with this store's dataset id: None when the job is this store's, True when it belongs to a
    copy of this file (`cp lab.db exp.db` keeps the id).

    Ours: started from this very file (its resolved path, or the same file by another path), or from a path on
    this host where no file exists any more (the dataset was moved). A job of another host cannot be checked
    and stays with that host's copy; an owner without a `db` can only be told by its id."""
    db, host = owner.get("db"), owner.get("host")
    if isinstance(host, str) and host != socket.gethostname():
        return True
    if not isinstance(db, str) or db == str(store.path.resolve()) or _same_file(db, store.path):
        return None
    return True if os.path.lexists(db) else None


def sync_board(transport: Transport, device: str, store: Store, progress: Progress,
               report: ProfileReport) -> list[str]:
    """Bring in what the board measured for this dataset that the store may lack, before planning new work.

    Jobs of this dataset that ended while the host was away are ingested (idempotently) and marked; one still
    running (the host crashed or lost its link) is followed to its end instead of being started again. Jobs
    of another dataset, or of a copy of this one (copy_owner), are listed in `report.foreign_jobs` and left
    alone; returns those still running (they hold the board). A job without an owner (an older host) gives
    only lines whose model this store registered, and is marked only when none was left out. A job whose
    job.json is missing or unreadable is listed in `report.unreadable_jobs` and left alone.
    """
    dataset_id = store.dataset_id
    busy = []
    for job_id in transport.list_jobs():
        if transport.is_ingested(job_id):
            continue
        try:
            owner = job_owner(transport.read_job(job_id))
        except UnreadableJob as e:
            report.unreadable_jobs.append({"job_id": job_id, "why": str(e)})
            continue
        copy = None
        if owner is not None:
            copy = True if owner["dataset_id"] != dataset_id else copy_owner(owner, store)
        status = transport.finished(job_id)
        if copy:
            report.foreign_jobs.append({"job_id": job_id, "db": owner.get("db"), "host": owner.get("host"),
                                        "running": status is None,
                                        "same_dataset_id": owner["dataset_id"] == dataset_id})
            if status is None:
                busy.append(job_id)
            continue
        ignored: dict[str, dict[str, Any]] = {}  # damaged-model lines: the plan sends those models again
        if status is None:
            progress.on_phase("measure", 0)
            report.resumed_jobs.append(job_id)
            follow(transport, job_id, device, store, progress, report, collecting=True, damaged=ignored)
            continue
        whole, _, _ = transport.read_results(job_id, 0).rpartition(b"\n")
        left_out = 0
        if whole:
            before = report.collected
            left_out = _ingest(whole, device, store, progress, report, job_id, collecting=True, damaged=ignored)
            if report.collected > before:
                report.resumed_jobs.append(job_id)
        if owner is not None or not left_out:  # an unowned job's other lines stay for their dataset
            transport.mark_ingested(job_id)
    return busy


def wait_for_jobs(transport: Transport, job_ids: list[str], progress: Progress, report: ProfileReport,
                  should_stop: Callable[[], bool] = lambda: False) -> None:
    """Wait until these jobs (another dataset's, holding the board) have ended; nothing of them is read.

    Two jobs measuring at once would disturb each other's timings, and the board's lock refuses the second."""
    if not job_ids:
        return
    progress.on_phase("waiting for another dataset's job", 0)
    t0 = time.perf_counter()
    try:
        for job_id in job_ids:
            while transport.finished(job_id) is None:
                if should_stop():
                    raise KeyboardInterrupt
                time.sleep(max(transport.poll_s, 0.5))
    finally:
        report.waited_s += time.perf_counter() - t0
