"""`edgeprof comfort-zone` on this CPU: the conv sweep and the width sweep measured by the agent with ONNX Runtime,
resumable, with their pictures, the roofline and the scaled network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeprof.cli import main
from profiler.store import Store


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def measurements(db: Path) -> int:
    with Store(db, readonly=True) as store:
        return store.counts()["measurements"]


def test_conv_sweep_measures_the_grid_once_and_draws_it(fast_cpu_config: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    db, out = tmp_path / "cz.db", tmp_path / "pics"
    args = ["comfort-zone", str(fast_cpu_config), "--conv", "--hw", "8", "--channels", "8,16,32", "--db", str(db),
            "--out", str(out), "--json", "-q"]
    code, stdout, stderr = run(capsys, *args)
    assert code == 0, stderr
    rep = json.loads(stdout)
    conv = rep["conv"]
    assert conv["in_channels"] == [8, 16, 32] and conv["probe"]["h"] == 8 and conv["probe"]["k"] == 3
    lat = conv["latency_ms"]
    assert len(lat) == 3 and all(len(row) == 3 and all(v is not None and v > 0 for v in row) for row in lat)
    # intensity grows with the channels (eq. 3.19) along both axes
    inten = conv["intensity"]
    assert inten[0][0] < inten[1][1] < inten[2][2] and inten[0][2] < inten[2][2]
    zone = conv["zone"]
    assert zone["base"] == [8, 8] and zone["cells"] >= 1 and zone["verdict"]
    assert zone["base_latency_ms"] == pytest.approx(lat[0][0])
    # every cell in the zone is within the tolerance of the base
    (i0, i1), (o0, o1) = zone["i_range"], zone["o_range"]
    chans = conv["in_channels"]
    for i, ci in enumerate(chans):
        for o, co in enumerate(chans):
            if i0 <= ci <= i1 and o0 <= co <= o1:
                assert lat[i][o] <= (1 + rep["tolerance"]) * lat[0][0] + 1e-12
    assert measurements(db) == 9
    for key in ("conv", "roofline"):
        assert Path(rep["plots"][key]).stat().st_size > 10_000
    roof = rep["roofline"]
    assert roof["peak_mac_s"] > 0 and roof["bandwidth_gb_s"] > 0 and len(roof["points"]) == 9
    # a rerun measures nothing and reads the same grid back
    code, stdout, stderr = run(capsys, *args)
    assert code == 0, stderr
    assert measurements(db) == 9 and json.loads(stdout)["conv"]["latency_ms"] == lat
    # another probe size is another config: measured, not mistaken for the first
    code, _, stderr = run(capsys, *[a if a != "8" else "10" for a in args])
    assert code == 0, stderr
    assert measurements(db) == 18


def test_width_sweep_picks_phi_writes_and_verifies_the_scaled_network(
        fast_cpu_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from spaces import create_space

    space = create_space("nb201")
    arch_id = space.arch_id(space.sample_unique(1, __import__("numpy").random.default_rng(3))[0])
    db, out = tmp_path / "cz.db", tmp_path / "pics"
    args = ["comfort-zone", str(fast_cpu_config), "--width", "--space", "nb201", "--arch", arch_id,
            "--phis", "1,1.5,2", "--db", str(db), "--out", str(out)]
    code, stdout, stderr = run(capsys, *args, "--verify", "--rounds", "2", "--json", "-q")
    assert code == 0, stderr
    rep = json.loads(stdout)
    width = rep["width"]
    steps = width["steps"]
    assert [s["phi"] for s in steps] == [1.0, 1.5, 2.0]
    assert [s["space_config"]["C"] for s in steps] == [16, 24, 32]
    assert steps[0]["flops"] < steps[1]["flops"] < steps[2]["flops"]
    assert all(s["latency_ms"] > 0 for s in steps)
    choice = width["choice"]
    base = steps[0]["latency_ms"]
    # the chosen ϕ: every step up to it within the tolerance, the next one (if any) beyond it
    chosen = [s["phi"] for s in steps].index(choice["phi"])
    assert all(s["latency_ms"] <= (1 + rep["tolerance"]) * base for s in steps[:chosen + 1])
    if chosen + 1 < len(steps):
        assert steps[chosen + 1]["latency_ms"] > (1 + rep["tolerance"]) * base
    assert ("no Comfort Zone" in choice["verdict"]) == (choice["phi"] == 1.0)
    scaled = width["scaled"]
    saved = json.loads(Path(scaled["path"]).read_text())
    assert saved["space_config"]["C"] == steps[chosen]["space_config"]["C"] and saved["arch_id"] == arch_id
    assert saved["target"] == pytest.approx(base) and saved["search"] == "comfort-zone"
    assert Path(saved["onnx"]).stat().st_size > 1000
    v = saved["verify"]
    assert v["rounds"] == 2 and len(v["values"]) == 2
    assert v["error_vs_target"] == pytest.approx(v["median"] / base - 1)
    assert Path(rep["plots"]["width"]).stat().st_size > 10_000 and Path(rep["plots"]["roofline"]).exists()
    n = measurements(db)
    assert n == 3 + 2
    # a rerun without --verify measures nothing new; the printed report says the verdict in words
    code, stdout, stderr = run(capsys, *args)
    assert code == 0, stderr
    assert measurements(db) == n
    assert choice["verdict"] in stdout and "ϕ 1.5" in stdout


@pytest.mark.parametrize("extra, message", [
    ([], "--conv, --width"),
    (["--width"], "--space S --arch A"),
    (["--conv", "--tolerance", "0"], "--tolerance"),
    (["--conv", "--base", "8"], "--base"),
    (["--conv", "--channels", "16,8"], "channels"),
    (["--conv", "--channels", "8,16", "--base", "8,24"], "24"),
    (["--width", "--space", "nb201", "--arch", "nope"], "nb201"),
    (["--width", "--space", "nb201", "--arch", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
      "--phis", "1.5,2"], "--phis"),
    (["--width", "--result", "missing.json"], "missing.json"),
    (["--conv", "--verify"], "--width"),
])
def test_bad_input_exits_2_naming_it(fast_cpu_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     extra: list[str], message: str) -> None:
    code, stdout, stderr = run(capsys, "comfort-zone", str(fast_cpu_config), *extra, "--db", str(tmp_path / "x.db"),
                               "--out", str(tmp_path / "o"), "--json", "-q")
    assert code == 2, stderr
    assert message in stderr and "Traceback" not in stderr
    assert json.loads(stdout)["error"]["exit_code"] == 2
    assert not (tmp_path / "x.db").exists() or measurements(tmp_path / "x.db") == 0
