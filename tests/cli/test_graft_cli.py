"""`edgeprof graft train` (grafted networks on the digits proxy into the accuracy table: resumable, progress off
under --json, Ctrl-C keeps what is stored, bad input exit 2) and `edgeprof graft merge` (the merged network
exported as ONNX that ONNX Runtime runs like the torch merged network; weights of another mask refused)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import cli

from profiler.accuracy import accuracies
from profiler.store import Store

SPACE = "mobilenetv2-small"
TINY = ("--data", "digits", "--digits-n", "120", "--resolution", "32", "--epochs", "1")
MASK = "01101111000011110"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(capsys: pytest.CaptureFixture[str], db: Path, *extra: object) -> tuple[int, str, str]:
    return cli(capsys, "graft", "train", "--space", SPACE, *TINY, "--task", "t", "--db", db, *extra)


def test_train_stores_resumes_and_shows_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "lab.db"
    code, out, err = train(capsys, db, "--n", "2", "--seed", "4", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert (len(res["trained"]), res["skipped"], res["interrupted"]) == (2, 0, False)
    assert res["recipe"]["weight_decay"] == 4e-5 and res["recipe"]["momentum"] == 0.9
    assert "training" not in err  # no progress under --json
    with Store(db, readonly=True) as store:
        got = accuracies(store, SPACE, "t", source="edgeprof-proxy")
    assert got == {r["arch_id"]: pytest.approx(r["accuracy"]) for r in res["trained"]}
    code, out, err = train(capsys, db, "--n", "3", "--seed", "4")  # one more; progress lines on stderr
    assert code == 0, err
    assert out == "" and f"training {SPACE} on t: 1/1" in err and "trained 1, skipped 2" in err, err
    code, out, err = train(capsys, db, "--n", "3", "--seed", "4", "-q")
    assert code == 0 and "training" not in err.split("\n")[0] and "trained 0, skipped 3" in err, err
    code, _, err = cli(capsys, "graft", "train", "--space", SPACE, *TINY[:-1], "2", "--task", "t", "--db", db,
                       "--n", "3")
    assert code == 2 and "another recipe (epochs 1 there, 2 here" in err, err


def test_train_refuses_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "lab.db"
    for extra, words in ((("--n", "0"), "--n must be >= 1"),
                         (("--masks", "0110"), "17"),
                         (("--n", "2", "--masks", MASK), "one of them"),
                         (("--n", "2", "--data", tmp_path / "nowhere"), "nowhere: no such folder")):
        code, _, err = train(capsys, db, *extra)
        assert code == 2 and words in err, (extra, err)
    code, _, err = cli(capsys, "graft", "train", "--space", "mobilenetv9", "--n", "1", "--task", "t", "--db", db)
    assert code == 2 and "mobilenetv9" in err, err
    code, out, _ = train(capsys, db, "--n", "0", "--json")
    assert code == 2 and json.loads(out)["error"]["exit_code"] == 2


def test_ctrl_c_keeps_the_finished_networks(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from profiler import proxy_accuracy as pa

    real, calls = pa.train_network, []

    def stop_after_one(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pa, "train_network", stop_after_one)
    db = tmp_path / "lab.db"
    code, _, err = train(capsys, db, "--n", "3")
    assert code == 130 and "trained 1" in err and "interrupted: 2 left, rerun to finish" in err, err
    with Store(db, readonly=True) as store:
        assert len(accuracies(store, SPACE, "t")) == 1
    code, out, _ = train(capsys, db, "--n", "3", "--json")
    assert code == 130 and json.loads(out)["interrupted"] is True


def test_merge_exports_what_onnxruntime_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import onnxruntime as ort

    from profiler.proxy_accuracy import merge_checked
    from spaces import create_space

    db, wdir = tmp_path / "lab.db", tmp_path / "w"
    code, _, err = train(capsys, db, "--masks", MASK, "--save-weights", wdir, "-q")
    assert code == 0, err
    weights = wdir / f"{SPACE}-{MASK}.pt"
    assert weights.is_file()
    out = tmp_path / "merged.onnx"
    code, stdout, err = cli(capsys, "graft", "merge", "--space", SPACE, "--mask", MASK, "--weights", weights,
                            "--out", out, "--json")
    assert code == 0, err
    res = json.loads(stdout)
    assert res["max_rel_error"] <= 1e-4 and res["convs_merged"] < res["convs_grafted"]
    assert res["arch_id"] == MASK and Path(res["out"]) == out
    space = create_space(SPACE)
    merged, _ = merge_checked(space, space.parse(MASK), weights)
    x = torch.randn(2, *space.input_shape()[1:], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = merged(x).numpy()
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["edgeprof.arch_id"] == MASK and meta["edgeprof.merged"] == "1" and meta["edgeprof.space"] == SPACE
    code, _, err = cli(capsys, "graft", "merge", "--space", SPACE, "--mask", MASK, "--out", out)
    assert code == 0 and "convs grafted ->" in err and "max relative error" in err and "wrote" in err, err
    # the weights of another mask: refused, naming it; nothing written
    other = "1" * 17
    code, _, err = cli(capsys, "graft", "merge", "--space", SPACE, "--mask", other, "--weights", weights,
                       "--out", tmp_path / "o.onnx")
    assert code == 2 and f"saved for mask {MASK}" in err, err
    neutral = tmp_path / "w.pt"
    neutral.write_bytes(weights.read_bytes())
    code, _, err = cli(capsys, "graft", "merge", "--space", SPACE, "--mask", other, "--weights", neutral,
                       "--out", tmp_path / "o.onnx")
    assert code == 2 and "does not fit" in err and "unexpected" in err, err
    code, _, err = cli(capsys, "graft", "merge", "--space", "nb201", "--mask", MASK, "--out", tmp_path / "o.onnx")
    assert code == 2, err
    assert not (tmp_path / "o.onnx").exists()
