"""A user's ONNX file through the job -> agent -> store path on this CPU (real agent, real ONNX Runtime)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from onnx_nets import small_net
from torch import nn

from profiler.config import load_config
from profiler.jobs import ModelTask, build_job
from profiler.onnx_profile import SPACE, profile_onnx
from profiler.session import file_sha256, model_cache_dir
from profiler.store import Store
from spaces import UserInputError
from spaces.onnx_file import parse_input_shapes


def tiny(path: Path, axes: dict[int, str] | None) -> Path:
    return small_net(path, axes, channels=4, size=8, classes=2)


def test_build_job_writes_the_models_own_inputs(fast_cpu_config: Path) -> None:
    config = load_config(fast_cpu_config)
    named = ModelTask("a" * 64, (1, 3, 8, 8), inputs={"images": (1, 3, 8, 8), "mask": (1, 8)}, dtype="float16")
    plain = ModelTask("b" * 64, (1, 3, 32, 32))
    job = build_job(config, [named, plain], batch=4)
    first, second = job["tasks"]
    assert first["inputs"] == {"images": [4, 3, 8, 8], "mask": [4, 8]} and first["dtype"] == "float16"
    assert second["inputs"] == {"input": [4, 3, 32, 32]} and second["dtype"] == "float32"


def test_measured_stored_and_resumed(fast_cpu_config: Path, tmp_path: Path) -> None:
    config = load_config(fast_cpu_config)
    path = tiny(tmp_path / "net.onnx", {0: "batch"})
    with Store(tmp_path / "x.db") as store:
        run = profile_onnx(config, path, [1, 4], store)
        assert (run.report.ok, run.report.errors, run.report.remaining) == (2, [], 0)
        sha = file_sha256(path)  # only the batch is dynamic: the user's own bytes are what is measured
        assert run.model["sha256"] == sha and (model_cache_dir() / f"{sha}.onnx").read_bytes() == path.read_bytes()
        row = store.db.execute("SELECT space, space_config, arch_id, input_shape, flops, mem_access FROM models "
                               "WHERE sha256=?", (sha,)).fetchone()
        assert (row[0], json.loads(row[1]), row[2]) == (SPACE, {"file": "net.onnx", "inputs": {"images": [1, 3, 8, 8]}},
                                                        sha[:16])
        assert json.loads(row[3]) == [1, 3, 8, 8] and row[4] == 8 * 8 * 3 * 4 * 9 + 4 * 2 and row[5] > row[4] / 100
        for r in run.batches:
            assert r["images_per_s"] == pytest.approx(r["batch"] * 1000 / r["median_ms"])
            assert r["per_image_ms"] == pytest.approx(r["median_ms"] / r["batch"]) and r["n"] >= 5
        batches = sorted(b for (b,) in store.db.execute("SELECT batch FROM measurements WHERE model_sha256=?", (sha,)))
        assert batches == [1, 4]

        again = profile_onnx(config, path, [1, 4, 2], store)  # only batch 2 is new
        assert (again.report.already_measured, again.report.ok) == (2, 1)
        assert [r["batch"] for r in again.batches] == [1, 4, 2] and all(r["median_ms"] for r in again.batches)
        assert store.counts()["measurements"] == 3


def test_dynamic_hw_is_pinned_and_addressed_apart(fast_cpu_config: Path, tmp_path: Path) -> None:
    config = load_config(fast_cpu_config)
    path = tiny(tmp_path / "hw.onnx", {0: "batch", 2: "h", 3: "w"})
    with Store(tmp_path / "x.db") as store:
        with pytest.raises(UserInputError, match=r"images.*dynamic dim 2 \(h\)"):
            profile_onnx(config, path, [1], store)
        small = profile_onnx(config, path, [2], store, input_shapes=parse_input_shapes(["images:1x3x8x8"]))
        big = profile_onnx(config, path, [2], store, input_shapes=parse_input_shapes(["1x3x16x16"]))
        assert small.report.ok == big.report.ok == 1
        assert small.model["sha256"] != big.model["sha256"] != file_sha256(path)
        assert small.model["source_sha256"] == big.model["source_sha256"] == file_sha256(path)
        assert big.model["flops"] == 4 * small.model["flops"] - 3 * 4 * 2  # convs grow with H*W, the linear not


def test_fixed_batch_and_torch_backend_refused(fast_cpu_config: Path, tmp_path: Path) -> None:
    config = load_config(fast_cpu_config)
    path = tiny(tmp_path / "b1.onnx", None)
    with Store(tmp_path / "x.db") as store:
        with pytest.raises(UserInputError, match="fixed batch of 1"):
            profile_onnx(config, path, [1, 8], store)
        assert store.counts()["measurements"] == 0  # every batch is checked before anything runs
        torch_cfg = tmp_path / "t.toml"
        torch_cfg.write_text(fast_cpu_config.read_text().replace('"onnxruntime"', '"torch"')
                             .replace("intra_op_threads = 1", ""))
        with pytest.raises(UserInputError, match=r"fast-cpu: its backend 'torch'"):
            profile_onnx(load_config(torch_cfg), path, [1], store)


def test_a_stop_keeps_the_batches_done_and_a_rerun_does_the_rest(fast_cpu_config: Path, tmp_path: Path) -> None:
    config = load_config(fast_cpu_config)
    path = tiny(tmp_path / "net.onnx", {0: "batch"})
    with Store(tmp_path / "x.db") as store:
        stopped = profile_onnx(config, path, [1, 2, 4], store,
                               should_stop=lambda: store.counts()["measurements"] >= 1)  # Ctrl-C's path
        assert stopped.report.interrupted and stopped.report.remaining == 2
        assert [r["median_ms"] is not None for r in stopped.batches] == [True, False, False]
        rest = profile_onnx(config, path, [1, 2, 4], store)
        assert (rest.report.already_measured, rest.report.ok, rest.report.remaining) == (1, 2, 0)


class TwoInputs(nn.Module):
    """Images and token ids (int64): two named inputs of two element types, as a detector or a VLM has."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.embed = nn.Conv2d(3, 4, 3, padding=1), nn.Embedding(10, 4)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.conv(images).mean((2, 3)) + self.embed(ids).mean(1)


def test_several_named_inputs_of_several_types(fast_cpu_config: Path, tmp_path: Path) -> None:
    path = tmp_path / "two.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(TwoInputs().eval(), (torch.zeros(1, 3, 8, 8), torch.zeros(1, 5, dtype=torch.long)),
                          str(path), dynamo=False, opset_version=13, input_names=["images", "ids"],
                          output_names=["out"], dynamic_axes={"images": {0: "b"}, "ids": {0: "b", 1: "tokens"}})
    with Store(tmp_path / "x.db") as store:
        with pytest.raises(UserInputError, match="give each --input-shape as name:shape"):
            profile_onnx(load_config(fast_cpu_config), path, [1], store, input_shapes=parse_input_shapes(["1x5"]))
        run = profile_onnx(load_config(fast_cpu_config), path, [3], store,
                           input_shapes=parse_input_shapes(["ids:1x7"]))
        assert (run.report.ok, run.report.errors) == (1, [])
        assert run.model["inputs"] == {"images": [1, 3, 8, 8], "ids": [1, 7]} and run.model["dtype"] == "float32"
        (fed,) = store.db.execute("SELECT backend_info FROM measurements").fetchone()
        assert "ids" in fed and "int64" in fed  # the agent fed the model's own names and types


def test_a_damaged_copy_on_the_board_is_sent_again(fast_cpu_config: Path, tmp_path: Path) -> None:
    path = tiny(tmp_path / "net.onnx", {0: "batch"})
    on_board = tmp_path / "work" / "models" / f"{file_sha256(path)}.onnx"  # fast_cpu_config's work folder
    on_board.parent.mkdir(parents=True)
    on_board.write_bytes(b"\x08\x07garbage, not the model")
    with Store(tmp_path / "x.db") as store:
        run = profile_onnx(load_config(fast_cpu_config), path, [2], store)
        assert (run.report.models_resent, run.report.ok, run.report.errors) == (1, 1, [])
        assert on_board.read_bytes() == path.read_bytes()
