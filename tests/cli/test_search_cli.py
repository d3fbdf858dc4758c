"""`edgeprof search lightnas` end to end on this CPU: measure, train, search, verify through the agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def edgeprof(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, cwd=REPO,
                          env=os.environ.copy(), check=False, timeout=900)


@pytest.fixture(scope="module")
def local_mlp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict, Path]:
    """An MLP (and a GNN) trained on 12 NB201 networks measured on this CPU by the agent (the demo's path)."""
    tmp = tmp_path_factory.mktemp("search")
    db, preds = tmp / "d.db", tmp / "preds"
    r = edgeprof("demo", "--plan", "nb201=12", "--db", str(db), "--predictors", str(preds), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    mlp = next(p for p in res["predictors"] if p["kind"] == "mlp")
    gnn = next(p for p in res["predictors"] if p["kind"] == "gnn")
    return db, Path(mlp["path"]), res["summary"]["groups"][0]["latency_ms"], Path(gnn["path"])


@pytest.mark.slow
def test_search_verify_writes_result_and_plot(local_mlp, tmp_path: Path) -> None:
    db, mlp, spread, _ = local_mlp
    target = spread["median"]
    out = tmp_path / "res.json"
    r = edgeprof("search", "lightnas", "--device", "local-cpu", "--predictor", str(mlp), "--target-ms",
                 f"{target:.4f}", "--epochs", "2", "--resolution", "16", "--verify", "--rounds", "2", "--db", str(db),
                 "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    saved = json.loads(out.read_text())
    assert saved["arch_id"] == res["arch_id"] and saved["space"] == "nb201" and "proxy" in saved["data"]["name"]
    assert len(saved["lambda_history"]) > 1 and saved["predicted"] > 0
    v = saved["verify"]
    assert v["device"] == "local-cpu" and v["rounds"] == 2 and len(v["values"]) == 2 and v["median"] > 0
    assert v["error_vs_target"] == pytest.approx(v["median"] / target - 1.0, rel=1e-3, abs=1e-4)
    assert out.with_suffix(".png").stat().st_size > 10_000
    # each round is a new measurement row of the found network in the dataset
    groups = json.loads(edgeprof("dataset", "summary", "--db", str(db), "--json").stdout)["groups"]
    assert sum(g["ok"] for g in groups) == 12 + 2


@pytest.mark.slow
def test_search_correct_closes_the_loop_on_measured_networks(local_mlp, tmp_path: Path) -> None:
    """An MLP of 16 networks misjudges most: the loop (judging candidates with the GNN) measures neighbours
    and keeps the one nearest the target."""
    db, mlp, spread, gnn = local_mlp
    target = spread["median"]
    summary = json.loads(edgeprof("dataset", "summary", "--db", str(db), "--json").stdout)
    before = sum(g["ok"] for g in summary["groups"])
    out = tmp_path / "res.json"
    r = edgeprof("search", "lightnas", "--device", "local-cpu", "--predictor", str(mlp), "--target-ms",
                 f"{target:.4f}", "--epochs", "2", "--resolution", "16", "--verify", "--rounds", "1", "--correct", "3",
                 "--tolerance", "0.01", "--loop-predictor", str(gnn), "--db", str(db), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    loop, v = res["closed_loop"], res["verify"]
    assert loop["predictor"] == "gnn predictor"
    probes = loop["probes"]
    assert 1 <= loop["measurements"] == len(probes) <= 4
    assert len({tuple(p["arch"]) for p in probes}) == len(probes)  # no network measured twice
    # the network kept is a measured one, the nearest the target, and the verification is its measurement
    assert res["arch"] == loop["arch"]
    assert min(abs(p["error_vs_target"]) for p in probes) == abs(loop["error_vs_target"])
    assert v["median"] == pytest.approx(loop["measured"])
    assert v["error_vs_target"] == pytest.approx(loop["error_vs_target"])
    if loop["met"]:
        assert loop["stopped"] == "within tolerance" and abs(loop["error_vs_target"]) <= 0.01
    else:
        assert len(probes) == 4 or "neighbour" in loop["stopped"]
    if res["arch"] != probes[0]["arch"]:
        assert res["searched_arch"] == probes[0]["arch"]
    groups = json.loads(edgeprof("dataset", "summary", "--db", str(db), "--json").stdout)["groups"]
    assert sum(g["ok"] for g in groups) == before + len(probes)  # one round per measured network


def test_search_bad_input_is_named(local_mlp, tmp_path: Path) -> None:
    mlp = local_mlp[1]
    out = str(tmp_path / "x.json")
    r = edgeprof("search", "lightnas", "--device", "xavier", "--predictor", str(mlp), "--target-ms", "1",
                 "--out", out)
    assert r.returncode == 2 and "local-cpu" in r.stderr and "xavier" in r.stderr
    r = edgeprof("search", "lightnas", "--device", "local-cpu", "--predictor", str(mlp), "--target-ms", "1000",
                 "--out", out)
    assert r.returncode == 2 and "outside what the space can reach" in r.stderr and "ms" in r.stderr
    r = edgeprof("search", "lightnas", "--device", "local-cpu", "--predictor", str(tmp_path / "nope"),
                 "--target-ms", "1", "--out", out)
    assert r.returncode == 2 and "nope" in r.stderr
    r = edgeprof("search", "lightnas", "--device", "local-cpu", "--predictor", str(mlp), "--target-mj", "5",
                 "--out", out)
    assert r.returncode == 2 and "predicts latency, not energy" in r.stderr and "--quantity energy" in r.stderr
    r = edgeprof("search", "lightnas", "--device", "local-cpu", "--predictor", str(mlp), "--target-ms", "1",
                 "--correct", "2", "--out", out)
    assert r.returncode == 2 and "--verify" in r.stderr
    r = edgeprof("search", "lightnas", "--device", "local-cpu", "--predictor", str(mlp), "--target-ms", "1",
                 "--verify", "--loop-predictor", str(local_mlp[3]), "--out", out)
    assert r.returncode == 2 and "--correct" in r.stderr
    assert not Path(out).exists()
