"""The README's "Hardware-aware search" walked as a user types it, on this CPU (measure, train, search, verify,
close the loop), and the refusals a user meets there (what tests/cli/test_search_cli.py checked on a
workspace of its own before: the same searches, twice the measuring).

Its steps are in tests/test_readme_walk.py's WALK (the one list of README commands); this file types them in a
workspace of its own, so the walk runs beside the others under pytest-xdist (a file goes to one worker).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
from test_readme_walk import Workspace, steps, workspace_fixture

ws = workspace_fixture("readme-search")


def ok_rows(ws: Workspace) -> int:
    with sqlite3.connect(ws.work / "lab.db") as db:
        return db.execute("SELECT COUNT(*) FROM measurements WHERE status = 'ok'").fetchone()[0]


def edgeprof(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    """One more command in the walk's workspace (the refusals a user meets there)."""
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], cwd=ws.work, env=ws.env, capture_output=True,
                          text=True, check=False, timeout=300)


@pytest.mark.slow
def test_walk_hardware_aware_search(ws: Workspace) -> None:
    ws.short_protocol("local-cpu")  # the commands as written; each network timed briefly (a size)
    walk = steps("search")
    *before, last = walk
    ran = dict(zip([s.readme for s in before], ws.type(before), strict=True))
    assert "lightnas" in ran["edgeprof search --help"].stdout
    measured = 12  # the walk's `profile --n`
    # the verified search (one round here): result, plot, and each round a new measurement row
    saved = json.loads((ws.work / "found.json").read_text())
    assert saved["space"] == "mbconv-small" and "digits" in saved["data"]["name"]
    assert len(saved["lambda_history"]) > 1 and saved["predicted"] > 0 and saved["target"] > 0
    v = saved["verify"]
    assert v["device"] == "local-cpu" and v["rounds"] == len(v["values"]) == 1 and v["median"] > 0
    assert v["error_vs_target"] == pytest.approx(v["median"] / saved["target"] - 1.0, rel=1e-3, abs=1e-4)
    assert (ws.work / "found.png").stat().st_size > 10_000
    assert ok_rows(ws) == measured + 1
    # the closed loop (judged by the GNN): measured neighbours, the one nearest the target kept
    ws.type([last])
    result = json.loads((ws.work / "found.json").read_text())
    loop, v = result["closed_loop"], result["verify"]
    probes = loop["probes"]
    assert loop["predictor"] == "gnn predictor" and v["device"] == "local-cpu"
    assert 1 <= loop["measurements"] == len(probes) <= 1 + 3 and all(p["measured"] > 0 for p in probes)
    assert len({tuple(p["arch"]) for p in probes}) == len(probes)  # no network measured twice
    nearest = min(probes, key=lambda p: abs(p["measured"] - result["target"]))
    assert result["arch"] == nearest["arch"] == loop["arch"]
    assert min(abs(p["error_vs_target"]) for p in probes) == abs(loop["error_vs_target"])
    assert v["median"] == pytest.approx(loop["measured"]) and v["error_vs_target"] == pytest.approx(
        loop["error_vs_target"])
    if loop["met"]:
        assert loop["stopped"] == "within tolerance" and abs(loop["error_vs_target"]) <= 0.02
    else:
        assert len(probes) == 4 or "neighbour" in loop["stopped"]
    if result["arch"] != probes[0]["arch"]:
        assert result["searched_arch"] == probes[0]["arch"]
    assert ok_rows(ws) == measured + 1 + len(probes)  # one round per measured network
    # the refusals, with the walk's predictors: exit 2 naming what is wrong, nothing written
    out = "refused.json"
    for args, said in (
            (("--device", "xavier", "--predictor", "mlp-cpu", "--target-ms", "1"), ("local-cpu", "xavier")),
            (("--device", "local-cpu", "--predictor", "mlp-cpu", "--target-ms", "1000"),
             ("outside what the space can reach",)),
            (("--device", "local-cpu", "--predictor", "nope", "--target-ms", "1"), ("nope",)),
            (("--device", "local-cpu", "--predictor", "mlp-cpu", "--target-mj", "5"),
             ("predicts latency, not energy", "--quantity energy")),
            (("--device", "local-cpu", "--predictor", "mlp-cpu", "--target-ms", "1", "--correct", "2"), ("--verify",)),
            (("--device", "local-cpu", "--predictor", "mlp-cpu", "--target-ms", "1", "--verify", "--loop-predictor",
              "gnn-cpu"), ("--correct",))):
        r = edgeprof(ws, "search", "lightnas", *args, "--out", out)
        assert r.returncode == 2 and all(w in r.stderr for w in said), (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert not (ws.work / out).exists()
    # the open-loop remedy (an mlp-ensemble's pick) and LightNAS stage 2 over found.json, as the README types them
    rows = ok_rows(ws)
    ran = dict(zip([s.readme for s in steps("channels")], ws.type(steps("channels")), strict=True))
    assert all(r.returncode == 0 for r in ran.values()), [r.stderr[-2000:] for r in ran.values() if r.returncode]
    ens = json.loads((ws.work / "found-ens.json").read_text())
    refine = ens["refine"]
    assert ens["predictor"]["source"] == "mlp-ensemble predictor" and ens["predictor_path"].endswith("ens-cpu")
    assert refine["kappa"] > 0 and refine["radius"] == 2 and ens["disagreement"] >= 0  # the ensemble's default
    assert ens["verify"]["median"] > 0
    base = json.loads((ws.work / "found.json").read_text())
    stage2 = json.loads((ws.work / "found2.json").read_text())
    assert stage2["search"] == "lightnas-channels" and stage2["space"] == "mbconv-channels"
    assert stage2["space_config"]["base"] == base["arch_id"]
    assert len(stage2["scales"]) == len(stage2["arch"]) == sum(tok != "skip" for tok in base["arch_id"].split("-"))
    assert abs(stage2["predicted"] / stage2["target"] - 1) <= 0.02 and len(stage2["history"]) == 2
    assert stage2["verify"]["device"] == "local-cpu" and stage2["verify"]["median"] > 0
    assert (ws.work / "found2.png").read_bytes()[:4] == b"\x89PNG"
    assert ok_rows(ws) == rows + 1 + 8 + 1  # the ensemble's network, 8 channel configurations, stage 2's network
