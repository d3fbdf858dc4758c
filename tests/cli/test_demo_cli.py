"""`edgeprof demo` end to end on this CPU with a small plan: measure through the agent, train, report."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_helpers import run_here

REPO = Path(__file__).resolve().parents[2]


def edgeprof(*args: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (cli_helpers.run_here): these tests check exit codes and output, not startup."""
    return run_here(*args)


@pytest.mark.slow
def test_demo_measures_then_trains_mlp_and_gnn(tmp_path: Path) -> None:
    db, preds = tmp_path / "d.db", tmp_path / "preds"
    r = edgeprof("demo", "--plan", "nb201=12", "--db", str(db), "--predictors", str(preds), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    (group,) = res["summary"]["groups"]
    assert group["device"] == "local-cpu" and group["space"] == "nb201" and group["ok"] == 12
    assert res["search"] is None  # no small-MBConv measurements, so no LightNAS step
    trained = {p["kind"]: p for p in res["predictors"]}
    assert set(trained) == {"mlp", "gnn"}
    for p in trained.values():
        m = p["metrics"]
        assert m["n_target_samples"] == 9 and m["n"] == 3 and "9 train / 3 test" in m["split"]
        assert m["rmse"] >= 0 and (Path(p["path"]) / "card.json").exists()
        assert sorted(json.loads((Path(p["path"]) / "train_archs.json").read_text())) == \
            json.loads((Path(p["path"]) / "train_archs.json").read_text())
    # the saved predictor evaluates on the 3 held-out archs only
    ev = edgeprof("evaluate", trained["mlp"]["path"], "--db", str(db), "--device", "local-cpu", "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["metrics"]["n"] == 3


def test_demo_plan_is_checked(tmp_path: Path) -> None:
    r = edgeprof("demo", "--plan", "nb202=3", "--db", str(tmp_path / "d.db"))
    assert r.returncode == 2 and "nb202" in r.stderr and "nb201" in r.stderr


@pytest.mark.slow
def test_demo_trains_on_what_it_measured_when_the_device_has_other_runtimes(tmp_path: Path) -> None:
    """A dataset where local-cpu was also measured with torch: the demo trains on its own setting
    (onnxruntime, fp32, batch 1) instead of stopping at the ambiguity."""
    import numpy as np

    from agents.protocol import RESULT_SCHEMA
    from profiler.store import ModelRecord, Store
    from spaces import create_space

    space = create_space("nb201")
    db = tmp_path / "d.db"
    with Store(db) as store:
        store.add_device("local-cpu", "cpu", {})
        arch = space.sample_unique(1, np.random.default_rng(5))[0]
        store.add_models([ModelRecord("e" * 64, "nb201", space.config, space.arch_id(arch))])
        store.add_results([{"schema": RESULT_SCHEMA, "job_id": "old", "task_id": "t1", "model_sha256": "e" * 64,
                            "device": "local-cpu", "backend": "torch", "precision": "fp32", "batch": 1,
                            "status": "ok", "error": None, "latency_ms": {"median": 9.0}, "energy": None}])
    r = edgeprof("demo", "--plan", "nb201=10", "--db", str(db), "--predictors", str(tmp_path / "p"), "--json")
    assert r.returncode == 0, r.stderr
    trained = json.loads(r.stdout)["predictors"]
    assert {p["kind"] for p in trained} == {"mlp", "gnn"}
    assert all(p["metrics"]["n_target_samples"] + p["metrics"]["n"] == 10 for p in trained)
