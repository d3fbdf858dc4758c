"""The README's "Domino" section walked as a user types it, on this CPU (small sizes).

Its steps are in tests/test_readme_walk.py's WALK (the one list of README commands); this file types them in a
workspace of its own, so the walk runs beside the others under pytest-xdist (a file goes to one worker).
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from test_readme_walk import Workspace, steps, workspace_fixture

ws = workspace_fixture("readme-domino")
MASK = "01101111000011110"


@pytest.mark.slow
def test_walk_domino(ws: Workspace) -> None:
    walk = steps("domino")
    ws.short_protocol("local-cpu")  # the commands as written; each network timed briefly (a size)
    ran = dict(zip([s.readme for s in walk], ws.type(walk), strict=True))
    costs = ran["edgeprof costs --space mobilenetv2 --arch 00000000000000000"].stdout
    assert "257,528,832" in costs and "20 counted layers" in costs  # stem + 17 merged blocks + head, and the FC
    db = sqlite3.connect(ws.work / "domino.db")
    measured = dict(db.execute(
        "SELECT m.arch_id, COUNT(*) FROM measurements x JOIN models m ON m.sha256 = x.model_sha256 "
        "WHERE x.status = 'ok' AND m.space = 'mobilenetv2-small' AND x.batch = 1 GROUP BY m.arch_id").fetchall())
    profiled = len(measured)
    tasks = dict(db.execute("SELECT task, COUNT(*) FROM accuracies WHERE source = 'edgeprof-proxy' "
                            "GROUP BY task").fetchall())
    assert tasks == {"digits": 14, "digits-e3": 12 + 1}  # the sample of each task, and the mask deployed

    res = json.loads((ws.work / "pareto.json").read_text())
    assert res["search"] == "domino" and res["device"] == "local-cpu" and len(res["picks"]) == 4
    assert res["random"]["evaluations"] == res["evaluations"] > 20
    assert (ws.work / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    rows = res["pareto_verified"]
    assert 1 <= len(rows) <= 4 and all(r["rounds"] == 1 and r["measured_ms"] > 0 for r in rows)
    # every verified member is in the dataset, measured on the board (the merged network, as profile measures)
    assert all(measured.get(r["arch_id"], 0) >= 1 for r in rows)
    assert profiled >= 6
    summary = ran[next(s.readme for s in walk if s.readme.startswith("edgeprof search domino"))].stderr
    assert "Pareto set:" in summary and "  A <= " in summary and "Pareto members on local-cpu" in summary

    merge = ran[next(s.readme for s in walk if s.readme.startswith("edgeprof graft merge"))].stderr
    assert "merged.onnx" in merge and (ws.work / "merged.onnx").stat().st_size > 0
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(ws.work / "merged.onnx")).metadata_props}
    assert meta["edgeprof.arch_id"] == MASK and meta["edgeprof.space"] == "mobilenetv2-small"
    sweep = ran["edgeprof profile local-cpu --onnx merged.onnx --batch 1,8 --db domino.db"].stdout
    assert "images/s" in sweep
