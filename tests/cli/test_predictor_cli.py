"""Predictor commands end to end on a HELP table imported into a real SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def edgeprof(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, cwd=REPO,
                          env=os.environ.copy(), check=False, timeout=600)


@pytest.fixture(scope="module")
def help_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    if not (SHARED / "data" / "HELP" / "data" / "nasbench201" / "latency" / "fpga.pt").exists():
        pytest.skip(f"HELP data not found under {SHARED}")
    db = str(tmp_path_factory.mktemp("pred") / "h.db")
    r = edgeprof("dataset", "import", "help", str(SHARED), "--space", "nb201", "--devices", "fpga", "--db", db)
    assert r.returncode == 0, r.stderr
    return db


def test_train_evaluate_predict_report(help_db: str, tmp_path: Path) -> None:
    out = tmp_path / "mlp-fpga"
    r = edgeprof("train", "mlp", "--db", help_db, "--device", "fpga", "--space", "nb201", "--train-n", "900",
                 "--epochs", "20", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)["metrics"]
    assert m["n_target_samples"] == 900 and m["n"] == 15625 - 900 and "900 train" in m["split"]
    assert m["spearman"] > 0.8
    assert (out / "card.json").exists()
    ev = json.loads(edgeprof("evaluate", str(out), "--db", help_db, "--device", "fpga", "--json").stdout)
    assert abs(ev["metrics"]["spearman"] - m["spearman"]) < 1e-9  # the same held-out archs
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    p = json.loads(edgeprof("predict", str(out), "--arch", arch, "--json").stdout)
    assert p["predictions"][0]["predicted_ms"] > 0
    rep = edgeprof("report", "predictor", str(out), "--db", help_db, "--device", "fpga", "--out", str(tmp_path / "r"))
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "r" / "scatter.png").stat().st_size > 10_000 and "Spearman" in (tmp_path / "r" / "metrics.md").read_text()


def test_bad_input_is_named(help_db: str, tmp_path: Path) -> None:
    r = edgeprof("train", "mlp", "--db", help_db, "--device", "raspi9", "--space", "nb201", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "raspi9" in r.stderr and "fpga" in r.stderr  # names the devices that have data
    r = edgeprof("train", "mlpp", "--db", help_db, "--device", "fpga", "--space", "nb201", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "mlpp" in r.stderr
    r = edgeprof("train", "mlp", "--db", help_db, "--device", "fpga", "--space", "mbconv", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "mbconv" in r.stderr


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Five NB201 devices (3 sources, 1 meta-valid, 1 target) and one FBNet device."""
    if not (SHARED / "data" / "HELP" / "data" / "fbnet" / "latency" / "fpga.pt").exists():
        pytest.skip(f"HELP data not found under {SHARED}")
    db = str(tmp_path_factory.mktemp("meta") / "m.db")
    r = edgeprof("dataset", "import", "help", str(SHARED), "--space", "nb201", "--devices",
                 "1080ti_1,silver_4114,pixel3,titanx_1,raspi4", "--db", db)
    assert r.returncode == 0, r.stderr
    r = edgeprof("dataset", "import", "help", str(SHARED), "--space", "fbnet", "--devices", "eyeriss", "--db", db)
    assert r.returncode == 0, r.stderr
    return db


def test_meta_train_adapt_evaluate(fleet_db: str, tmp_path: Path) -> None:
    meta = tmp_path / "meta"
    r = edgeprof("train", "meta", "--db", fleet_db, "--space", "nb201", "--devices", "1080ti_1,silver_4114,pixel3",
                 "--valid-devices", "titanx_1", "--single", "--epochs", "100", "--out", str(meta), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["kind"] == "help" and res["valid_devices"] == ["titanx_1"] and 0 < res["valid_spearman"] <= 1
    adapted = tmp_path / "raspi4"
    r = edgeprof("adapt", str(meta), "--db", fleet_db, "--device", "raspi4", "--samples", "10", "--out", str(adapted),
                 "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)["metrics"]
    assert m["n_target_samples"] == 10 and m["spearman"] > 0.5  # 100 meta-iterations only: loose
    ev = edgeprof("evaluate", str(adapted), "--db", fleet_db, "--device", "raspi4", "--json")
    assert ev.returncode == 0, ev.stderr
    # bad input: too few samples, a device without data, a space mismatch
    r = edgeprof("adapt", str(meta), "--db", fleet_db, "--device", "raspi4", "--samples", "1", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "--samples" in r.stderr and "at least 2" in r.stderr
    r = edgeprof("adapt", str(meta), "--db", fleet_db, "--device", "jetson9", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "jetson9" in r.stderr and "raspi4" in r.stderr
    r = edgeprof("adapt", str(meta), "--db", fleet_db, "--device", "eyeriss", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "space mismatch" in r.stderr and "fbnet" in r.stderr
    r = edgeprof("evaluate", str(adapted), "--db", fleet_db, "--device", "eyeriss")
    assert r.returncode == 2 and "space mismatch" in r.stderr
    r = edgeprof("train", "meta", "--db", fleet_db, "--space", "nb201", "--devices", "raspi4", "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and "at least two" in r.stderr
