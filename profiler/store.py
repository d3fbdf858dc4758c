"""The latency dataset: one SQLite file (WAL) with devices, models and measurements.

Ingest is idempotent: a result line is keyed by (job id, task id), so reading the same results file twice,
or resuming after a dropped link, never duplicates a measurement. Raw samples sit in a side table as
little-endian float64 arrays so summaries stay fast.

Over ~450 lines: the one class every reader and writer of the dataset goes through; the schema, its migrations
and the queries that read it stay together so a change to one is seen beside the others (the accuracy table and
file handling already live in profiler/accuracy.py and profiler/store_files.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.protocol import RESULT_SCHEMA
from profiler.accuracy import ACCURACIES_DDL, AccuracyRecord, accuracies, add_accuracies
from profiler.store_files import (
    StoreError,
    _check_openable,
    _open_failure,
    _readonly_uri,
    _retry_locked,
)

if TYPE_CHECKING:  # typing.Self is 3.11+ and hosts run 3.10; annotations are never evaluated at run time
    from typing_extensions import Self

SCHEMA_VERSION = 3
# Additions per version, applied in order to older files (a database is never rebuilt from scratch).
MIGRATIONS = {
    2: """
ALTER TABLE measurements ADD COLUMN device_median_ms REAL;
ALTER TABLE measurements ADD COLUMN device_latency TEXT;
""",
    3: ACCURACIES_DDL,  # profiler/accuracy.py
}
# The oldest schema a read-only open reads as it is (the columns `rows` selects exist from version 2 on;
# without the accuracies table of version 3 a dataset reads as holding no accuracy).
READABLE_FROM = 2
STAT_FIELDS = ("median", "mean", "std", "min", "max", "p10", "p90", "p99", "iqr_mean")

DDL = """
CREATE TABLE IF NOT EXISTS devices (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    config TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    sha256 TEXT PRIMARY KEY,
    space TEXT NOT NULL,
    space_config TEXT NOT NULL,
    arch_id TEXT NOT NULL,
    input_shape TEXT,
    flops INTEGER,
    params INTEGER,
    mem_access INTEGER,
    intensity REAL,
    nbytes INTEGER,
    added_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS models_by_arch ON models (space, arch_id);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    result_key TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    device TEXT NOT NULL REFERENCES devices (name),
    model_sha256 TEXT NOT NULL,
    backend TEXT NOT NULL,
    precision TEXT NOT NULL,
    batch INTEGER NOT NULL,
    status TEXT NOT NULL,
    error_type TEXT,
    error_message TEXT,
    median_ms REAL, mean_ms REAL, std_ms REAL, min_ms REAL, max_ms REAL,
    p10_ms REAL, p90_ms REAL, p99_ms REAL, iqr_mean_ms REAL,
    cv REAL, n INTEGER, ci_halfwidth_ms REAL, converged INTEGER,
    energy_mj REAL,
    energy TEXT,
    device_median_ms REAL,
    device_latency TEXT,
    environment TEXT,
    protocol TEXT,
    backend_info TEXT,
    warnings TEXT,
    source TEXT NOT NULL,
    measured_at TEXT,
    ingested_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_by_model ON measurements (device, model_sha256, backend, precision, batch);
CREATE TABLE IF NOT EXISTS layers (
    measurement_id INTEGER NOT NULL REFERENCES measurements (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    op_type TEXT,
    time_ms REAL NOT NULL,
    calls INTEGER,
    share REAL,
    PRIMARY KEY (measurement_id, idx)
);
CREATE TABLE IF NOT EXISTS samples (
    measurement_id INTEGER PRIMARY KEY REFERENCES measurements (id) ON DELETE CASCADE,
    timed BLOB,
    warmup BLOB
);
""" + ACCURACIES_DDL


@dataclass(frozen=True)
class ModelRecord:
    sha256: str
    space: str
    space_config: dict[str, Any]
    arch_id: str
    input_shape: list[int] | None = None
    flops: int | None = None
    params: int | None = None
    mem_access: int | None = None
    intensity: float | None = None
    nbytes: int | None = None


def _statements(script: str) -> list[str]:
    """Split a DDL script (no triggers, no string literals with ';') into statements."""
    return [part.strip() for part in script.split(";") if part.strip()]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# Fields a result line must have for the store to file it (the rest are optional or nullable).
RESULT_REQUIRED = ("job_id", "task_id", "device", "model_sha256", "backend", "precision", "batch", "status")


def result_problem(r: object) -> str | None:
    """Why `r` cannot be stored as an agent result (another schema, a missing field), or None if it can."""
    if not isinstance(r, dict):
        return f"a result must be a JSON object, got {type(r).__name__}"
    if r.get("schema") != RESULT_SCHEMA:
        return f"result for task {r.get('task_id')!r}: schema {r.get('schema')!r}, expected {RESULT_SCHEMA!r}"
    missing = [k for k in RESULT_REQUIRED if r.get(k) is None]
    if missing:
        return f"result for task {r.get('task_id')!r} lacks {', '.join(missing)}"
    if isinstance(r["batch"], bool) or not isinstance(r["batch"], int):
        return f"result for task {r.get('task_id')!r}: batch must be an int, got {r['batch']!r}"
    return None


def result_key(job_id: str, task_id: str) -> str:
    return hashlib.sha256(f"{job_id}\0{task_id}".encode()).hexdigest()


def _blob(values: list[float] | None) -> bytes | None:
    return None if values is None else np.asarray(values, dtype="<f8").tobytes()


class Store:
    """A latency dataset in one SQLite file. Use as a context manager or call close()."""

    def __init__(self, path: str | Path, readonly: bool = False):
        """`readonly`: for commands that only read. Nothing is written (no journal change, schema creation or
        migration; SQLite refuses writes), so a dataset on a read-only filesystem or folder can be read, and a
        missing file is an error naming it instead of a new empty dataset."""
        self.path = Path(path)
        self.readonly = readonly
        _check_openable(self.path, readonly)
        if readonly:
            self._open_readonly()
            return
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), timeout=30.0)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"{self.path}: cannot open the dataset: {e}") from None
        with self._closed_on_failure():
            self.db.row_factory = sqlite3.Row
            self._refuse_foreign()
            _retry_locked(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            _retry_locked(self._setup_schema)

    def _open_readonly(self) -> None:
        """Open for reading only (see __init__). A file of an older schema is migrated first where it is
        writable; where it is not, it is read as it is if its tables hold what the reads need."""
        try:
            self.db = sqlite3.connect(_readonly_uri(self.path), uri=True, timeout=30.0)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"{self.path}: cannot open the dataset for reading: {e}") from None
        with self._closed_on_failure():
            self.db.row_factory = sqlite3.Row
            self._refuse_foreign()
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: written by a newer edgeprof (schema {version} > "
                                 f"{SCHEMA_VERSION}); upgrade edgeprof to read it")
            if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name='measurements'").fetchone():
                raise StoreError(f"{self.path}: holds no edgeprof dataset (no measurements table); check --db")
            if version < SCHEMA_VERSION and self._writable():
                self.db.close()
                Store(self.path).close()  # migrate once, then read as asked
                self.db = sqlite3.connect(_readonly_uri(self.path), uri=True, timeout=30.0)
                self.db.row_factory = sqlite3.Row
            elif version < READABLE_FROM:
                raise StoreError(f"{self.path}: written by an older edgeprof (schema {version}) and read-only "
                                 "here, so it cannot be upgraded: copy it somewhere writable and open it there once")
            self.db.execute("PRAGMA query_only=ON")

    @contextmanager
    def _closed_on_failure(self) -> Iterator[None]:
        """Close the connection when opening fails; a database error becomes a StoreError naming the file."""
        try:
            yield
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise StoreError(_open_failure(self.path, e)) from None
        except BaseException:
            self.db.close()
            raise

    def _writable(self) -> bool:
        folder = self.path.parent if str(self.path.parent) else Path(".")
        return os.access(self.path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)

    def _refuse_foreign(self) -> None:
        """An SQLite file of another program is refused before anything (even the journal mode) is written."""
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if tables and "measurements" not in tables and version == 0:
            raise StoreError(f"{self.path}: an SQLite database of another program (tables: "
                             f"{', '.join(sorted(tables)[:5])}), not an edgeprof dataset; check --db "
                             "(the file is left as it is)")

    def _setup_schema(self) -> None:
        """Create or migrate the schema under one write lock.

        Several boards of a fleet open the same file at once; without the lock one process could see the
        tables another has just created but not yet stamped with a version, and migrate them twice.
        """
        level = self.db.isolation_level
        self.db.isolation_level = None  # explicit transaction control
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                version = self.db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(f"{self.path}: written by a newer edgeprof (schema {version} > "
                                     f"{SCHEMA_VERSION}); upgrade edgeprof to read it")
                fresh = not self.db.execute("SELECT 1 FROM sqlite_master WHERE name='measurements'").fetchone()
                if not fresh and version < SCHEMA_VERSION:
                    for v in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                        for statement in _statements(MIGRATIONS[v]):
                            self.db.execute(statement)
                if version < SCHEMA_VERSION or fresh:
                    for statement in _statements(DDL):
                        self.db.execute(statement)
                    self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        finally:
            self.db.isolation_level = level

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self.db:
            yield self.db

    # --- identity ------------------------------------------------------------------------------------

    @property
    def dataset_id(self) -> str:
        """A random id made once per dataset file and kept in it: the owner of the jobs this dataset starts on
        a board, so another dataset sharing the board leaves them alone. A copy of the file carries the same id,
        so a job also records the file's path and host: a copy does not take the original's jobs, a moved file
        keeps them (profiler.collect.copy_owner).

        The `meta` table is made on first use (files of older versions have none; no schema bump needed).
        Two processes asking at once agree: the first insert wins and both read it back."""
        row = None
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone():
            row = self.db.execute("SELECT value FROM meta WHERE key='dataset_id'").fetchone()
        if row is None:
            with self._tx() as db:
                db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                db.execute("INSERT OR IGNORE INTO meta VALUES ('dataset_id', ?)", (secrets.token_hex(16),))
            row = self.db.execute("SELECT value FROM meta WHERE key='dataset_id'").fetchone()
        return str(row[0])

    # --- writes --------------------------------------------------------------------------------------

    def add_device(self, name: str, kind: str, config: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO devices (name, kind, config, added_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET kind=excluded.kind, config=excluded.config",
                (name, kind, json.dumps(config, sort_keys=True), _now()))

    def add_models(self, models: Iterable[ModelRecord]) -> int:
        rows = [(m.sha256, m.space, json.dumps(m.space_config, sort_keys=True), m.arch_id,
                 json.dumps(m.input_shape) if m.input_shape is not None else None,
                 m.flops, m.params, m.mem_access, m.intensity, m.nbytes, _now()) for m in models]
        with self._tx() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO models VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            return db.total_changes - before

    def add_results(self, results: Iterable[dict[str, Any]], source: str = "agent") -> int:
        """Ingest agent result dicts; returns how many were new. Duplicates are ignored."""
        return len(self.add_new_results(results, source))

    def add_new_results(self, results: Iterable[dict[str, Any]], source: str = "agent") -> list[dict[str, Any]]:
        """Ingest agent result dicts in one transaction; returns those that were not in the store yet.

        A dict that is not a result (`result_problem`) is a StoreError and nothing of the batch is written."""
        new = []
        with self._tx() as db:
            for r in results:
                problem = result_problem(r)
                if problem:
                    raise StoreError(problem)
                if self._insert_result(db, r, source):
                    new.append(r)
        return new

    def _insert_result(self, db: sqlite3.Connection, r: dict[str, Any], source: str) -> int:
        lat = r.get("latency_ms") or {}
        err = r.get("error") or {}
        energy = r.get("energy")
        key = result_key(r["job_id"], r["task_id"])
        cur = db.execute(
            "INSERT OR IGNORE INTO measurements (result_key, job_id, task_id, device, model_sha256, backend, "
            "precision, batch, status, error_type, error_message, median_ms, mean_ms, std_ms, min_ms, max_ms, "
            "p10_ms, p90_ms, p99_ms, iqr_mean_ms, cv, n, ci_halfwidth_ms, converged, energy_mj, energy, "
            "device_median_ms, device_latency, "
            "environment, protocol, backend_info, warnings, source, measured_at, ingested_at) VALUES "
            "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (key, r["job_id"], r["task_id"], r["device"], r["model_sha256"], r["backend"], r["precision"],
             int(r["batch"]), r["status"], err.get("type"), err.get("message"),
             *(lat.get(f) for f in STAT_FIELDS), lat.get("cv"), lat.get("n"), lat.get("ci_halfwidth"),
             None if lat.get("converged") is None else int(bool(lat["converged"])),  # unknown for imports
             (energy or {}).get("net_mj", (energy or {}).get("gross_mj")),
             json.dumps(energy) if energy is not None else None,
             (r.get("latency_device_ms") or {}).get("median"),
             json.dumps(r["latency_device_ms"]) if r.get("latency_device_ms") else None,
             json.dumps(r.get("environment")), json.dumps(r.get("protocol")),
             json.dumps(r.get("backend_info")), json.dumps(r.get("warnings") or []),
             source, r.get("finished_at"), _now()))
        if cur.rowcount == 0:
            return 0
        if r.get("layers"):
            db.executemany("INSERT INTO layers VALUES (?,?,?,?,?,?,?)",
                           [(cur.lastrowid, i, lay["name"], lay.get("op_type"), float(lay["time_ms"]),
                             lay.get("calls"), lay.get("share")) for i, lay in enumerate(r["layers"])])
        if r.get("samples_ms") is not None or r.get("warmup_ms") is not None:
            db.execute("INSERT INTO samples VALUES (?, ?, ?)",
                       (cur.lastrowid, _blob(r.get("samples_ms")), _blob(r.get("warmup_ms"))))
        return 1

    def add_accuracies(self, records: Iterable[AccuracyRecord]) -> dict[str, int]:
        """profiler.accuracy.add_accuracies: {"added", "skipped", "replaced"}."""
        return add_accuracies(self, records)

    # --- reads ---------------------------------------------------------------------------------------

    def accuracies(self, space: str, task: str, metric: str = "test_accuracy",
                   source: str | None = None) -> dict[str, float]:
        """profiler.accuracy.accuracies: {arch_id: value}, {} when none."""
        return accuracies(self, space, task, metric, source)

    def measured_archs(self, device: str, space: str, backend: str, precision: str, batch: int,
                       space_config: dict[str, Any] | None = None) -> set[str]:
        """Arch ids of `space` that already have an ok measurement under these settings; with `space_config`,
        only those of exactly that config (a probe layer at another size, a network at another width share
        their arch ids with the rest of their space)."""
        sql = ("SELECT DISTINCT m.arch_id FROM measurements x JOIN models m ON m.sha256 = x.model_sha256 "
               "WHERE x.device=? AND m.space=? AND x.backend=? AND x.precision=? AND x.batch=? AND x.status='ok'")
        args: list[Any] = [device, space, backend, precision, batch]
        if space_config is not None:
            sql += " AND m.space_config=?"
            args.append(json.dumps(space_config, sort_keys=True))
        return {r[0] for r in self.db.execute(sql, args).fetchall()}

    def known_models(self, sha256s: set[str | None]) -> set[str]:
        """Which of these model hashes the store has registered."""
        wanted = [s for s in sha256s if s]
        if not wanted:
            return set()
        marks = ",".join("?" * len(wanted))
        return {r[0] for r in self.db.execute(f"SELECT sha256 FROM models WHERE sha256 IN ({marks})", wanted)}

    def samples(self, measurement_id: int) -> tuple[np.ndarray, np.ndarray]:
        row = self.db.execute("SELECT timed, warmup FROM samples WHERE measurement_id=?",
                              (measurement_id,)).fetchone()
        if row is None:
            return np.empty(0), np.empty(0)
        return tuple(np.frombuffer(b, dtype="<f8") if b else np.empty(0) for b in row)  # type: ignore

    def rows(self, device: str | None = None, space: str | None = None,
             status: str | None = None) -> list[dict[str, Any]]:
        """Flat measurement rows joined with their model (the export and summary view)."""
        where, args = [], []
        for col, val in (("x.device", device), ("m.space", space), ("x.status", status)):
            if val is not None:
                where.append(f"{col}=?")
                args.append(val)
        sql = (
            "SELECT x.id, x.device, m.space, m.arch_id, x.model_sha256, x.backend, x.precision, x.batch, "
            "x.status, x.error_type, x.error_message, x.median_ms, x.mean_ms, x.std_ms, x.min_ms, x.max_ms, "
            "x.p10_ms, x.p90_ms, x.p99_ms, x.iqr_mean_ms, x.cv, x.n, x.ci_halfwidth_ms, x.converged, "
            "x.energy_mj, x.device_median_ms, m.flops, m.params, m.mem_access, m.intensity, x.job_id, "
            "x.task_id, x.source, "
            "x.measured_at, x.environment FROM measurements x LEFT JOIN models m ON m.sha256 = x.model_sha256"
            + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY x.id")
        return [dict(r) for r in self.db.execute(sql, args).fetchall()]

    def layers(self, measurement_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute(
            "SELECT idx, name, op_type, time_ms, calls, share FROM layers WHERE measurement_id=? ORDER BY idx",
            (measurement_id,)).fetchall()]

    def counts(self) -> dict[str, int]:
        q = self.db.execute
        return {"devices": q("SELECT COUNT(*) FROM devices").fetchone()[0],
                "models": q("SELECT COUNT(*) FROM models").fetchone()[0],
                "measurements": q("SELECT COUNT(*) FROM measurements").fetchone()[0]}

    # --- what a search's verification reads back ---------------------------------------------------------

    def job_costs(self, job_id: str, quantity: str = "latency") -> list[float | None]:
        """The ok measurements of one job, in task order: median latency (ms) or net energy per inference (mJ;
        None where the device has no meter)."""
        column = _cost_column(quantity)
        return [None if r[0] is None else float(r[0]) for r in self.db.execute(
            f"SELECT {column} FROM measurements WHERE job_id = ? AND status = 'ok' ORDER BY id", (job_id,))]

    def arch_costs(self, device: str, space: str, space_config: dict[str, Any], backend: str, precision: str,
                   batch: int, quantity: str = "latency") -> dict[str, float]:
        """Arch id -> the median over its ok measurements of `space` (with exactly this config) on `device`
        under one setting: what the dataset already knows about networks a search may pick."""
        column = _cost_column(quantity)
        rows = self.db.execute(
            f"SELECT m.arch_id, x.{column} FROM measurements x JOIN models m ON m.sha256 = x.model_sha256 "
            f"WHERE x.device = ? AND m.space = ? AND m.space_config = ? AND x.backend = ? AND x.precision = ? "
            f"AND x.batch = ? AND x.status = 'ok' AND x.{column} IS NOT NULL ORDER BY x.id",
            (device, space, json.dumps(space_config, sort_keys=True), backend, precision, int(batch)))
        by_arch: dict[str, list[float]] = {}
        for arch_id, value in rows:
            by_arch.setdefault(arch_id, []).append(float(value))
        return {a: float(np.median(v)) for a, v in by_arch.items()}


def _cost_column(quantity: str) -> str:
    """The measurements column of a quantity: median_ms (latency), energy_mj (energy) or device_median_ms
    (device_latency: the device's own compute time, where the backend records one)."""
    columns = {"latency": "median_ms", "energy": "energy_mj", "device_latency": "device_median_ms"}
    if quantity not in columns:
        raise ValueError(f"quantity must be one of {', '.join(columns)}, got {quantity!r}")
    return columns[quantity]
