"""`edgeprof demo` end to end on this CPU with a small plan: measure through the agent, train, report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def edgeprof(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, cwd=REPO,
                          env=os.environ.copy(), check=False, timeout=600)


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
