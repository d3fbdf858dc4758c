"""Store(path, readonly=True): commands that only read open a dataset without writing anything, so a dataset on
a read-only folder or filesystem can still be summarised and exported; a writing open names the path that is not
writable. Root may write anything, so the read-only-folder cases run in a forked child that has become `nobody`.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import signal
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from profiler.importing import imported_result
from profiler.store import SCHEMA_VERSION, Store, StoreError


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_dataset(path: Path) -> None:
    with Store(path) as store:
        store.add_device("devA", "cpu", {})
        store.add_results([imported_result(job_id="j", task_id=str(i), model_sha256=f"m{i}", device="devA",
                                           median_ms=1.0 + i, environment={}) for i in range(3)])


def test_readonly_reads_and_never_writes(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    make_dataset(db)
    before = digest(db)
    with Store(db, readonly=True) as store:
        assert store.counts()["measurements"] == 3
        assert len(store.rows(device="devA")) == 3
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
            store.add_device("devB", "cpu", {})
    assert digest(db) == before


def test_readonly_of_a_missing_file_names_it_and_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "missing.db"
    with pytest.raises(StoreError, match="no such dataset file") as e:
        Store(db, readonly=True)
    assert str(db) in str(e.value)
    assert not db.parent.exists()


def test_readonly_refuses_an_empty_or_foreign_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(StoreError, match="no edgeprof dataset"):
        Store(empty, readonly=True)
    assert empty.read_bytes() == b""  # not turned into a dataset


def test_readonly_upgrades_an_older_writable_file_first(tmp_path: Path) -> None:
    """A schema-1 file (no device latency columns) is migrated by a read where it may be written."""
    db = tmp_path / "old.db"
    make_dataset(db)
    c = sqlite3.connect(db)
    c.execute("ALTER TABLE measurements DROP COLUMN device_latency")
    c.execute("ALTER TABLE measurements DROP COLUMN device_median_ms")
    c.execute("PRAGMA user_version=1")
    c.commit()
    c.close()
    with Store(db, readonly=True) as store:
        assert len(store.rows()) == 3
    c = sqlite3.connect(db)
    assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    c.close()


def as_nobody(work: Callable[[], Any]) -> Any:
    """`work()` in a forked child that is `nobody` when this process is root (else this user): its JSON-able
    result, or {"error": "<type>: <message>"} for an exception."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            payload = {"value": work()}
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            payload = {"error": f"{type(e).__name__}: {e}"}
        os.write(write_end, json.dumps(payload).encode())
        os._exit(0)
    os.close(write_end)
    data = b""
    with os.fdopen(read_end, "rb") as f:
        while True:
            ready, _, _ = select.select([f], [], [], 60)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the child did not finish within 60 s")
            chunk = os.read(f.fileno(), 65536)
            if not chunk:
                break
            data += chunk
    os.waitpid(pid, 0)
    return json.loads(data)


@pytest.fixture
def ro_folder() -> Iterator[Path]:
    """A folder (outside pytest's 0700 base, so nobody can enter it) holding d.db, then made read-only."""
    folder = Path(tempfile.mkdtemp(prefix="edgeprof-ro-"))
    try:
        make_dataset(folder / "d.db")
        (folder / "d.db").chmod(0o444)
        folder.chmod(0o555)
        yield folder
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_dataset_in_a_read_only_folder_is_read(ro_folder: Path) -> None:
    db = ro_folder / "d.db"
    before = digest(db)

    def read() -> int:
        with Store(db, readonly=True) as store:
            return store.counts()["measurements"]

    assert as_nobody(read) == {"value": 3}
    assert digest(db) == before
    assert sorted(p.name for p in ro_folder.iterdir()) == ["d.db"]  # no -wal/-shm could be, none was needed


def test_a_write_into_a_read_only_folder_names_the_path(ro_folder: Path) -> None:
    def write(path: Path) -> Callable[[], Any]:
        def work() -> Any:
            Store(path).close()
        return work

    got = as_nobody(write(ro_folder / "d.db"))
    assert got["error"].startswith("StoreError"), got
    assert str(ro_folder / "d.db") in got["error"] and "not writable" in got["error"], got
    new = ro_folder / "sub" / "new.db"
    got = as_nobody(write(new))
    assert str(new) in got["error"] and f"{ro_folder} is read-only" in got["error"], got


def test_a_pending_wal_is_read_from_a_read_only_folder(tmp_path: Path) -> None:
    """Rows still in the -wal file (a writer that did not checkpoint) are seen by a read-only open."""
    folder = Path(tempfile.mkdtemp(prefix="edgeprof-ro-"))
    writer = None
    try:
        db = folder / "d.db"
        make_dataset(db)
        writer = Store(db)
        writer.db.execute("PRAGMA wal_autocheckpoint=0")
        writer.add_device("devB", "cpu", {})
        assert (folder / "d.db-wal").stat().st_size > 0
        for p in folder.iterdir():
            p.chmod(0o444)
        folder.chmod(0o555)

        def read() -> int:
            with Store(db, readonly=True) as store:
                return store.counts()["devices"]

        got = as_nobody(read)
        # With the -shm there, SQLite reads the pending WAL; devB is only in it.
        assert got == {"value": 2}, got
    finally:
        if writer is not None:
            writer.close()
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)
