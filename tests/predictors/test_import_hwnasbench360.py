"""HW-NAS-Bench-360 importer on a small Parquet file in the published dataset's layout."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from predictors.importers import IMPORTERS
from predictors.importers.hwnasbench360 import import_hwnasbench360
from profiler.importing import import_model_key
from profiler.store import Store
from spaces import create_space

NAN = float("nan")
# arch_idx, device, framework, task, lat_ms, lat_ms_var, energy_mj, accuracy
ROWS = [
    (0, "pi5", "litert", "cifar100", 4.21, 0.04, 9.5, 0.61),
    (0, "pi5", "onnx", "cifar100", 3.87, 0.01, 8.1, 0.61),
    (1, "pi5", "litert", "cifar100", 11.30, 0.25, 24.0, 0.70),
    (0, "jetson", "onnx", "cifar100", 2.95, 0.0, 6.2, 0.61),
    (0, "pixel", "litert", "cifar100", 5.10, 0.09, NAN, 0.61),  # no energy on the Pixel
    (2, "pixel", "torchmobile", "cifar100", NAN, NAN, NAN, 0.50),  # a cell that was not measured
    (0, "pi5", "litert", "ninapro", 1.90, 0.01, 3.0, 0.88),
    (0, "pi5", "litert", "darcy", 7.70, 0.02, 15.0, 0.02),
]
COLUMNS = ("arch_idx", "device", "framework", "task", "lat_ms", "lat_ms_var", "energy_mj", "accuracy")


def _write(path: Path, rows: list[tuple], columns: tuple[str, ...] = COLUMNS) -> Path:
    pq.write_table(pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)}), path)
    return path


def test_import_fixture(tmp_path):
    path = _write(tmp_path / "dataset.parquet", ROWS)
    cifar100 = create_space("nb201", num_classes=100)
    with Store(tmp_path / "lat.db") as store:
        summary = IMPORTERS["hwnasbench360"](store, path)
        assert summary["devices"] == ["jetson", "pi5", "pixel"]
        assert summary["added"] == 5 and summary["invalid"] == 1
        assert set(summary["skipped_tasks"]) == {"darcy", "ninapro"}
        assert summary["skipped"] == 1 + 2 and summary["models_added"] == 2
        rows = {(r["device"], r["backend"], r["task_id"]): r for r in store.rows(space="nb201")}
        assert len(rows) == 5
        pi = rows[("pi5", "litert", "0")]
        assert pi["median_ms"] == pytest.approx(4.21) and pi["std_ms"] == pytest.approx(0.2)
        assert pi["energy_mj"] == pytest.approx(9.5) and pi["batch"] == 1
        assert pi["job_id"] == "import-hwnasbench360-cifar100-pi5-litert"
        assert pi["arch_id"] == cifar100.arch_id(cifar100.from_index(0))
        # a cifar100 network is another model than HELP's cifar10 one of the same arch
        assert pi["model_sha256"] == import_model_key(cifar100, pi["arch_id"])
        assert pi["model_sha256"] != import_model_key(create_space("nb201"), pi["arch_id"])
        config = json.loads(store.db.execute("SELECT space_config FROM models WHERE sha256=?",
                                             (pi["model_sha256"],)).fetchone()[0])
        assert config["num_classes"] == 100
        jetson = rows[("jetson", "onnx", "0")]
        assert jetson["energy_mj"] == pytest.approx(6.2)
        energy = json.loads(store.db.execute("SELECT energy FROM measurements WHERE id=?",
                                             (jetson["id"],)).fetchone()[0])
        assert energy == {"net_mj": 6.2, "per": "inference", "column": "energy_mj"}
        assert rows[("pixel", "litert", "0")]["energy_mj"] is None
        kinds = dict(store.db.execute("SELECT name, kind FROM devices").fetchall())
        assert kinds == {"jetson": "jetson", "pi5": "cpu", "pixel": "cpu"}
        again = import_hwnasbench360(store, path)
        assert again["added"] == 0 and again["duplicates"] == 5
        assert store.counts()["measurements"] == 5


def test_csv_style_columns_filters_and_task_configs(tmp_path):
    """The per-device CSVs name the latency `lat_ms_median` and carry a status; tasks can be mapped."""
    columns = ("arch_idx", "device", "framework", "task", "lat_ms_median", "status")
    rows = [(5, "pi5", "onnx", "cifar100", 2.0, "ok"), (6, "pi5", "onnx", "cifar100", None, "error"),
            (5, "pi5", "litert", "cifar10", 1.5, "ok"), (5, "jetson", "onnx", "cifar100", 1.0, "ok")]
    path = _write(tmp_path / "pi.parquet", rows, columns)
    with Store(tmp_path / "lat.db") as store:
        summary = import_hwnasbench360(store, path, devices=["pi5"], tasks="cifar100")
        assert summary["added"] == 1 and summary["not_ok"] == 1 and summary["filtered"] == 2
        summary = import_hwnasbench360(store, path, devices="pi5",
                                       task_configs={"cifar10": {"num_classes": 10, "C": 8}})
        assert summary["added"] == 1 and summary["duplicates"] == 1
        row = next(r for r in store.rows(device="pi5") if r["backend"] == "litert")
        assert row["median_ms"] == 1.5 and row["std_ms"] is None


@pytest.mark.parametrize(("rows", "columns", "message"), [
    ([(0, "pi5", "onnx", "cifar100")], ("arch_idx", "device", "framework", "task"),
     "missing column.*lat_ms_median or lat_ms"),
    ([(0, "pi5", "cifar100", 1.0)], ("arch_idx", "device", "task", "lat_ms"), "missing column.*framework"),
    ([(15625, "pi5", "onnx", "cifar100", 1.0)], COLUMNS[:5], "row 0: arch_idx 15625 is not a nb201 index"),
    ([(0, "", "onnx", "cifar100", 1.0)], COLUMNS[:5], "row 0: device must be a non-empty string"),
])
def test_bad_tables_give_clear_errors(tmp_path, rows, columns, message):
    path = _write(tmp_path / "bad.parquet", rows, columns)
    with Store(tmp_path / "lat.db") as store:
        with pytest.raises(ValueError, match=message):
            import_hwnasbench360(store, path)
        assert store.counts()["measurements"] == 0


def test_bad_files_and_spaces(tmp_path):
    (tmp_path / "text.parquet").write_text("arch_idx,device\n0,pi5\n")
    with Store(tmp_path / "lat.db") as store:
        with pytest.raises(ValueError, match="not a Parquet file"):
            import_hwnasbench360(store, tmp_path / "text.parquet")
        with pytest.raises(ValueError, match="no such file"):
            import_hwnasbench360(store, tmp_path / "absent.parquet")
        path = _write(tmp_path / "ok.parquet", ROWS)
        with pytest.raises(ValueError, match="space 'fbnet' has no benchmark index"):
            import_hwnasbench360(store, path, space="fbnet")
