"""agents.layers: one per-layer schema for TensorRT, ONNX Runtime and torch records."""

import pytest

from agents.layers import group_by_op_type, guess_op_type, normalise, total_ms


@pytest.mark.parametrize(
    "name, op_type",
    [
        ("Conv_0 + Relu_1", "Conv+Relu"),
        ("/cells.0/edges.1/op/Conv", "Conv"),
        ("/stem/stem.0/Conv + /stem/stem.2/Relu", "Conv+Relu"),
        ("PWN(Relu_3)", "PWN(Relu)"),
        ("node_5", "node"),
        (
            "Reformatting CopyNode for Input Tensor 0 to Conv_0",
            "Reformatting CopyNode for Input Tensor 0 to Conv",
        ),
        ("", "?"),
    ],
)
def test_guess_op_type(name, op_type):
    assert guess_op_type(name) == op_type


def test_normalise_trt_ort_and_torch_records():
    trt = [
        {"name": "Conv_0 + Relu_1", "op_type": None, "time_ms": 0.3, "calls": 1.0},
        {"name": "Gemm_4", "op_type": "CaskGemm", "time_ms": 0.1, "calls": 1.0},
    ]
    out = normalise(trt)
    assert out == [
        {
            "name": "Conv_0 + Relu_1",
            "op_type": "Conv+Relu",
            "time_ms": 0.3,
            "calls": 1,
            "share": pytest.approx(0.75),
        },
        {"name": "Gemm_4", "op_type": "CaskGemm", "time_ms": 0.1, "calls": 1, "share": pytest.approx(0.25)},
    ]
    ort = [
        {"name": "conv", "op_type": "Conv", "provider": "CUDAExecutionProvider", "time_ms": 0.5, "calls": 1.0}
    ]
    assert normalise(ort)[0]["provider"] == "CUDAExecutionProvider" and normalise(ort)[0]["share"] == 1.0
    torch = [{"name": "stem.0", "op_type": "Conv2d", "time_ms": 0.2, "calls": 0.5}]
    assert normalise(torch)[0]["calls"] == 0.5


def test_normalise_merges_names_and_handles_zero_and_none():
    out = normalise(
        [{"name": "a", "time_ms": 1.0}, {"name": "b", "time_ms": 0.0}, {"name": "a", "time_ms": 1.0}]
    )
    assert [(r["name"], r["time_ms"], r["calls"]) for r in out] == [("a", 2.0, 2), ("b", 0.0, 1)]
    zero = normalise([{"name": "a", "time_ms": 0.0}])
    assert zero[0]["share"] == 0.0
    assert normalise(None) is None and normalise([]) == []
    for bad in (
        [{"time_ms": 1.0}],
        [{"name": "a", "time_ms": -1}],
        [{"name": "a", "time_ms": float("nan")}],
        [{"name": "a", "time_ms": True}],
        ["a"],
    ):
        with pytest.raises(ValueError):
            normalise(bad)


def test_group_by_op_type():
    records = [
        {"name": "c1", "op_type": "Conv", "time_ms": 1.0, "calls": 1},
        {"name": "r1", "op_type": "Relu", "time_ms": 0.5, "calls": 1},
        {"name": "c2", "op_type": "Conv", "time_ms": 2.0, "calls": 1},
    ]
    groups = group_by_op_type(records)
    assert [(g["op_type"], g["time_ms"], g["layers"]) for g in groups] == [("Conv", 3.0, 2), ("Relu", 0.5, 1)]
    assert sum(g["share"] for g in groups) == pytest.approx(1.0)
    assert total_ms(records) == 3.5 and total_ms(None) == 0
    assert group_by_op_type(None) == []
