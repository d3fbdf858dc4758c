"""ONNX Runtime: the layer profile on a real CPU run, GPU providers and IO binding with a fake onnxruntime."""

import json
import os
import sys
import tempfile

import numpy as np
import pytest
from fakes.fake_ort import make_ort

from agents.backends import BackendOptionError, BackendUnavailable, ModelLoadError
from agents.backends.onnxruntime import OnnxRuntimeBackend
from agents.backends.onnxruntime_profile import parse_profile
from agents.layers import group_by_op_type, normalise

CUDA = "CUDAExecutionProvider"
TRT = "TensorrtExecutionProvider"
CPU = "CPUExecutionProvider"


@pytest.fixture(scope="module")
def named_model(tmp_path_factory):
    """conv -> relu -> pool -> flatten -> fc, with node names, on 1x3x16x16."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)

    def init(name, shape):
        return helper.make_tensor(
            name, TensorProto.FLOAT, shape, rng.standard_normal(int(np.prod(shape))).astype(np.float32)
        )

    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
            helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
            helper.make_node("Gemm", ["f", "FC", "B"], ["out"], name="fc"),
        ],
        "named",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 10])],
        initializer=[init("W", [16, 3, 3, 3]), init("FC", [16, 10]), init("B", [10])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    path = tmp_path_factory.mktemp("ort") / "named.onnx"
    path.write_bytes(model.SerializeToString())
    return str(path)


# ---- real CPU runs


def test_layer_profile_on_a_real_cpu_run(named_model, monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    b = OnnxRuntimeBackend({"graph_optimization_level": "disable_all", "intra_op_threads": 1})
    b.load(named_model, {"input": [2, 3, 16, 16]})
    for _ in range(3):
        b.run_once()
    layers = b.layer_profile(5)
    assert [r["name"] for r in layers] == ["conv", "relu", "pool", "flatten", "fc"]
    assert [r["op_type"] for r in layers] == ["Conv", "Relu", "GlobalAveragePool", "Flatten", "Gemm"]
    assert all(r["provider"] == CPU and r["calls"] == 1 and r["time_ms"] >= 0 for r in layers)
    assert sum(r["time_ms"] for r in layers) > 0
    norm = normalise(layers)
    assert sum(r["share"] for r in norm) == pytest.approx(1.0) and norm[0]["provider"] == CPU
    assert {g["op_type"] for g in group_by_op_type(layers)} == {
        "Conv",
        "Relu",
        "GlobalAveragePool",
        "Flatten",
        "Gemm",
    }
    b.run_once()  # the timed session is untouched by profiling
    assert b.info()["io_binding"] is False and b.info()["timed_copies"] is True
    assert os.listdir(str(tmp_path)) == []  # the profile's temporary folder is removed


def test_io_binding_on_the_cpu_for_real(models):
    b = OnnxRuntimeBackend({"io_binding": True}).load(str(models["conv_dyn"][0]), {"input": [2, 3, 16, 16]})
    b.run_once()
    assert b.info()["io_binding"] is True and b.info()["timed_copies"] is True
    assert b._io.copy_outputs_to_cpu()[0].shape == (2, 8, 16, 16)
    assert len(b.layer_profile(2)) >= 1


def test_layer_profile_with_ort_optimisations_names_fused_nodes(models):
    b = OnnxRuntimeBackend({"intra_op_threads": 1}).load(str(models["conv"][0]), {"input": [1, 3, 16, 16]})
    layers = b.layer_profile(3)
    assert layers and all(r["name"] and r["op_type"] and r["calls"] >= 1 for r in layers)
    assert any(r["op_type"] == "Conv" for r in layers)  # Conv+Relu fused into one Conv node by ORT


def test_parse_profile_windows_and_warmup():
    def node(name, ts, dur, op="Conv"):
        return {
            "cat": "Node",
            "name": name + "_kernel_time",
            "ts": ts,
            "dur": dur,
            "ph": "X",
            "args": {"op_name": op, "provider": CUDA},
        }

    events = [
        {"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 50},
        {"cat": "Session", "name": "model_run", "ts": 100, "dur": 50},
        node("a", 101, 40),  # warm-up run: slow, dropped
        {"cat": "Node", "name": "a_fence_before", "ts": 101, "dur": 0, "args": {"op_name": "Conv"}},
        node("b", 142, 5, "Relu"),
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 50},
        node("a", 201, 10),
        node("b", 212, 2, "Relu"),
        {"cat": "Session", "name": "model_run", "ts": 300, "dur": 50},
        node("a", 301, 12),
        node("b", 314, 4, "Relu"),
        node("late", 400, 99),  # outside every run window
    ]
    records, n = parse_profile(events, skip_runs=1)
    assert n == 2
    assert records == [
        {"name": "a", "op_type": "Conv", "provider": CUDA, "time_ms": pytest.approx(0.011), "calls": 1.0},
        {"name": "b", "op_type": "Relu", "provider": CUDA, "time_ms": pytest.approx(0.003), "calls": 1.0},
    ]
    # no model_run events: every node's first skip_runs calls are dropped
    plain = [e for e in events if e.get("name") != "model_run" and not e["name"].startswith("late")]
    records, n = parse_profile(plain, skip_runs=1)
    assert n == 2 and records[0]["time_ms"] == pytest.approx(0.011)
    assert parse_profile({"traceEvents": events}, 1)[1] == 2


# ---- GPU providers, with a fake onnxruntime


@pytest.fixture
def fake_ort(monkeypatch):

    def install(**kw):
        ort = make_ort(**kw)
        monkeypatch.setitem(sys.modules, "onnxruntime", ort)
        return ort

    return install


def names(ort, kind):
    return [c[1:] for c in ort.calls if c[0] == kind]


def test_cuda_provider_options_and_io_binding(fake_ort, named_model):
    ort = fake_ort()
    b = OnnxRuntimeBackend(
        {"providers": [CUDA, CPU], "device_id": 1, "cudnn_conv_algo_search": "heuristic"}
    ).load(named_model, {"input": [4, 3, 16, 16]})
    ((providers, profiling),) = names(ort, "InferenceSession")
    assert (
        providers == [(CUDA, {"device_id": 1, "cudnn_conv_algo_search": "HEURISTIC"}), CPU] and not profiling
    )
    # inputs copied to the device once, outputs bound to the device
    assert names(ort, "ortvalue_from_numpy") == [("cuda", 1, (4, 3, 16, 16))]
    assert names(ort, "bind_ortvalue_input") == [("input", "cuda", 1)]
    assert names(ort, "bind_output") == [("out", "cuda", 1)]
    assert len(names(ort, "run_with_iobinding")) == 1  # the untimed first run in load()
    del ort.calls[:]
    b.run_once()
    assert [c[0] for c in ort.calls] == ["run_with_iobinding", "synchronize_outputs"]
    info = b.info()
    assert info["io_binding"] is True and info["timed_copies"] is False and info["first_run_s"] >= 0
    assert info["providers"] == [CUDA, CPU] and info["device_id"] == 1
    assert info["provider_options"][CUDA] == {"device_id": "1", "cudnn_conv_algo_search": "HEURISTIC"}
    assert json.dumps(info)


def test_tensorrt_provider_fp16_and_engine_cache(fake_ort, named_model, tmp_path):
    ort = fake_ort()
    job = tmp_path / "work" / "jobs" / "j1"
    b = OnnxRuntimeBackend(
        {
            "providers": [TRT, [CUDA, {"arena_extend_strategy": "kSameAsRequested"}], CPU],
            "trt_engine_cache_enable": True,
            "trt_max_workspace_size": 1 << 30,
        }
    ).set_job_dir(str(job))
    b.load(named_model, {"input": [1, 3, 16, 16]}, precision="fp16")  # float32 inputs, fp16 inside TRT
    ((providers, _),) = names(ort, "InferenceSession")
    cache = str(tmp_path / "work" / "engines" / "ort-tensorrt")
    assert providers[0] == (
        TRT,
        {
            "device_id": 0,
            "trt_engine_cache_enable": True,
            "trt_max_workspace_size": 1 << 30,
            "trt_fp16_enable": True,
            "trt_engine_cache_path": cache,
        },
    )
    assert providers[1] == (CUDA, {"device_id": 0, "arena_extend_strategy": "kSameAsRequested"})
    assert os.path.isdir(cache)
    assert b.info()["precision"] == "fp16"


def test_int8_on_the_tensorrt_provider_needs_a_table(fake_ort, named_model):
    ort = fake_ort()
    with pytest.raises(ModelLoadError, match="trt_int8_calibration_table_name"):
        OnnxRuntimeBackend({"providers": [TRT, CPU]}).load(
            named_model, {"input": [1, 3, 16, 16]}, precision="int8"
        )
    b = OnnxRuntimeBackend({"providers": [TRT, CPU], "trt_int8_calibration_table_name": "calib.flatbuffers"})
    b.load(named_model, {"input": [1, 3, 16, 16]}, precision="int8")
    ((providers, _),) = names(ort, "InferenceSession")
    assert providers[0][1]["trt_int8_enable"] is True
    with pytest.raises(BackendUnavailable, match="precision 'fp16' needs"):
        OnnxRuntimeBackend({"providers": [CUDA]}).load(
            named_model, {"input": [1, 3, 16, 16]}, precision="fp16"
        )


def test_gpu_provider_missing_or_dropped(fake_ort, named_model):
    fake_ort(available=(CPU,))
    with pytest.raises(
        BackendUnavailable, match="CUDAExecutionProvider is not available .available: CPUExecutionProvider"
    ):
        OnnxRuntimeBackend({"providers": [CUDA, CPU]}).load(named_model, {"input": [1, 3, 16, 16]})
    fake_ort(drops=(CUDA,))
    with pytest.raises(
        BackendUnavailable, match="did not use CUDAExecutionProvider .* runs on CPUExecutionProvider"
    ):
        OnnxRuntimeBackend({"providers": [CUDA, CPU]}).load(named_model, {"input": [1, 3, 16, 16]})


def test_io_binding_off_times_the_copies(fake_ort, named_model):
    ort = fake_ort()
    b = OnnxRuntimeBackend({"providers": [CUDA, CPU], "io_binding": False}).load(
        named_model, {"input": [1, 3, 16, 16]}
    )
    del ort.calls[:]
    b.run_once()
    assert [c[0] for c in ort.calls] == ["run"] and b.info()["timed_copies"] is True


def test_gpu_layer_profile_uses_a_separate_profiling_session(fake_ort, named_model):
    ort = fake_ort()
    b = OnnxRuntimeBackend({"providers": [CUDA, CPU]}).load(named_model, {"input": [1, 3, 16, 16]})
    b.run_once()
    layers = b.layer_profile(4)
    sessions = names(ort, "InferenceSession")
    assert [s[1] for s in sessions] == [False, True]  # the timed session never profiles
    assert [r["name"] for r in layers] == ["conv", "relu", "pool", "flatten", "fc"]
    assert all(
        r["provider"] == CUDA and r["calls"] == 1 and r["time_ms"] == pytest.approx(0.001) for r in layers
    )
    # the profiling session also used IO binding (5 runs: 1 warm-up + 4)
    assert len(names(ort, "run_with_iobinding")) == 1 + 1 + 5
    path = names(ort, "end_profiling")[0][0]
    assert not os.path.exists(path)  # the temporary profile is removed


@pytest.mark.parametrize(
    "options, match",
    [
        ({"trt_fp16_enable": True}, "apply to TensorrtExecutionProvider, which is not in providers"),
        ({"cudnn_conv_algo_search": "fastest", "providers": [CUDA]}, "cudnn_conv_algo_search"),
        ({"io_binding": "yes"}, "io_binding"),
        ({"device_id": -1}, "device_id"),
        ({"trt_engine_cache_path": ["a"], "providers": [TRT]}, "trt_engine_cache_path"),
    ],
)
def test_gpu_option_errors(options, match):
    with pytest.raises(BackendOptionError, match=match):
        OnnxRuntimeBackend(options)
