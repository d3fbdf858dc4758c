"""`edgeprof search surgenas` as a user types it: without a predictor (β = 0) on mbconv-small, and the refusals
(exit 2 naming the option). nb201 without a predictor, with a predictor at a fixed β and at a target, and the
results judged by `report search`: tests/test_readme_walk.py::test_walk_surgenas_and_device_groups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import cli

SMALL = ("--epochs", "2", "--resolution", "16", "--proxy-n", "60", "--batch-size", "32")


def test_without_a_predictor_writes_result_and_plot(capsys, tmp_path):
    space = "mbconv-small"
    out = tmp_path / "found.json"
    code, stdout, err = cli(capsys, "search", "surgenas", "--space", space, *SMALL, "--out", out, "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["search"] == "surgenas" and res["space"] == space and res["beta"] == 0.0
    assert res["target"] is None and res["predicted"] is None and res["device"] is None
    assert res["fairness"]["equal"] and res["fairness"]["iterations"] == 4  # 48 images, batch 32, 2 epochs
    assert json.loads(out.read_text())["arch_id"] == res["arch_id"]
    assert Path(res["plot"]).stat().st_size > 10_000


@pytest.mark.parametrize(("argv", "message"), [
    (("--space", "nb201", "--beta", "1"), "--beta > 0 puts the predicted latency in the loss"),
    (("--out-of-place",), None),
    ((), "name the space to search"),
    (("--space", "nb201", "--target-ms", "3"), "--predictor"),
    (("--space", "nb202",), "unknown search space 'nb202'"),
    (("--space", "nb201", "--proxy-n", "3"), "--proxy-n must be at least 10"),
    (("--space", "nb201", "--verify"), "--device"),
    (("--space", "nb201", "--scale"), "--scale without a device list widens on --device"),
    (("--space", "nb201", "--scale", "local-cpu", "--scale-phis", "2,3"), "--scale-phis must start at 1"),
    (("--space", "nb201", "--scale", "local-cpu", "--scale-phis", "1,x"), "--scale-phis takes comma-separated"),
    (("--space", "nb201", "--scale", "local-cpu", "--scale-tolerance", "0"), "--scale-tolerance"),
    (("--space", "nb201", "--scale", "local-cpu,no-such-board"), "no-such-board"),
])
def test_bad_input_is_named(capsys, tmp_path, argv, message):
    try:
        code, _, err = cli(capsys, "search", "surgenas", *argv, "--out", tmp_path / "x.json")
    except SystemExit as e:  # argparse's own refusal
        code, err = e.code, capsys.readouterr().err
    assert code == 2, err
    if message:
        assert message in err, err
    assert "Traceback" not in err


def test_lightnas_still_needs_its_predictor_and_target(capsys, tmp_path):
    code, _, err = cli(capsys, "search", "lightnas", "--device", "local-cpu", "--out", tmp_path / "x.json")
    assert code == 2 and "search lightnas needs --predictor, --target-ms or --target-mj" in err, err


def test_scale_widens_the_found_network_on_each_board(capsys, tmp_path, fast_cpu_config):
    """--scale: the found network's width sweep on the board, the widest as fast as ϕ = 1 written beside --out and
    verified in --rounds jobs (thesis §5.4: one base network, scaled per board)."""
    out, db = tmp_path / "found.json", tmp_path / "d.db"
    code, stdout, err = cli(capsys, "search", "surgenas", "--space", "nb201", *SMALL, "--device", fast_cpu_config,
                            "--scale", "--scale-phis", "1,2", "--rounds", "1", "--db", db, "--out", out, "--json")
    assert code == 0, err
    res = json.loads(stdout)
    (scaled,) = res["scale"]
    assert scaled["device"] == "fast-cpu" and scaled["arch_id"] == res["arch_id"]
    assert [s["phi"] for s in scaled["steps"]] == [1.0, 2.0]
    assert [s["space_config"]["C"] for s in scaled["steps"]] == [16, 32]
    assert all(s["latency_ms"] > 0 for s in scaled["steps"])
    choice = scaled["choice"]
    assert choice["phi"] in (1.0, 2.0) and choice["verdict"]
    written = json.loads(Path(scaled["scaled"]["path"]).read_text())
    assert written["space_config"]["C"] == (32 if choice["phi"] == 2.0 else 16)
    assert written["verify"]["rounds"] == 1 and written["verify"]["median"] > 0
    assert Path(scaled["plots"]["width"]).parent == tmp_path / "found.scale" / "fast-cpu"
    assert json.loads(out.read_text())["scale"][0]["choice"] == choice
    code, _, err = cli(capsys, "search", "surgenas", "--space", "nb201", *SMALL, "--device", fast_cpu_config,
                       "--scale", "--scale-phis", "1,2", "--rounds", "1", "--db", db, "--out", out)
    assert code == 0, err
    assert f"scaled on fast-cpu: {choice['verdict']}" in err
