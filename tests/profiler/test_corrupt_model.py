"""A model file damaged on the board (or in the host's cache) is replaced and measured in the same run; an error
that stays is stored once and the run exits non-zero."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from profiler.config import load_config
from profiler.session import profile
from profiler.store import Store
from spaces import create_space, export_onnx

REPO = Path(__file__).resolve().parents[2]


def test_a_truncated_model_is_resent_and_measured_in_one_run(fast_cpu_config: Path, tmp_path: Path) -> None:
    config = load_config(fast_cpu_config)
    space = create_space("nb201")
    archs = space.sample_unique(3, np.random.default_rng(7))
    with Store(tmp_path / "x.db") as store:
        first = profile(config, space, n=0, seed=0, batch=1, store=store, archs=archs[:2])
        assert (first.ok, first.errors) == (2, [])
        sha = store.rows()[0]["model_sha256"]
        board_copy = tmp_path / "work" / "models" / f"{sha}.onnx"
        good = board_copy.read_bytes()
        with open(board_copy, "r+b") as f:  # the local board's copy is hard-linked to the host cache: both break
            f.truncate(100)

        # measure it again together with a new network: one run, no error left behind
        again = profile(config, space, n=0, seed=0, batch=1, store=store, archs=[archs[0], archs[2]], remeasure=True)
        assert (again.ok, again.errors, again.remaining) == (2, [], 0)
        assert again.models_resent == 1 and again.retry_job_id and again.cache_repaired == 1
        assert board_copy.read_bytes() == good, "the board holds the model again"
        assert (board_copy.parent / f"{sha}.onnx.damaged").stat().st_size == 100, "the damaged file is kept aside"
        rows = store.rows()
        assert [r["status"] for r in rows] == ["ok"] * 4, "the damaged attempt is not stored as a measurement"
        assert sum(r["model_sha256"] == sha for r in rows) == 2

        # nothing lasting: the next run finds the model intact and sends nothing
        third = profile(config, space, n=0, seed=0, batch=1, store=store, archs=[archs[0]], remeasure=True)
        assert (third.ok, third.models_resent, third.cache_repaired) == (1, 0, 0)


def test_a_run_where_every_task_failed_exits_non_zero(fast_cpu_config: Path, tmp_path: Path) -> None:
    failing = tmp_path / "failing.toml"
    failing.write_text(fast_cpu_config.read_text().replace('backend = "onnxruntime"\nintra_op_threads = 1',
                                                           'backend = "debug"\nfail_on = "load"'))
    assert 'fail_on = "load"' in failing.read_text()
    db = tmp_path / "f.db"
    args = [sys.executable, "-m", "edgeprof", "profile", str(failing), "--space", "nb201", "--n", "2", "--db", str(db)]
    r = subprocess.run(args + ["--json"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                       env=os.environ.copy())
    rep = json.loads(r.stdout)
    assert r.returncode == 1, r.stderr
    assert (rep["measured_ok"], rep["measured_error"], rep["remaining"], rep["models_resent"]) == (0, 2, 2, 0)
    assert {e["type"] for e in rep["errors"]} == {"ModelLoadError"}
    again = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 1 and "0 measured" not in again.stderr and "2 failed" in again.stderr, again.stderr


def test_a_model_damaged_before_its_first_measurement(fast_cpu_config: Path, tmp_path: Path) -> None:
    """A garbled file already on the board under the model's name is replaced, not measured as an error."""
    config = load_config(fast_cpu_config)
    space = create_space("nb201")
    archs = space.sample_unique(3, np.random.default_rng(7))
    victim = export_onnx(space, archs[1], tmp_path / "m")
    board_copy = tmp_path / "work" / "models" / f"{victim.sha256}.onnx"
    board_copy.parent.mkdir(parents=True)
    board_copy.write_bytes(b"\x08\x07garbage, not a protobuf")
    with Store(tmp_path / "x.db") as store:
        rep = profile(config, space, n=3, seed=7, batch=1, store=store)
        assert (rep.ok, rep.errors, rep.models_resent, rep.cache_repaired) == (3, [], 1, 0)
        assert len(store.measured_archs("fast-cpu", "nb201", "onnxruntime", "fp32", 1)) == 3
