"""Real Jetson paths (marker `jetson`): run on a Jetson board, skip elsewhere saying why."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.jetson
ON_JETSON = Path("/etc/nv_tegra_release").exists()
needs_jetson = pytest.mark.skipif(not ON_JETSON, reason="not a Jetson (no /etc/nv_tegra_release)")


@needs_jetson
def test_board_identity_and_state() -> None:
    from agents.board import collect_board_state
    from agents.jetson_sysfs import read_l4t_release
    from agents.sysfs import read_board_model

    assert read_l4t_release("/") and read_board_model("/")
    state = collect_board_state("/")
    assert state.get("igpu") or state.get("board_reasons")


@needs_jetson
def test_ina3221_total_rail_reads_power() -> None:
    from agents.meters import METERS

    cls = METERS.get("ina3221")
    reason = cls.available(root="/")
    assert reason is None, reason
    meter = cls(rail=None, rate_hz=100.0, root="/")
    meter.start()
    time.sleep(0.5)
    trace = meter.stop()
    assert len(trace.t_s) >= 10 and min(trace.power_mw) > 0 and trace.rule


@needs_jetson
def test_tegrastats_line_parses() -> None:
    from agents.meters.tegrastats import parse_tegrastats_line

    exe = shutil.which("tegrastats") or "/usr/bin/tegrastats"
    if not Path(exe).exists():
        pytest.skip("tegrastats not installed")
    p = subprocess.Popen([exe, "--interval", "200"], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
    finally:
        p.terminate()
    parsed = parse_tegrastats_line(line)
    assert parsed.get("rails"), line
