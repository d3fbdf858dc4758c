"""`edgeprof profile DEV --onnx FILE`: real agent and ONNX Runtime on this CPU, the CLI in this process."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli_helpers import cli
from onnx_nets import small_net


def test_onnx_measured_stored_resumed_and_summarised(capsys: pytest.CaptureFixture[str], fast_cpu_config: Path,
                                                     tmp_path: Path) -> None:
    model, db = small_net(tmp_path / "net.onnx", {0: "batch"}), tmp_path / "x.db"
    code, out, err = cli(capsys, "profile", fast_cpu_config, "--onnx", model, "--batch", "1,4", "--db", db, "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert (rep["space"], rep["measured_ok"], rep["measured_error"]) == ("onnx", 2, 0)
    assert rep["model"]["inputs"] == {"images": [1, 3, 16, 16]} and rep["model"]["flops"] > 0
    for row in rep["batches"]:
        assert row["images_per_s"] == pytest.approx(row["batch"] * 1000 / row["median_ms"])
        assert row["p10_ms"] <= row["median_ms"] <= row["p90_ms"] and row["n"] >= 5

    code, out, _ = cli(capsys, "profile", fast_cpu_config, "--onnx", model, "--batch", "4,1", "--db", db, "--json")
    again = json.loads(out)
    assert code == 0 and (again["measured_ok"], again["already_measured"]) == (0, 2)  # a rerun measures nothing
    assert [r["median_ms"] for r in again["batches"]] == [r["median_ms"] for r in reversed(rep["batches"])]

    code, out, _ = cli(capsys, "profile", fast_cpu_config, "--onnx", model, "--batch", "1,4", "--db", db)
    assert code == 0 and "images/s" in out and "ms / image" in out

    code, out, _ = cli(capsys, "dataset", "summary", "--db", db, "--json")
    groups = json.loads(out)["groups"]
    assert code == 0 and {(g["space"], g["batch"], g["ok"]) for g in groups} == {
        (f"onnx:net.onnx ({rep['model']['sha256'][:8]})", b, 1) for b in (1, 4)}
    code, _, err = cli(capsys, "dataset", "export", tmp_path / "x.csv", "--db", db)
    rows = list(csv.DictReader((tmp_path / "x.csv").read_text().splitlines()))
    assert code == 0 and {(r["space"], r["arch_id"], int(r["flops"])) for r in rows} == {
        ("onnx", rep["model"]["sha256"][:16], rep["model"]["flops"])}


def test_dynamic_hw_needs_input_shape(capsys: pytest.CaptureFixture[str], fast_cpu_config: Path,
                                      tmp_path: Path) -> None:
    model, db = small_net(tmp_path / "hw.onnx", {0: "batch", 2: "height", 3: "width"}), tmp_path / "x.db"
    code, _, err = cli(capsys, "profile", fast_cpu_config, "--onnx", model, "--db", db)
    assert code == 2 and "images" in err and "height" in err and "--input-shape" in err
    assert "Traceback" not in err
    code, out, err = cli(capsys, "profile", fast_cpu_config, "--onnx", model, "--input-shape", "images:1x3x24x24",
                         "--batch", "2", "--db", db, "--json")
    rep = json.loads(out)
    assert code == 0, err
    assert rep["measured_ok"] == 1 and rep["model"]["inputs"] == {"images": [1, 3, 24, 24]}


def test_fixed_batch_runs_at_its_batch_only(capsys: pytest.CaptureFixture[str], fast_cpu_config: Path,
                                            tmp_path: Path) -> None:
    model, db = small_net(tmp_path / "b1.onnx", None), tmp_path / "x.db"
    code, _, err = cli(capsys, "profile", fast_cpu_config, "--onnx", model, "--batch", "1,8", "--db", db)
    assert code == 2 and "fixed batch of 1" in err and "dynamic batch axis" in err and "Traceback" not in err
    code, out, err = cli(capsys, "profile", fast_cpu_config, "--onnx", model, "--db", db, "--json")
    assert code == 0 and json.loads(out)["measured_ok"] == 1, err


def test_user_errors_exit_2_naming_the_culprit(capsys: pytest.CaptureFixture[str], fast_cpu_config: Path,
                                               tmp_path: Path) -> None:
    model, db = small_net(tmp_path / "net.onnx", {0: "batch"}), tmp_path / "x.db"
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x07not a model\xff" * 20)
    cases = [
        (("--onnx", model, "--batch", "0"), "'0'"),
        (("--onnx", model, "--batch", "1,a"), "'a'"),
        (("--onnx", model, "--batch", ""), "''"),
        (("--onnx", tmp_path / "nope.onnx"), "nope.onnx: no such ONNX file"),
        (("--onnx", junk), "junk.onnx: not an ONNX model"),
        (("--onnx", model, "--n", "3"), "--n"),
        (("--onnx", model, "--input-shape", "pixels:1x3x16x16"), "pixels"),
        (("--onnx", model, "--input-shape", "1x3x16"), "3 dims"),
    ]
    for args, needle in cases:
        code, _, err = cli(capsys, "profile", fast_cpu_config, *args, "--db", db)
        assert code == 2 and needle in err and "Traceback" not in err, (args, err)
    code, _, err = cli(capsys, "profile", f"{fast_cpu_config},{fast_cpu_config}", "--onnx", model, "--db", db)
    assert code == 2 and "one device at a time" in err
    code, _, err = cli(capsys, "profile", fast_cpu_config, "--onnx", model, "--space", "nb201", "--db", db)
    assert code == 2 and "not allowed with argument" in err  # argparse: --space and --onnx exclude each other
    assert not db.exists() or json.loads(cli(capsys, "dataset", "summary", "--db", db, "--json")[1])["groups"] == []
