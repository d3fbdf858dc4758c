"""LatBench importer on a small pickle in LatBench's format: {6-tuple of NB201 op ids: seconds}."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from predictors.importers import IMPORTERS
from predictors.importers.latbench import import_latbench, latbench_device
from profiler.store import Store
from spaces import create_space

# LatBench op ids: none=0, skip_connect=1, nor_conv_1x1=2, nor_conv_3x3=3, avg_pool_3x3=4,
# edges in arch-string order (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2)
TABLE = {
    (3, 3, 3, 3, 3, 3): 0.0215,  # all 3x3 convs: the slowest cell
    (1, 1, 1, 1, 1, 1): 0.0041,
    (4, 2, 1, 2, 1, 1): 0.0067,  # NB201 index 0: |avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+...
    (0, 0, 0, 0, 0, 0): 0.0032,
    (2, 0, 3, 1, 4, 0): np.float64(0.0088),  # numpy scalars appear in tables saved from numpy
}


def _write(path: Path, table: object) -> Path:
    path.write_bytes(pickle.dumps(table))
    return path


def test_import_fixture(tmp_path):
    path = _write(tmp_path / "embedded-gpu-jetson-nono-fp16.pickle", TABLE)
    space = create_space("nb201")
    with Store(tmp_path / "lat.db") as store:
        summary = IMPORTERS["latbench"](store, path)
        assert summary["devices"] == ["embedded-gpu-jetson-nono"] and summary["precision"] == "fp16"
        assert summary["added"] == 5 and summary["skipped"] == 0 and summary["models_added"] == 5
        rows = {r["arch_id"]: r for r in store.rows(device="embedded-gpu-jetson-nono")}
        index0 = space.arch_id(space.from_index(0))
        assert rows[index0]["median_ms"] == pytest.approx(6.7)  # seconds -> ms
        assert rows[index0]["task_id"] == "0"
        all_conv = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
        assert rows[all_conv]["median_ms"] == pytest.approx(21.5)
        mixed = space.arch_id((2, 0, 3, 1, 4, 0))
        assert mixed == "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|none~2|"
        assert rows[mixed]["median_ms"] == pytest.approx(8.8)
        row = rows[all_conv]
        assert row["precision"] == "fp16" and row["batch"] == 1 and row["source"] == "import:latbench"
        assert row["job_id"] == "import-latbench-embedded-gpu-jetson-nono-fp16"
        assert json.loads(row["environment"])["file"] == path.name
        kind = store.db.execute("SELECT kind FROM devices WHERE name='embedded-gpu-jetson-nono'").fetchone()[0]
        assert kind == "jetson"
        # idempotent; the fp32 table of the same board is another precision on the same device
        assert import_latbench(store, path)["added"] == 0
        fp32 = _write(tmp_path / "embedded-gpu-jetson-nono-fp32.pickle", TABLE)
        assert import_latbench(store, fp32)["added"] == 5
        assert store.counts() == {"devices": 1, "models": 5, "measurements": 10}


def test_overrides_and_guesses(tmp_path):
    path = _write(tmp_path / "anything.pkl", {(1,) * 6: 4.1})
    with Store(tmp_path / "lat.db") as store:
        summary = import_latbench(store, path, device="my-board", precision="fp32", kind="cpu", unit="ms")
        assert summary["devices"] == ["my-board"]
        assert store.rows(device="my-board")[0]["median_ms"] == pytest.approx(4.1)
    assert latbench_device("desktop-gpu-gtx-1080-ti-fp32") == ("desktop-gpu-gtx-1080-ti", "fp32", "gpu")
    assert latbench_device("mobile-dsp-snapdragon-855-hexagon-690-int8")[1:] == ("int8", "cpu")
    assert latbench_device("odd") == ("odd", "unknown", "cpu")


def test_bad_cells_are_skipped(tmp_path):
    path = _write(tmp_path / "dev-fp32.pickle", {(1,) * 6: float("nan"), (2,) * 6: -1.0, (3,) * 6: 0.01})
    with Store(tmp_path / "lat.db") as store:
        summary = import_latbench(store, path)
        assert summary["added"] == 1 and summary["invalid"] == 2 and summary["skipped"] == 2


@pytest.mark.parametrize(("content", "message"), [
    (pickle.dumps([0.1, 0.2]), "expected a non-empty dict"),
    (pickle.dumps({}), "expected a non-empty dict.*empty"),
    (pickle.dumps({(1, 2, 3): 0.1}), "entry 0: key \\(1, 2, 3\\) is not a 6-tuple of NB201 op ids"),
    (pickle.dumps({(1, 1, 1, 1, 1, 5): 0.1}), "is not a 6-tuple of NB201 op ids 0..4"),
    (pickle.dumps({"|skip|": 0.1}), "is not a 6-tuple"),
    (b"PK\x03\x04 this is a zip header, not a pickle", "not a plain pickled table"),
    (pickle.dumps(print), "refusing to load builtins.print"),
])
def test_bad_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "dev-fp32.pickle"
    path.write_bytes(content)
    with Store(tmp_path / "lat.db") as store:
        with pytest.raises(ValueError, match=message):
            import_latbench(store, path)
        assert store.counts()["measurements"] == 0


def test_argument_errors(tmp_path):
    with Store(tmp_path / "lat.db") as store:
        with pytest.raises(ValueError, match="no such file"):
            import_latbench(store, tmp_path / "absent.pickle")
        path = _write(tmp_path / "dev-fp32.pickle", TABLE)
        with pytest.raises(ValueError, match="unit must be one of s, ms"):
            import_latbench(store, path, unit="us")
        with pytest.raises(ValueError, match="batch must be an int"):
            import_latbench(store, path, batch=0)
