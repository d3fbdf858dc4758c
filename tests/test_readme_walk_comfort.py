"""The README's "Profiling any model, and the Comfort Zone" walked as a user types it, on this CPU.

Its steps are in tests/test_readme_walk.py's WALK (the one list of README commands); this file types them in a
workspace of its own, so the walk runs beside the others under pytest-xdist (a file goes to one worker).
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from test_readme_walk import CZ_ARCH, Workspace, steps, workspace_fixture

ws = workspace_fixture("readme-comfort")


@pytest.mark.slow
def test_walk_profiling_any_model_and_the_comfort_zone(ws: Workspace) -> None:
    walk = steps("comfort")
    ws.short_protocol("local-cpu")  # the commands as written; each network timed briefly (a size)
    ran = dict(zip([s.readme for s in walk], ws.type(walk), strict=True))
    costs = ran["edgeprof costs --space conv-probe --arch i128-o128"].stdout
    assert "28,901,376" in costs and "197,632" in costs and "146.2" in costs
    conv = ran["edgeprof comfort-zone local-cpu --conv --out cz"]
    assert "Comfort Zone" in conv.stdout and "roofline" in conv.stdout
    for png in ("conv_sweep", "width_sweep", "roofline_conv", "roofline_width"):  # two runs, one folder: both kept
        assert (ws.work / "cz" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"
    scaled = json.loads((ws.work / "cz" / "width_scaled.json").read_text())
    assert scaled["arch_id"] == CZ_ARCH and scaled["search"] == "comfort-zone"
    assert scaled["verify"]["median"] > 0 and scaled["target"] > 0
    width = ran[next(s.readme for s in walk if "--width --space" in s.readme)].stdout
    assert "ϕ 1.25" in width and ("no Comfort Zone" in width or "Comfort Zone up to" in width)
    wider = ran[f"edgeprof costs --space mbconv-small --width 2 --arch {CZ_ARCH}"].stdout
    assert "1,346,191,552" in wider  # the MFLOPs of ϕ = 2 in benchmarks/comfort_zone_local.py's sweep
    sweep = ran["edgeprof profile local-cpu --onnx cz/width_scaled.onnx --batch 1,8,32"].stdout
    assert "images/s" in sweep and all(f"\n│ {b} " in sweep or f"│ {b} " in sweep for b in (1, 8, 32))
    summary = ran["edgeprof dataset summary"].stdout
    # the scaled network's file is the suite's own export (same sha256): it stays under mbconv-small, which
    # gains its batch 8 and 32 rows; batch 1 was measured by the sweep and is not measured again
    assert "conv-probe" in summary and "onnx:" not in summary
    surge = json.loads((ws.work / "surge-cz.json").read_text())
    (scale,) = surge["scale"]
    assert scale["device"] == "local-cpu" and scale["arch_id"] == surge["arch_id"]
    assert len(scale["steps"]) == 2 and (ws.work / "surge-cz.scale" / "local-cpu" / "width_scaled.json").exists()
    rows = dict(sqlite3.connect(ws.work / "edgeprof.db").execute(
        "SELECT m.space, COUNT(*) FROM measurements x JOIN models m ON m.sha256 = x.model_sha256 "
        "WHERE x.status = 'ok' GROUP BY m.space").fetchall())
    assert rows["conv-probe"] == 4 and "onnx" not in rows and rows["nb201"] >= 1 * 3 + 2
    batches = sqlite3.connect(ws.work / "edgeprof.db").execute(
        "SELECT x.batch, COUNT(*) FROM measurements x JOIN models m ON m.sha256 = x.model_sha256 "
        "WHERE m.space = 'mbconv-small' GROUP BY x.batch ORDER BY x.batch").fetchall()
    assert batches == [(1, 2 + 1), (8, 1), (32, 1)]  # ϕ = 1, 1.25 and a verification round; the --onnx sweep
