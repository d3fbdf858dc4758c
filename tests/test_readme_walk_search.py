"""The README's "Hardware-aware search" walked as a user types it, on this CPU (measure, train, search, verify,
close the loop).

Its steps are in tests/test_readme_walk.py's WALK (the one list of README commands); this file types them in a
workspace of its own, so the walk runs beside the others under pytest-xdist (a file goes to one worker).
"""

from __future__ import annotations

import json

import pytest
from test_readme_walk import Workspace, steps, workspace_fixture

ws = workspace_fixture("readme-search")


@pytest.mark.slow
def test_walk_hardware_aware_search(ws: Workspace) -> None:
    ran = dict(zip([s.readme for s in steps("search")], ws.type(steps("search")), strict=True))
    assert "lightnas" in ran["edgeprof search --help"].stdout
    result = json.loads((ws.work / "found.json").read_text())  # the closed-loop run wrote it last
    loop = result["closed_loop"]
    assert result["verify"]["device"] == "local-cpu" and result["verify"]["median"] > 0
    assert 1 <= loop["measurements"] == len(loop["probes"]) <= 1 + 3
    assert all(p["measured"] > 0 for p in loop["probes"])
    # the network returned is a measured one: the probe nearest the target
    nearest = min(loop["probes"], key=lambda p: abs(p["measured"] - result["target"]))
    assert result["arch"] == nearest["arch"] == loop["arch"]
    assert (ws.work / "found.png").stat().st_size > 0
