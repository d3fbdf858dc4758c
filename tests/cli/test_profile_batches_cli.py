"""`edgeprof profile DEV --space S --n N --batch 1,4`: a space's networks swept over batch sizes on this CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli


def test_space_batch_sweep_reports_throughput_and_resumes(capsys: pytest.CaptureFixture[str],
                                                          fast_cpu_config: Path, tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    code, out, err = cli(capsys, "profile", fast_cpu_config, "--space", "nb201", "--n", "2", "--batch", "1,4",
                         "--db", db, "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert (rep["measured_ok"], rep["measured_error"], rep["remaining"]) == (4, 0, 0)  # 2 archs x 2 batches
    assert [r["batch"] for r in rep["batches"]] == [1, 4] and [r["batch"] for r in rep["runs"]] == [1, 4]
    for row in rep["batches"]:
        archs = row["archs"]
        assert row["n"] == len(archs) == 2 and len({a["arch_id"] for a in archs}) == 2
        assert row["median_ms"] == pytest.approx(float(np.median([a["median_ms"] for a in archs])))
        assert row["images_per_s"] == pytest.approx(row["batch"] * 1000 / row["median_ms"])
        for a in archs:
            assert a["per_image_ms"] == pytest.approx(a["median_ms"] / row["batch"])
    # the same sampled networks at each batch
    assert [a["arch_id"] for a in rep["batches"][0]["archs"]] == [a["arch_id"] for a in rep["batches"][1]["archs"]]

    code, out, _ = cli(capsys, "profile", fast_cpu_config, "--space", "nb201", "--n", "2", "--batch", "1,4,2",
                       "--db", db, "--json")
    again = json.loads(out)
    assert code == 0 and (again["already_measured"], again["measured_ok"]) == (4, 2)  # only batch 2 is new

    code, out, err = cli(capsys, "profile", fast_cpu_config, "--space", "nb201", "--n", "2", "--batch", "1,4",
                         "--db", db)
    assert code == 0 and "images/s" in out and "archs" in out and "4 already in the store" in err

    # one batch keeps the plain report (no sweep table)
    code, out, _ = cli(capsys, "profile", fast_cpu_config, "--space", "nb201", "--n", "2", "--batch", "4",
                       "--db", db, "--json")
    assert code == 0 and "batches" not in json.loads(out) and json.loads(out)["already_measured"] == 2


@pytest.mark.parametrize("value", ["0", "a", "", "1,,8", "-1"])
def test_bad_batch_list_exits_2_naming_it(capsys: pytest.CaptureFixture[str], fast_cpu_config: Path,
                                          tmp_path: Path, value: str) -> None:
    code, _, err = cli(capsys, "profile", fast_cpu_config, "--space", "nb201", "--n", "1", f"--batch={value}",
                       "--db", tmp_path / "x.db")
    assert code == 2 and f"--batch {value!r}" in err and "Traceback" not in err


def test_fleet_batch_list_and_missing_n_refused(capsys: pytest.CaptureFixture[str], fast_cpu_config: Path,
                                                tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    code, _, err = cli(capsys, "profile", f"{fast_cpu_config},{fast_cpu_config}", "--space", "nb201", "--n", "1",
                       "--batch", "1,8", "--db", db)
    assert code == 2 and "one device at a time" in err
    code, _, err = cli(capsys, "profile", fast_cpu_config, "--space", "nb201", "--db", db)
    assert code == 2 and "--space needs --n" in err
    code, _, err = cli(capsys, "profile", fast_cpu_config, "--space", "nb201", "--n", "1", "--input-shape", "1x3",
                       "--db", db)
    assert code == 2 and "--input-shape" in err
