"""A user's ONNX file: inputs, --input-shape, shapes per batch, costs against the spaces' own counts, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx_nets import small_net

from spaces import UserInputError, create_space
from spaces.costs import conv_costs, linear_costs
from spaces.export import export_onnx
from spaces.onnx_file import model_inputs, onnx_costs, parse_input_shapes, read_model, resolve_shapes


def test_inputs_and_shapes_per_batch(tmp_path: Path) -> None:
    model = read_model(small_net(tmp_path / "m.onnx", {0: "batch"}))
    (inp,) = model_inputs(model)  # the weights the exporter lists are not inputs
    assert (inp.name, inp.dims, inp.dtype) == ("images", ("batch", 3, 16, 16), "float32")
    assert resolve_shapes([inp], {}, 8) == {"images": [8, 3, 16, 16]}
    assert resolve_shapes([inp], parse_input_shapes(["1x3x16x16"]), 32) == {"images": [32, 3, 16, 16]}
    with pytest.raises(UserInputError, match=r"images.*fixes it at 16"):
        resolve_shapes([inp], parse_input_shapes(["images:1x3x32x32"]), 1)
    with pytest.raises(UserInputError, match="lacks"):
        resolve_shapes([inp], parse_input_shapes(["pixels:1x3x16x16"]), 1)


def test_dynamic_hw_needs_input_shape_and_fixed_batch_refuses_others(tmp_path: Path) -> None:
    (hw,) = model_inputs(read_model(small_net(tmp_path / "hw.onnx", {0: "batch", 2: "height", 3: "width"})))
    with pytest.raises(UserInputError, match=r"images.*dynamic dim 2 \(height\).*--input-shape"):
        resolve_shapes([hw], {}, 1)
    assert resolve_shapes([hw], parse_input_shapes(["images:1x3x24x20"]), 4) == {"images": [4, 3, 24, 20]}
    (fixed,) = model_inputs(read_model(small_net(tmp_path / "b1.onnx", None)))
    assert resolve_shapes([fixed], {}, 1) == {"images": [1, 3, 16, 16]}
    with pytest.raises(UserInputError, match=r"images.*fixed batch of 1.*dynamic batch axis"):
        resolve_shapes([fixed], {}, 8)


@pytest.mark.parametrize("spec", ["", "1x3x", "0x3", "a:1xbx2", "1,3"])
def test_bad_input_shape_values(spec: str) -> None:
    with pytest.raises(UserInputError, match="--input-shape"):
        parse_input_shapes([spec])
    with pytest.raises(UserInputError, match="one shape per input"):
        parse_input_shapes(["1x3", "x:1x3"])


def test_costs_of_a_small_net_by_hand(tmp_path: Path) -> None:
    model = read_model(small_net(tmp_path / "m.onnx", {0: "batch"}, depthwise=True))
    c = onnx_costs(model, {"images": [8, 3, 16, 16]})  # counted at batch 1 whatever the batch given
    parts = [conv_costs((3, 16, 16), (8, 16, 16), (3, 3)), conv_costs((8, 16, 16), (8, 16, 16), (3, 3), groups=8),
             linear_costs(8, 4)]
    assert [lay["op_type"] for lay in c["layers"]] == ["Conv", "Conv", "Gemm"]
    assert c["flops"] == sum(p[0] for p in parts) and c["mem_access"] == sum(p[1] for p in parts)
    assert c["intensity"] == pytest.approx(c["flops"] / c["mem_access"])
    assert c["params"] == (3 * 8 * 9 + 8) + (8 * 9 + 8) + (8 * 4 + 4) and c["uncounted"] == []


@pytest.mark.parametrize("space_name", ["nb201", "mbconv-small", "fbnet"])
def test_costs_equal_the_space_counts(space_name: str, tmp_path: Path) -> None:
    """The exported graph holds the same convs and linears the space counts with hooks, so FLOPs and memory
    accesses agree exactly; params do not: the exporter folds each batch norm into its conv (a bias of C
    replaces a scale and shift of 2C). FBNet's channel shuffle defeats ONNX shape inference: the shapes after
    it come from one ONNX Runtime run."""
    space = create_space(space_name)
    for arch in space.sample_unique(2, np.random.default_rng(1)):
        model = read_model(export_onnx(space, arch, tmp_path).path)
        c = onnx_costs(model, resolve_shapes(model_inputs(model), {}, 1))
        ref = space.costs(arch)
        assert (c["flops"], c["mem_access"]) == (ref["flops"], ref["mem_access"])
        assert c["params"] < ref["params"] and c["uncounted"] == []


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="missing.onnx: no such ONNX file"):
        read_model(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01 this is not a model \xff" * 10)
    with pytest.raises(UserInputError, match="junk.onnx: not an ONNX model"):
        read_model(junk)
    model = onnx.load(str(small_net(tmp_path / "m.onnx", {0: "batch"})))
    ext = tmp_path / "ext" / "big.onnx"
    ext.parent.mkdir()
    onnx.save(model, str(ext), save_as_external_data=True, all_tensors_to_one_file=True, location="big.data",
              size_threshold=0)
    with pytest.raises(UserInputError, match="big.onnx: keeps .* external data"):
        read_model(ext)
