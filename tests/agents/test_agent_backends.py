import numpy as np
import pytest

from agents.backends import (
    BACKENDS,
    BackendOptionError,
    BackendUnavailable,
    InferenceError,
    ModelLoadError,
)
from agents.backends.base import make_inputs
from agents.backends.debug import DebugBackend


def test_make_inputs_is_deterministic():
    a = make_inputs({"x": [2, 3], "ids": [4]}, {"x": "float32", "ids": "int64"})
    b = make_inputs({"ids": [4], "x": [2, 3]}, {"x": "float32", "ids": "int64"})
    assert a["x"].dtype == np.float32 and a["x"].shape == (2, 3)
    assert a["ids"].dtype == np.int64 and a["ids"].min() >= 0 and a["ids"].max() < 10
    np.testing.assert_array_equal(a["x"], b["x"])
    assert a["x"].flags["C_CONTIGUOUS"]
    assert make_inputs({"m": [5]}, "bool")["m"].dtype == np.bool_
    assert make_inputs({"h": [5]}, "float16")["h"].dtype == np.float16


# ---- debug backend


def test_debug_latency_is_deterministic_and_bounded():
    b = DebugBackend({"latency_ms": 2.0, "jitter": 0.05})
    lat = [b.latency_s(i) * 1e3 for i in range(50)]
    assert lat == [DebugBackend({"latency_ms": 2.0, "jitter": 0.05}).latency_s(i) * 1e3 for i in range(50)]
    assert min(lat) >= 1.9 and max(lat) <= 2.1 and len(set(lat)) > 10


def test_debug_runs_and_fails_on_purpose():
    b = DebugBackend({"latency_ms": 0.0})
    with pytest.raises(InferenceError, match="before load"):
        b.run_once()
    b.load("m.onnx", {"x": [1]})
    b.run_once()
    assert b.info()["calls"] == 1
    with pytest.raises(ModelLoadError, match="fail_on=load"):
        DebugBackend({"fail_on": "load"}).load("m.onnx", {"x": [1]})
    b = DebugBackend({"fail_on": "run", "fail_after": 2, "latency_ms": 0.0}).load("m", {"x": [1]})
    b.run_once()
    b.run_once()
    with pytest.raises(InferenceError, match="run 2"):
        b.run_once()


@pytest.mark.parametrize(
    "options, match",
    [
        ({"latency": 1.0}, "unknown option"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"fail_on": "later"}, "fail_on"),
        ({"fail_after": 1.5}, "fail_after"),
    ],
)
def test_debug_option_errors(options, match):
    with pytest.raises(BackendOptionError, match=match):
        DebugBackend(options)


# ---- onnxruntime backend (in process)


@pytest.fixture
def ort_cls():
    cls = BACKENDS.get("onnxruntime")
    assert cls.available() is None
    return cls


def test_ort_loads_runs_and_reports(ort_cls, models):
    path, _ = models["conv"]
    with ort_cls({"intra_op_threads": 1, "graph_optimization_level": "basic"}) as b:
        b.load(str(path), {"input": [1, 3, 16, 16]})
        b.run_once()
        info = b.info()
    assert info["providers"][-1] == "CPUExecutionProvider"
    assert info["intra_op_threads"] == 1 and info["graph_optimization_level"] == "basic"
    assert info["inputs"]["input"]["shape"] == [1, 3, 16, 16]
    assert info["outputs"] == ["out"]
    assert info["onnxruntime"] == ort_cls.versions()["onnxruntime"]


def test_ort_dynamic_batch(ort_cls, models):
    path, _ = models["conv_dyn"]
    b = ort_cls().load(str(path), {"input": [4, 3, 16, 16]})
    b.run_once()
    assert b.info()["inputs"]["input"]["shape"][0] == "N"


def test_ort_model_errors_name_the_path_and_inputs(ort_cls, models, tmp_path):
    conv, _ = models["conv"]
    with pytest.raises(ModelLoadError, match="model file not found: .*nope.onnx"):
        ort_cls().load(str(tmp_path / "nope.onnx"), {"input": [1, 3, 16, 16]})
    with pytest.raises(ModelLoadError, match="cannot load model .*corrupt.onnx"):
        ort_cls().load(str(models["corrupt"][0]), {"input": [1, 3, 16, 16]})
    with pytest.raises(ModelLoadError, match=r"the model expects input \[1, 3, 16, 16\] tensor\(float\)"):
        ort_cls().load(str(conv), {"image": [1, 3, 16, 16]})
    with pytest.raises(ModelLoadError, match=r"input input: shape \[1, 3, 32, 32\] does not match"):
        ort_cls().load(str(conv), {"input": [1, 3, 32, 32]})
    with pytest.raises(ModelLoadError, match="expects float32 but the task's dtype is float16"):
        ort_cls().load(str(conv), {"input": [1, 3, 16, 16]}, dtype="float16", precision="fp16")


def test_ort_option_and_availability_errors(ort_cls, models):
    conv, _ = models["conv"]
    with pytest.raises(BackendOptionError, match="unknown option"):
        ort_cls({"threads": 2})
    with pytest.raises(BackendOptionError, match="graph_optimization_level"):
        ort_cls({"graph_optimization_level": "max"})
    with pytest.raises(BackendOptionError, match="intra_op_threads"):
        ort_cls({"intra_op_threads": -1})
    with pytest.raises(BackendOptionError, match="providers"):
        ort_cls({"providers": "CPUExecutionProvider"})
    assert ort_cls({"execution_mode": "ORT_PARALLEL"}).execution_mode == "parallel"
    with pytest.raises(BackendUnavailable, match="NoSuchExecutionProvider is not available"):
        ort_cls({"providers": ["NoSuchExecutionProvider"]}).load(str(conv), {"input": [1, 3, 16, 16]})
    with pytest.raises(BackendUnavailable, match="precision 'int8'"):
        ort_cls().load(str(conv), {"input": [1, 3, 16, 16]}, precision="int8")


def test_ort_provider_with_options(ort_cls, models):
    conv, _ = models["conv"]
    b = ort_cls({"providers": [["CPUExecutionProvider", {}]]}).load(str(conv), {"input": [1, 3, 16, 16]})
    b.run_once()
    assert b.info()["providers_requested"] == [["CPUExecutionProvider", {}]]
