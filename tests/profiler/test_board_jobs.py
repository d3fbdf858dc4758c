"""Whose job is it: a copy of a dataset file does not take the original's jobs, a moved file keeps them, a job
folder without a readable job.json is nobody's to take, and a lock held by no job fails the run with its holder.

Local transport, real agents (fast protocol).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from profiler import collect
from profiler.config import load_config
from profiler.session import BoardLockHeld, profile
from profiler.store import Store
from profiler.transports.local import LocalTransport
from spaces import create_space


def _run(config_path: Path, db: Path, n: int, seed: int):
    with Store(db) as store:
        return profile(load_config(config_path), create_space("nb201"), n=n, seed=seed, batch=1, store=store)


def _left_by_a_crash(config_path: Path, db: Path) -> Path:
    """A job of `db` that its host never marked (killed after the agent ended)."""
    assert _run(config_path, db, n=2, seed=1).ok == 2
    (job,) = (config_path.parent / "work" / "jobs").iterdir()
    (job / "ingested").unlink()
    return job


def test_a_copy_of_the_dataset_file_leaves_the_originals_job_alone(fast_cpu_config: Path, tmp_path: Path) -> None:
    lab, exp = tmp_path / "lab.db", tmp_path / "exp.db"
    job = _left_by_a_crash(fast_cpu_config, lab)
    shutil.copyfile(lab, exp)  # `cp lab.db exp.db`: the same dataset id
    rep = _run(fast_cpu_config, exp, n=1, seed=2)
    assert rep.foreign_jobs == [{"job_id": job.name, "db": str(lab.resolve()), "host": socket.gethostname(),
                                 "running": False, "same_dataset_id": True}]
    assert (rep.ok, rep.collected, rep.resumed_jobs) == (1, 0, [])
    assert not (job / "ingested").exists(), "a copy must not mark the original's job"
    again = _run(fast_cpu_config, lab, n=2, seed=1)  # the original still owns it
    assert (again.foreign_jobs, again.already_measured, again.ok) == ([], 2, 0)
    assert (job / "ingested").exists()


def test_a_moved_dataset_file_keeps_its_jobs(fast_cpu_config: Path, tmp_path: Path) -> None:
    old, new = tmp_path / "lab.db", tmp_path / "archive" / "lab.db"
    job = _left_by_a_crash(fast_cpu_config, old)
    new.parent.mkdir()
    old.rename(new)
    rep = _run(fast_cpu_config, new, n=2, seed=1)
    assert (rep.foreign_jobs, rep.already_measured, rep.ok) == ([], 2, 0)
    assert (job / "ingested").exists(), "no file at the recorded path any more: the moved file owns the job"


def test_a_job_of_another_host_with_the_same_id_is_a_copys(tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    db.touch()

    class Here:
        path = db

    here = {"dataset_id": "x", "db": str(db.resolve()), "host": socket.gethostname()}
    assert collect.copy_owner(here, Here()) is None
    assert collect.copy_owner({**here, "host": "elsewhere"}, Here()) is True
    link = tmp_path / "link.db"
    link.symlink_to(db)
    assert collect.copy_owner({**here, "db": str(link)}, Here()) is None, "the same file by another path"
    other = tmp_path / "other.db"
    other.touch()
    assert collect.copy_owner({**here, "db": str(other)}, Here()) is True
    assert collect.copy_owner({**here, "db": str(tmp_path / "gone.db")}, Here()) is None


def test_a_job_folder_without_a_readable_job_file_is_left_alone(fast_cpu_config: Path, tmp_path: Path) -> None:
    """Another host's put_job between mkdir and job.json (SSH), or a damaged job.json: no dataset marks it."""
    jobs = tmp_path / "work" / "jobs"
    (jobs / "j-being-written").mkdir(parents=True)
    (jobs / "j-half").mkdir()
    (jobs / "j-half" / "job.json").write_text('{"job_id": "j-half", "tas')
    rep = _run(fast_cpu_config, tmp_path / "b.db", n=1, seed=2)
    assert rep.ok == 1
    assert sorted(u["job_id"] for u in rep.unreadable_jobs) == ["j-being-written", "j-half"]
    assert "no job.json" in rep.unreadable_jobs[0]["why"] and "not JSON" in rep.unreadable_jobs[1]["why"]
    assert not (jobs / "j-being-written" / "ingested").exists() and not (jobs / "j-half" / "ingested").exists()
    assert rep.to_dict()["unreadable_jobs"] == rep.unreadable_jobs


def test_a_job_file_is_written_whole_or_not_at_all(fast_cpu_config: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    t = LocalTransport(load_config(fast_cpu_config))
    text = json.dumps({"job_id": "j1", "tasks": [{"task_id": f"t{i:05d}"} for i in range(100)]})
    real = Path.write_text

    def half(self: Path, data: str, *args, **kwargs) -> int:
        real(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half)
    with pytest.raises(OSError):
        t.put_job("j1", text)
    monkeypatch.setattr(Path, "write_text", real)
    assert not (tmp_path / "work" / "jobs" / "j1" / "job.json").exists(), "never a half-written job.json"
    t.put_job("j1", text)
    assert (tmp_path / "work" / "jobs" / "j1" / "job.json").read_text() == text


def test_a_lock_held_by_no_job_fails_at_once_naming_it(fast_cpu_config: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A live process that is not a job of the folder holds board.lock (the agent takes over only a dead
    process's lock): the run fails after one retry naming the lock and its holder, not after 6 jobs."""
    import profiler.session as session

    monkeypatch.setattr(session, "BUSY_UNSEEN_WAIT_S", 0.0)
    lock = tmp_path / "work" / "board.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": "earlier"}))
    with pytest.raises(BoardLockHeld) as failed:
        _run(fast_cpu_config, tmp_path / "d.db", n=1, seed=2)
    message = str(failed.value)
    assert str(lock) in message and f"pid {os.getpid()}" in message, message
    assert len(list((tmp_path / "work" / "jobs").iterdir())) == 2, "one retry, then the clear failure"
    assert lock.exists(), "the lock is left for a person to judge"


def test_the_report_counts_finished_foreign_jobs_and_names_running_ones() -> None:
    from edgeprof.commands.profile import board_lines

    foreign = [{"job_id": f"f{i}", "db": "/o/other.db", "host": "h", "running": False, "same_dataset_id": False}
               for i in range(3)]
    foreign += [{"job_id": "r1", "db": "/o/other.db", "host": "h", "running": True, "same_dataset_id": False},
                {"job_id": "c1", "db": "/o/lab.db", "host": "h2", "running": False, "same_dataset_id": True},
                {"job_id": "c2", "db": "/o/lab.db", "host": "h2", "running": False, "same_dataset_id": True}]
    lines = board_lines({"foreign_jobs": foreign, "unreadable_jobs": [{"job_id": "u1", "why": "no job.json"}]})
    assert lines == [
        "  job r1 of another dataset (/o/other.db on h) was running: waited for it",
        "  3 finished job(s) of other datasets left on the board for them",
        "  jobs c1, c2: same dataset id as this one: a copy of it at /o/lab.db on h2 owns them (run there to "
        "collect)",
        "  job u1 on the board left alone: no job.json (being written by another run, or damaged)"]
