"""HELP importer: NB201 and FBNet tables into the Store, idempotence, device handling, bad files."""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import pytest

from predictors.importers import IMPORTERS
from predictors.importers.help import help_device, import_help
from profiler.importing import import_model_key
from profiler.store import Store
from spaces import create_space
from spaces.fbnet import help_fbnet_archs, load_plain_torch_file

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
HELP_DATA = SHARED / "data" / "HELP" / "data"
needs_help = pytest.mark.skipif(not (HELP_DATA / "nasbench201" / "latency" / "raspi4.pt").exists(),
                                reason=f"HELP data not found at {HELP_DATA}")


def _arch0_ms(store: Store, device: str, space: str = "nb201") -> float:
    row = store.db.execute("SELECT median_ms FROM measurements WHERE device=? AND task_id='0' AND job_id=?",
                           (device, f"import-help-{space}-{device}")).fetchone()
    return row[0]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """A store holding HELP's NB201 tables of raspi4, titan_rtx_256 and fpga (about 1 s to import)."""
    if not (HELP_DATA / "nasbench201" / "latency" / "raspi4.pt").exists():
        pytest.skip(f"HELP data not found at {HELP_DATA}")
    store = Store(tmp_path_factory.mktemp("help") / "lat.db")
    store.add_device("fpga", "gpu", {"path": "device_configs/fpga.toml"})  # a real board of that name
    summary = import_help(store, SHARED, spaces=("nb201",), devices=["raspi4", "titan_rtx_256", "fpga"])
    yield store, summary
    store.close()


def test_nb201_rows_and_values(imported):
    store, summary = imported
    assert summary["devices"] == ["fpga", "raspi4", "titan_rtx_256"]
    assert summary["added"] == 3 * 15625 and summary["skipped"] == 0
    assert summary["models_added"] == 15625  # one model row per arch, shared by the devices
    assert {t["device"]: t["rows"] for t in summary["tables"]} == {"raspi4": 15625, "titan_rtx_256": 15625,
                                                                   "fpga": 15625}
    assert store.counts() == {"devices": 3, "models": 15625, "measurements": 3 * 15625}
    for device in ("raspi4", "titan_rtx_256"):
        assert len(store.rows(device=device, space="nb201")) == 15625
    assert _arch0_ms(store, "raspi4") == pytest.approx(10.48198, abs=1e-5)  # HW-NAS-Bench's README value
    assert _arch0_ms(store, "fpga") == pytest.approx(2.57296, abs=1e-9)


def test_store_representation(imported):
    store, _ = imported
    space = create_space("nb201")
    arch_id = space.arch_id(space.from_index(0))
    key = hashlib.sha256(f"import:nb201:{arch_id}".encode()).hexdigest()
    assert import_model_key(space, arch_id) == key
    model = dict(store.db.execute("SELECT * FROM models WHERE sha256=?", (key,)).fetchone())
    assert model["arch_id"] == arch_id and model["space"] == "nb201" and model["nbytes"] is None
    assert json.loads(model["space_config"]) == space.config and model["flops"] is None
    row = next(r for r in store.rows(device="titan_rtx_256") if r["task_id"] == "0")
    assert row["model_sha256"] == key and row["arch_id"] == arch_id
    assert row["batch"] == 256 and row["backend"] == "unknown" and row["precision"] == "unknown"
    assert row["status"] == "ok" and row["n"] == 1 and row["mean_ms"] == row["median_ms"]
    assert row["std_ms"] is None and row["p90_ms"] is None and row["source"] == "import:help"
    assert row["job_id"] == "import-help-nb201-titan_rtx_256"
    assert json.loads(row["environment"]) == {"source": "HELP", "file": "data/nasbench201/latency/titan_rtx_256.pt",
                                              "license": "MIT (HELP/LICENSE)"}
    assert store.samples(row["id"])[0].size == 0
    kinds = {r["name"]: (r["kind"], json.loads(r["config"])) for r in store.db.execute("SELECT * FROM devices")}
    assert kinds["titan_rtx_256"][0] == "gpu" and kinds["titan_rtx_256"][1]["batch"] == 256
    assert kinds["raspi4"][0] == "cpu" and kinds["raspi4"][1]["class"] == "sbc"
    # fpga was a device before the import: its row is left as it was
    assert kinds["fpga"] == ("gpu", {"path": "device_configs/fpga.toml"})


def test_reimport_adds_nothing(imported):
    store, first = imported
    again = IMPORTERS["help"](store, SHARED / "data" / "HELP", spaces=["nb201"], devices=["raspi4", "fpga"])
    assert again["added"] == 0 and again["models_added"] == 0
    assert again["duplicates"] == again["skipped"] == 2 * 15625
    assert again["devices_existing"] == ["fpga", "raspi4"]
    assert store.counts()["measurements"] == first["added"]


@needs_help
def test_fbnet_import_of_one_device(tmp_path):
    with Store(tmp_path / "lat.db") as store:
        summary = import_help(store, HELP_DATA, spaces=("fbnet",), devices="raspi4")
        assert summary["added"] == 5000 and summary["models_added"] == 5000
        table = load_plain_torch_file(HELP_DATA / "fbnet" / "latency" / "raspi4.pt")
        archs = help_fbnet_archs(SHARED)
        space = create_space("fbnet")
        rows = {int(r["task_id"]): r for r in store.rows(device="raspi4", space="fbnet")}
        assert len(rows) == 5000
        for i in (0, 1, 4999):
            assert rows[i]["arch_id"] == space.arch_id(archs[i])
            assert rows[i]["median_ms"] == pytest.approx(table[i])
        assert rows[0]["batch"] == 1
        assert import_help(store, HELP_DATA, spaces=("fbnet",), devices="raspi4")["added"] == 0


@needs_help
def test_device_and_space_selection_errors(tmp_path):
    with Store(tmp_path / "lat.db") as store:
        with pytest.raises(ValueError, match="no HELP table for device.*nope.*known: 1080ti_1"):
            import_help(store, SHARED, devices=["raspi4", "nope"])
        with pytest.raises(ValueError, match="HELP has no space 'ofa'"):
            import_help(store, SHARED, spaces=["ofa"])
        assert store.counts()["measurements"] == 0


def test_help_device_names():
    assert help_device("titan_rtx_256")[:2] == ("gpu", 256)
    assert help_device("titanxp_32")[:2] == ("gpu", 32)
    assert help_device("1080ti_1")[:2] == ("gpu", 1)
    assert help_device("gold_6226")[:2] == ("cpu", 1)  # a model number, not a batch
    assert help_device("essential_ph_1")[2]["class"] == "phone"
    assert help_device("eyeriss")[2]["class"] == "asic"
    assert help_device("newgpu_64")[:2] == ("cpu", 64)
    assert help_device("newcpu_6226")[:2] == ("cpu", 1)


def _fake_help(root: Path, tables: dict[str, bytes]) -> Path:
    """A HELP-shaped folder whose NB201 latency files hold the given raw bytes."""
    folder = root / "HELP" / "data" / "nasbench201" / "latency"
    folder.mkdir(parents=True)
    for name, raw in tables.items():
        (folder / f"{name}.pt").write_bytes(raw)
    return root / "HELP"


def _torch_zip_bytes(obj: object, tmp: Path) -> bytes:
    path = tmp / "payload.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(obj))
    return path.read_bytes()


def test_bad_files_give_clear_errors_and_write_nothing(tmp_path):
    good = _torch_zip_bytes([1.0] * 15625, tmp_path)
    cases = {
        "not a torch zip archive": b"\x80\x04 definitely not a zip",
        "expected a list of 15625 latencies .*got 3 values": _torch_zip_bytes([1.0, 2.0, 3.0], tmp_path),
        "expected a list of 15625 latencies .*got a dict": _torch_zip_bytes({"a": 1.0}, tmp_path),
    }
    for i, (message, raw) in enumerate(cases.items()):
        root = _fake_help(tmp_path / f"case{i}", {"aaa_good": good, "zzz_bad": raw})
        with Store(tmp_path / f"case{i}.db") as store:
            with pytest.raises(ValueError, match=message) as err:
                import_help(store, root, spaces=["nb201"])
            assert "zzz_bad.pt" in str(err.value)
            assert store.counts() == {"devices": 0, "models": 0, "measurements": 0}


def test_cells_that_are_not_positive_numbers_are_skipped(tmp_path):
    values = [1.0] * 15625
    values[3], values[7], values[11] = float("nan"), 0.0, None
    root = _fake_help(tmp_path, {"mydev": _torch_zip_bytes(values, tmp_path)})
    with Store(tmp_path / "lat.db") as store:
        summary = import_help(store, root, spaces=["nb201"])
        assert summary["added"] == 15625 - 3 and summary["invalid"] == 3 and summary["skipped"] == 3
        assert summary["devices"] == ["mydev"] and summary["missing"] == {"nb201": []}


def test_summary_of_imported_tables(imported) -> None:
    """Imported rows have one number per model (no spread, no run count): the summary still works."""
    from profiler.dataset import summarize

    store, _ = imported
    groups = {g["device"]: g for g in summarize(store)["groups"]}
    g = groups["raspi4"]
    assert g["ok"] == 15625 and g["latency_ms"]["min"] > 0
    assert g["cv_median"] is None and g["runs_median"] == 1 and g["converged_share"] is None
