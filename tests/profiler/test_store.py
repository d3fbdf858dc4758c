from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from agents.protocol import RESULT_SCHEMA
from profiler.dataset import export, summarize
from profiler.store import SCHEMA_VERSION, ModelRecord, Store, StoreError


def result(task: str, sha: str, status: str = "ok", median: float = 1.0, job: str = "j1") -> dict[str, Any]:
    samples = list(np.linspace(median * 0.9, median * 1.1, 21))
    ok = status == "ok"
    return {
        "schema": RESULT_SCHEMA, "job_id": job, "task_id": task, "model_sha256": sha, "device": "dev",
        "backend": "onnxruntime", "precision": "fp32", "batch": 1, "status": status,
        "error": None if ok else {"type": "ModelLoadError", "message": "bad file"},
        "latency_ms": {"median": median, "mean": median, "std": 0.05, "min": samples[0], "max": samples[-1],
                       "p10": samples[2], "p90": samples[-3], "p99": samples[-1], "iqr_mean": median,
                       "cv": 0.05, "n": 21, "ci_halfwidth": 0.01, "ci_rel": 0.01, "confidence": 0.95,
                       "converged": True} if ok else None,
        "samples_ms": samples if ok else None, "warmup_ms": [5.0, 2.0] if ok else None, "energy": None,
        "environment": {"hostname": "h", "cpu": {"model": "Test CPU", "count": 2},
                        "libraries": {"onnxruntime": "1.0"}},
        "protocol": {"min_runs": 20}, "backend_info": {}, "warnings": [], "finished_at": "2026-01-01T00:00:00Z",
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "d.db")
    s.add_device("dev", "cpu", {})
    s.add_models([ModelRecord("a" * 64, "nb201", {}, "arch-a", [1, 3, 32, 32], 10, 5, 20, 0.5, 100),
                  ModelRecord("b" * 64, "nb201", {}, "arch-b", [1, 3, 32, 32], 20, 5, 20, 1.0, 100)])
    return s


def test_wal_and_schema_version(store: Store) -> None:
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_ingest_is_idempotent_and_keeps_samples(store: Store) -> None:
    rs = [result("t1", "a" * 64, median=1.0), result("t2", "b" * 64, status="error")]
    assert store.add_results(rs) == 2
    assert store.add_results(rs) == 0  # the same lines again: nothing new
    assert store.counts()["measurements"] == 2
    row = store.rows(status="ok")[0]
    timed, warm = store.samples(row["id"])
    assert timed.shape == (21,) and warm.tolist() == [5.0, 2.0]
    assert np.isclose(np.median(timed), 1.0)
    err = store.rows(status="error")[0]
    assert err["error_type"] == "ModelLoadError" and err["median_ms"] is None


def test_measured_archs_counts_only_ok(store: Store) -> None:
    store.add_results([result("t1", "a" * 64), result("t2", "b" * 64, status="error")])
    assert store.measured_archs("dev", "nb201", "onnxruntime", "fp32", 1) == {"arch-a"}
    assert store.measured_archs("dev", "nb201", "onnxruntime", "fp32", 8) == set()


def test_measured_archs_of_one_config(store: Store) -> None:
    """A network at another width (or a probe layer at another size) shares its arch id with the rest of its
    space: only a measurement of the same config counts as done."""
    store.add_models([ModelRecord("c" * 64, "nb201", {"C": 32}, "arch-a", [1, 3, 32, 32], 40, 9, 50, 0.8, 100)])
    store.add_results([result("t1", "a" * 64)])
    assert store.measured_archs("dev", "nb201", "onnxruntime", "fp32", 1, space_config={}) == {"arch-a"}
    assert store.measured_archs("dev", "nb201", "onnxruntime", "fp32", 1, space_config={"C": 32}) == set()
    store.add_results([result("t3", "c" * 64)])
    assert store.measured_archs("dev", "nb201", "onnxruntime", "fp32", 1, space_config={"C": 32}) == {"arch-a"}


def test_wrong_schema_refused(store: Store) -> None:
    bad = result("t1", "a" * 64)
    bad["schema"] = "other/9"
    with pytest.raises(StoreError, match="schema"):
        store.add_results([bad])
    assert store.counts()["measurements"] == 0


def test_newer_schema_refused(tmp_path: Path) -> None:
    p = tmp_path / "new.db"
    c = sqlite3.connect(p)
    c.execute("PRAGMA user_version=99")
    c.close()
    with pytest.raises(StoreError, match="newer edgeprof"):
        Store(p)


def test_not_a_database(tmp_path: Path) -> None:
    p = tmp_path / "junk.db"
    p.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable edgeprof database"):
        Store(p)


def test_summary_and_exports(store: Store, tmp_path: Path) -> None:
    store.add_results([result("t1", "a" * 64, median=1.0), result("t2", "b" * 64, median=3.0),
                       result("t3", "b" * 64, status="error")])
    s = summarize(store)
    (g,) = s["groups"]
    assert (g["ok"], g["error"], g["models"]) == (2, 1, 2)
    assert g["latency_ms"]["min"] == 1.0 and g["latency_ms"]["max"] == 3.0
    assert g["environment"]["cpu_model"] == "Test CPU"
    assert g["error_types"] == {"ModelLoadError": 1}
    assert export(store, tmp_path / "x.csv") == 3
    lines = (tmp_path / "x.csv").read_text().splitlines()
    assert lines[0].startswith("id,device,space,arch_id") and len(lines) == 4
    assert export(store, tmp_path / "x.parquet", with_samples=True) == 3
    t = pq.read_table(tmp_path / "x.parquet").to_pydict()
    assert t["arch_id"] == ["arch-a", "arch-b", "arch-b"]
    assert len(t["samples_ms"][0]) == 21 and t["samples_ms"][2] == []
    with pytest.raises(ValueError, match="csv or parquet"):
        export(store, tmp_path / "x.xlsx")


def test_layers_and_device_time_are_stored(store: Store) -> None:
    r = result("t1", "a" * 64)
    r["latency_device_ms"] = {"median": 0.8, "mean": 0.81, "n": 21}
    r["layers"] = [{"name": "/0/Conv", "op_type": "Conv", "time_ms": 0.5, "calls": 1, "share": 0.625},
                   {"name": "/1/Relu", "op_type": "Relu", "time_ms": 0.3, "calls": 1, "share": 0.375}]
    store.add_results([r])
    (row,) = store.rows()
    assert row["device_median_ms"] == 0.8
    assert [(x["name"], x["time_ms"]) for x in store.layers(row["id"])] == [("/0/Conv", 0.5), ("/1/Relu", 0.3)]


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    """Files written before schema 2 keep their measurements and gain the new columns and tables."""
    from profiler.store import DDL

    v1 = DDL.replace("    device_median_ms REAL,\n    device_latency TEXT,\n", "")
    v1 = v1[: v1.index("CREATE TABLE IF NOT EXISTS layers")] + v1[v1.index("CREATE TABLE IF NOT EXISTS samples"):]
    p = tmp_path / "old.db"
    c = sqlite3.connect(p)
    c.executescript(v1)
    c.execute("INSERT INTO devices VALUES ('dev', 'cpu', '{}', 'x')")
    c.execute("PRAGMA user_version=1")
    c.commit()
    c.close()
    with Store(p) as s:
        cols = {r[1] for r in s.db.execute("PRAGMA table_info(measurements)")}
        assert {"device_median_ms", "device_latency"} <= cols
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        s.add_results([result("t1", "a" * 64)])
        assert s.counts() == {"devices": 1, "models": 0, "measurements": 1}



def _open_store(path: str, go, out) -> None:
    go.wait()
    try:
        with Store(path) as s:
            out.put(s.db.execute("PRAGMA user_version").fetchone()[0])
    except Exception as e:  # noqa: BLE001 (reported to the parent, which asserts)
        out.put(repr(e))


def test_many_processes_open_a_fresh_file_at_once(tmp_path):
    """A fleet opens one database from several processes; the schema must be created exactly once."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    path = str(tmp_path / "fleet.db")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_open_store, args=(path, go, out)) for _ in range(8)]
    for p in procs:
        p.start()
    go.set()  # all released together, as boards of a fleet starting in parallel
    versions = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert versions == [SCHEMA_VERSION] * len(procs)
    with Store(path) as s:
        columns = [r[1] for r in s.db.execute("PRAGMA table_info(measurements)")]
    assert columns.count("device_median_ms") == 1


def test_summary_of_a_result_without_environment(tmp_path) -> None:
    """A result line that records no environment (the field is optional) still summarises."""
    from agents.protocol import RESULT_SCHEMA
    from profiler.dataset import summarize
    from profiler.store import ModelRecord, Store

    with Store(tmp_path / "d.db") as store:
        store.add_device("box", "cpu", {})
        store.add_models([ModelRecord("f" * 64, "nb201", {}, "x")])
        store.add_results([{"schema": RESULT_SCHEMA, "job_id": "j", "task_id": "t", "model_sha256": "f" * 64,
                            "device": "box", "backend": "torch", "precision": "fp32", "batch": 1, "status": "ok",
                            "error": None, "latency_ms": {"median": 1.5}, "energy": None}])
        (group,) = summarize(store, device="box")["groups"]
    assert group["ok"] == 1 and group["environment"] == {}
