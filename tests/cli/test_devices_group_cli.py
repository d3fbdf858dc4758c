"""`edgeprof devices group`: a real SQLite dataset with proportional and non-proportional devices, the JSON
and table output, the heat map, exit-2 errors, and `edgeprof devices` still listing the configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

from profiler.importing import imported_model, imported_result
from profiler.store import Store
from spaces import create_space

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
HELP_NB201 = SHARED / "data" / "HELP" / "data" / "nasbench201" / "latency"

# device -> latency of an arch from its base cost: gpu_a/gpu_b/gpu_c proportional (0.5x, 1x, 3x), `launch`
# with a fixed 4 ms overhead (the same ranking, not proportional), `few` measured on 12 archs only
DEVICES = {"gpu_a": lambda c: 0.5 * c, "gpu_b": lambda c: c, "gpu_c": lambda c: 3.0 * c,
           "launch": lambda c: c + 4.0}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("group") / "lab.db"
    space = create_space("nb201")
    archs = space.sample_unique(80, np.random.default_rng(3))
    models = [imported_model(space, a) for a in archs]
    rng = np.random.default_rng(4)
    base = 1.0 + np.array([sum(a) for a in archs], dtype=float) / 5 + rng.uniform(0, 1, len(archs))
    with Store(path) as store:
        store.add_models(models)
        for device, f in {**DEVICES, "few": lambda c: 2.0 * c}.items():
            store.add_device(device, "cpu", {})
            n = 12 if device == "few" else len(archs)
            noise = 1 + rng.normal(0, 0.005, n)
            store.add_results([imported_result(job_id=f"t-{device}", task_id=str(i), model_sha256=m.sha256,
                                               device=device, median_ms=float(f(base[i]) * noise[i]),
                                               environment={}, backend="onnxruntime", precision="fp32")
                               for i, m in enumerate(models[:n])])
    return path


def test_json_groups_pairs_and_unknown(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, err = cli(capsys, "devices", "group", "--db", db, "--space", "nb201", "--json")
    assert code == 0, err
    r = json.loads(out)
    groups = {g["representative"]: g for g in r["groups"]}
    gpu = next(g for g in r["groups"] if "gpu_a" in g["members"])
    assert sorted(gpu["members"]) == ["gpu_a", "gpu_b", "gpu_c"] and gpu["min_r2"] > 0.99
    rep = gpu["representative"]
    scale = {"gpu_a": 0.5, "gpu_b": 1.0, "gpu_c": 3.0}
    for m, gamma in gpu["gamma_to_representative"].items():
        assert gamma == pytest.approx(scale[m] / scale[rep], rel=0.01)
    assert groups["launch"]["members"] == ["launch"] and groups["few"]["members"] == ["few"]
    assert groups["launch"]["nearest_group"]["representative"] == rep
    assert groups["few"]["nearest_group"] is None  # unknown to every other device
    pairs = {(p["a"], p["b"]): p for p in r["pairs"]}
    assert len(pairs) == 10
    few = [p for p in r["pairs"] if "few" in (p["a"], p["b"])]
    assert {p["status"] for p in few} == {"unknown"} and {p["n"] for p in few} == {12}
    launch = pairs[("gpu_a", "launch")]
    assert launch["status"] == "fails" and launch["rho"] > 0.95 and launch["r2"] < r["threshold"]
    assert (r["threshold"], r["min_common"]) == (0.9, 30)
    assert {d["name"]: d["archs"] for d in r["devices"]}["few"] == 12


def test_min_common_and_threshold_options(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, _ = cli(capsys, "devices", "group", "--db", db, "--space", "nb201", "--min-common", "10", "--json")
    assert code == 0
    gpu = next(g for g in json.loads(out)["groups"] if "gpu_a" in g["members"])
    assert sorted(gpu["members"]) == ["few", "gpu_a", "gpu_b", "gpu_c"]
    code, out, _ = cli(capsys, "devices", "group", "--db", db, "--space", "nb201", "--threshold", "-100",
                       "--json")
    assert code == 0
    assert len(json.loads(out)["groups"]) == 2  # everything known holds; `few` is still unknown


def test_table_and_plot(capsys: pytest.CaptureFixture[str], db: Path, tmp_path: Path) -> None:
    png = tmp_path / "figs" / "heat.png"
    code, out, err = cli(capsys, "devices", "group", "--db", db, "--space", "nb201", "--devices",
                         "gpu_a,gpu_b,launch", "--plot", png)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "pairwise fits" in out and "launch" in out and "fails" in out and "few" not in out
    assert str(png) in err


@pytest.mark.parametrize(("argv", "words"), [
    (["--space", "nb202"], ["unknown space 'nb202'", "nb201"]),
    (["--space", "fbnet"], ["no ok measurements of space 'fbnet'", "nb201"]),
    (["--space", "nb201", "--devices", "gpu_a"], ["at least 2 devices"]),
    (["--space", "nb201", "--devices", "gpu_a,nope"], ["nope"]),
    (["--space", "nb201", "--threshold", "1.5"], ["--threshold"]),
    (["--space", "nb201", "--min-common", "1"], ["--min-common"]),
])
def test_bad_input_exit_2(capsys: pytest.CaptureFixture[str], db: Path, argv: list[str], words: list[str]) -> None:
    code, out, err = cli(capsys, "devices", "group", "--db", db, *argv, "--json")
    assert code == 2, err
    assert "Traceback" not in err and all(w in err for w in words), err
    assert json.loads(out)["error"]["exit_code"] == 2


def test_missing_db_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = cli(capsys, "devices", "group", "--db", tmp_path / "none.db", "--space", "nb201")
    assert code == 2 and "none.db" in err and "Traceback" not in err
    assert not (tmp_path / "none.db").exists()


def test_devices_without_action_still_lists_configs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "devices", "--json")
    assert code == 0
    assert "local-cpu" in {d["name"] for d in json.loads(out)["devices"]}
    code, out, _ = cli(capsys, "devices")
    assert code == 0 and "local-cpu" in out
    code, out, _ = cli(capsys, "devices", "--help")
    assert code == 0 and "group" in out


@pytest.mark.skipif(not (HELP_NB201 / "titanx_256.pt").exists(), reason=f"HELP data not found at {HELP_NB201}")
def test_help_batch_256_gpus_group_apart_from_raspi4(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Real HELP tables: two batch-256 Pascal/Maxwell GPUs are proportional (R^2 > 0.98), the Raspberry Pi
    is not proportional to either (R^2 < 0)."""
    db = tmp_path / "help.db"
    code, _, err = cli(capsys, "dataset", "import", "help", SHARED, "--space", "nb201", "--devices",
                       "titanx_256,titanxp_256,raspi4", "--db", db, "-q")
    assert code == 0, err
    code, out, err = cli(capsys, "devices", "group", "--db", db, "--space", "nb201", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert sorted(sorted(g["members"]) for g in r["groups"]) == [["raspi4"], ["titanx_256", "titanxp_256"]]
    pairs = {(p["a"], p["b"]): p for p in r["pairs"]}
    assert pairs[("titanx_256", "titanxp_256")]["r2"] > 0.98 and pairs[("titanx_256", "titanxp_256")]["n"] == 15625
    assert pairs[("raspi4", "titanx_256")]["r2"] < 0
