"""Whether a dataset file can be opened, and how: the checks made before SQLite touches it, the read-only URI,
and the messages that name the file. Kept apart from the store's schema and queries (profiler/store.py).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from spaces.errors import RuntimeFailure, UserInputError


class StoreError(RuntimeFailure):
    """The database cannot be opened or a record does not fit its schema."""


class MissingDataset(StoreError, UserInputError):
    """A command that reads names a dataset file that is not there: a wrong --db (exit 2, like any path the
    user typed), whichever command it is."""


def _retry_locked(step: Callable[[], object], limit_s: float = 30.0) -> None:
    """Run `step`, retrying while the file is locked. Switching a new file to WAL answers "database is
    locked" at once when another process is doing the same (SQLite's busy timeout does not cover it), which
    is what the boards of a fleet do when they open one new dataset together."""
    deadline = time.monotonic() + limit_s
    delay = 0.01
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _nearest_existing(folder: Path) -> Path:
    """`folder` or its nearest ancestor that exists (the one whose permissions decide whether it can be made)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _check_openable(path: Path, readonly: bool = False) -> None:
    """Refuse, before SQLite touches it, a --db that is a folder, that is not there to be read, or, for a
    writing open, that this user cannot write (SQLite would open a read-only file and fail at the first
    write, or with WAL not at all). A file that is not there yet is created, in its folder, by a writing open."""
    if path.is_dir():
        raise StoreError(f"{path}: is a folder, not a dataset file (give a file such as {path / 'edgeprof.db'})")
    folder = path.parent if str(path.parent) else Path(".")
    if readonly:
        if not path.exists():
            raise MissingDataset(f"{path}: no such dataset file (measure with `edgeprof profile` or import a table "
                             "with `edgeprof dataset import` first); check --db")
        if not os.access(path, os.R_OK):
            raise StoreError(f"{path}: the dataset file is not readable for this user; fix its permissions")
        return
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(f"{path}: not writable: the dataset file is read-only for this user (this command "
                         "writes to it, and to its WAL files beside it): copy it somewhere writable or fix its "
                         "permissions")
    existing = _nearest_existing(folder)
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "its folder" if existing == folder else "the nearest existing folder above it,"
        raise StoreError(f"{path}: not writable: {what} {existing} is read-only for this user (this command "
                         "writes the dataset and SQLite keeps its WAL files beside it): copy the dataset "
                         "somewhere writable or fix the permissions")


def _readonly_uri(path: Path) -> str:
    """An SQLite URI that opens `path` without ever writing. When its folder is not writable and no WAL is
    pending, `immutable=1` spares SQLite the -shm/-wal files it could not create there (a pending WAL must be
    read, so it is opened as a plain read-only file and its -shm must already exist)."""
    folder = path.parent if str(path.parent) else Path(".")
    wal = path.with_name(path.name + "-wal")
    pending = wal.exists() and wal.stat().st_size > 0
    immutable = not os.access(folder, os.W_OK) and not pending
    return f"{path.resolve().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")


def _open_failure(path: Path, e: sqlite3.DatabaseError) -> str:
    """A message that names the file and says what is wrong with it, for an error while opening it."""
    text = str(e)
    if "not a database" in text or "malformed" in text:
        return f"{path}: not a usable edgeprof database: not an SQLite file or damaged ({text}); check --db"
    if "readonly" in text or "read-only" in text:
        return f"{path}: not a usable edgeprof database: read-only ({text}); copy it somewhere writable"
    if "unable to open" in text:
        return (f"{path}: cannot open the dataset ({text}): SQLite also needs its -wal and -shm files beside it; "
                f"is its folder {path.parent} read-only while a write is pending? copy the dataset somewhere "
                "writable")
    return f"{path}: not a usable edgeprof database: {text}"
