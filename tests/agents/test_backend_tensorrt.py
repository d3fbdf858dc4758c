"""TensorRT backend against fake tensorrt 7.2 / 8.0 / 8.2 / 8.6 / 10.3 and fake pycuda / cuda-python."""

import json
import os

import numpy as np
import pytest
from fakes.gpu import GPU
from fakes.install import install_cuda, install_trt

from agents.backends import BACKENDS, BackendOptionError, BackendUnavailable, ModelLoadError
from agents.backends.tensorrt import (
    TensorRTBackend,
    engine_key,
    tensorrt_missing_reason,
)
from agents.layers import normalise

VERSIONS = {
    # version: (build call, workspace API, execute call, io API, inspector op types)
    "7.2.3": ("build_engine", "max_workspace_size", "execute_async_v2", "bindings", False),
    "8.0.1": ("build_serialized_network", "max_workspace_size", "execute_async_v2", "bindings", False),
    "8.2.1": ("build_serialized_network", "max_workspace_size", "execute_async_v2", "bindings", True),
    "8.6.1": ("build_serialized_network", "set_memory_pool_limit", "execute_async_v3", "tensors", True),
    "10.3.0": ("build_serialized_network", "set_memory_pool_limit", "execute_async_v3", "tensors", True),
}
DYN = {"input": [2, 3, 16, 16]}


@pytest.fixture
def conv_dyn(models):
    return str(models["conv_dyn"][0])


def backend(tmp_path, **options):
    options.setdefault("engine_cache_dir", str(tmp_path / "engines"))
    return TensorRTBackend(options)


def calls(trt, kind):
    return [c[1] for c in trt.calls if c[0] == kind]


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_dispatch_picks_the_api_of_each_version(monkeypatch, tmp_path, conv_dyn, version):
    build, workspace, execute, io, _ = VERSIONS[version]
    trt = install_trt(monkeypatch, version)
    b = backend(tmp_path, workspace_mb=64).load(conv_dyn, DYN)
    assert calls(trt, "build") == [build]
    if workspace == "max_workspace_size":
        assert calls(trt, "max_workspace_size") == [64 << 20] and not calls(trt, "set_memory_pool_limit")
    else:
        assert calls(trt, "set_memory_pool_limit") == ["MemoryPoolType.WORKSPACE"]
        assert not calls(trt, "max_workspace_size")
    assert calls(trt, "create_network") == [1]  # EXPLICIT_BATCH (TRT 10 ignores it)
    info = b.info()
    assert info["api"] == {"io": io, "execute": execute}
    assert info["build"]["build"] == build and info["build"]["workspace"] == workspace
    assert info["build"]["optimization_profile"] == {"input": [2, 3, 16, 16]}  # min = opt = max
    assert info["inputs"] == {"input": [2, 3, 16, 16]} and info["outputs"] == {"out": [2, 8, 16, 16]}
    assert info["tensorrt"] == version and info["cuda_api"] == "pycuda" and GPU.context == "primary"

    del GPU.calls[:]
    b.run_once()
    assert calls(trt, "execute") == [execute]
    # end to end: H2D, event, execute, event, D2H, synchronize, all on the stream
    assert [c for c in GPU.names() if c != "free"] == [
        "htod",
        "event_record",
        "event_record",
        "dtoh",
        "stream_synchronize",
    ]
    x = b._exec.tensors[0]["host"]
    out = b.outputs()["out"]
    assert out.shape == (2, 8, 16, 16) and np.allclose(out, x.mean(dtype=np.float64), atol=1e-5)
    b.close()


@pytest.mark.parametrize("version", ["8.2.1", "10.3.0"])
def test_device_time_is_the_execute_only(monkeypatch, tmp_path, conv_dyn, version):
    install_trt(monkeypatch, version)
    b = backend(tmp_path).load(conv_dyn, DYN)
    assert b.device_time_ms() is None  # no run yet
    before = GPU.clock_ms
    b.run_once()
    e2e_device = GPU.clock_ms - before  # copies + compute on the fake device clock
    dev = b.device_time_ms()
    assert dev == pytest.approx(0.1)  # one fused layer (Conv + Relu), 0.1 ms in the fake
    assert e2e_device > dev  # the copies are outside the events
    assert b.device_time_ms() == dev  # reading it twice is harmless


def test_engine_cache_hit_miss_and_default_folder(monkeypatch, tmp_path, conv_dyn):
    trt = install_trt(monkeypatch, "8.6.1")
    first = backend(tmp_path).load(conv_dyn, DYN)
    assert first.info()["engine_cached"] is False and first.info()["build_s"] >= 0
    path = first.info()["engine_path"]
    assert os.path.isfile(path) and path.startswith(str(tmp_path / "engines"))
    with open(path[: -len(".engine")] + ".json") as f:
        meta = json.load(f)
    assert meta["precision"] == "fp32" and meta["gpu"].startswith("Fake GPU") and meta["tensorrt"] == "8.6.1"
    assert meta["inputs"] == {"input": [2, 3, 16, 16]}

    second = backend(tmp_path).load(conv_dyn, DYN)
    assert calls(trt, "build") == ["build_serialized_network"]  # the second load did not build
    assert second.info()["engine_cached"] is True and second.info()["build_s"] is None
    second.run_once()

    backend(tmp_path).load(conv_dyn, {"input": [4, 3, 16, 16]})  # another shape: another engine
    backend(tmp_path).load(conv_dyn, DYN, precision="fp16")  # another precision: another engine
    assert len(calls(trt, "build")) == 3
    assert len([f for f in os.listdir(str(tmp_path / "engines")) if f.endswith(".engine")]) == 3

    # a new TensorRT version does not reuse the old engines
    trt10 = install_trt(monkeypatch, "10.3.0")
    backend(tmp_path).load(conv_dyn, DYN)
    assert calls(trt10, "build") == ["build_serialized_network"]

    # default folder: <job folder>/../../engines
    job_dir = tmp_path / "work" / "jobs" / "j1"
    b = TensorRTBackend().set_job_dir(str(job_dir)).load(conv_dyn, DYN)
    assert os.path.dirname(b.info()["engine_path"]) == str(tmp_path / "work" / "engines")

    # caching off: builds every time and writes nothing
    off = TensorRTBackend({"engine_cache": False}).set_job_dir(str(tmp_path / "w2" / "jobs" / "j"))
    off.load(conv_dyn, DYN)
    assert "engine_path" not in off.info() and not (tmp_path / "w2").exists()


def test_a_corrupt_cached_engine_is_rebuilt(monkeypatch, tmp_path, conv_dyn):
    trt = install_trt(monkeypatch, "8.2.1")
    path = backend(tmp_path).load(conv_dyn, DYN).info()["engine_path"]
    with open(path, "wb") as f:
        f.write(b"garbage")
    b = backend(tmp_path).load(conv_dyn, DYN)
    assert len(calls(trt, "build")) == 2 and b.info()["engine_cached"] is False
    assert any("could not be deserialized" in w for w in b.info()["warnings"])
    b.run_once()


def test_engine_key_fields():
    fields, digest = engine_key("ab" * 32, "8.6.1", "fp16", "Orin (sm_87)", {"x": [1, 3, 8, 8]}, None, None)
    assert fields["model_sha256"] == "ab" * 32 and fields["gpu"] == "Orin (sm_87)"
    for change in (
        ("cd" * 32, "8.6.1", "fp16", "Orin (sm_87)", {"x": [1, 3, 8, 8]}),
        ("ab" * 32, "10.3.0", "fp16", "Orin (sm_87)", {"x": [1, 3, 8, 8]}),
        ("ab" * 32, "8.6.1", "fp32", "Orin (sm_87)", {"x": [1, 3, 8, 8]}),
        ("ab" * 32, "8.6.1", "fp16", "Xavier (sm_72)", {"x": [1, 3, 8, 8]}),
        ("ab" * 32, "8.6.1", "fp16", "Orin (sm_87)", {"x": [2, 3, 8, 8]}),
    ):
        assert engine_key(*change)[1] != digest


def test_fp16_sets_the_builder_flag(monkeypatch, tmp_path, conv_dyn):
    trt = install_trt(monkeypatch, "8.2.1")
    b = backend(tmp_path).load(conv_dyn, DYN, precision="fp16")
    assert calls(trt, "set_flag") == ["BuilderFlag.FP16"]
    b.run_once()
    assert b.device_time_ms() == pytest.approx(0.05)  # the fake runs fp16 layers twice as fast
    assert b.info()["precision"] == "fp16"


def test_int8_needs_a_calibration_cache(monkeypatch, tmp_path, conv_dyn):
    trt = install_trt(monkeypatch, "8.6.1")
    with pytest.raises(
        ModelLoadError, match="int8 needs a calibration cache: set the task option int8_calib"
    ):
        backend(tmp_path).load(conv_dyn, DYN, precision="int8")
    with pytest.raises(ModelLoadError, match="calibration cache .*nope.cache cannot be read"):
        backend(tmp_path, int8_calibration_cache=str(tmp_path / "nope.cache")).load(
            conv_dyn, DYN, precision="int8"
        )
    assert not calls(trt, "build")
    cache = tmp_path / "calib.cache"
    cache.write_bytes(b"TRT-8601-EntropyCalibration2\ninput: 3c010a14\n")
    b = backend(tmp_path, int8_calibration_cache=str(cache)).load(conv_dyn, DYN, precision="int8")
    assert calls(trt, "set_flag") == ["BuilderFlag.INT8"] and calls(trt, "build")
    b.run_once()
    # a relative cache path is taken from the job folder
    job = tmp_path / "jobs" / "j"
    job.mkdir(parents=True)
    (job / "c.cache").write_bytes(b"other cache")
    b = TensorRTBackend({"int8_calibration_cache": "c.cache", "engine_cache_dir": str(tmp_path / "e")})
    b.set_job_dir(str(job)).load(conv_dyn, DYN, precision="int8")


def test_bf16_only_where_the_flag_exists(monkeypatch, tmp_path, conv_dyn):
    install_trt(monkeypatch, "8.6.1")
    with pytest.raises(BackendUnavailable, match="BF16"):
        backend(tmp_path).load(conv_dyn, DYN, precision="bf16")
    trt = install_trt(monkeypatch, "10.3.0")
    backend(tmp_path).load(conv_dyn, DYN, precision="bf16").run_once()
    assert calls(trt, "set_flag") == ["BuilderFlag.BF16"]


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_layer_profile_with_an_iprofiler(monkeypatch, tmp_path, conv_dyn, version):
    _, _, _, io, inspector = VERSIONS[version]
    trt = install_trt(monkeypatch, version)
    b = backend(tmp_path).load(conv_dyn, DYN)
    b.run_once()
    del trt.calls[:]
    layers = b.layer_profile(5)
    assert len(layers) == 1
    rec = layers[0]
    assert rec["name"] == "Conv_0 + Relu_1" and rec["time_ms"] == pytest.approx(0.1) and rec["calls"] == 1
    assert rec["op_type"] == ("CaskConvolution" if inspector else None)
    assert normalise(layers)[0]["op_type"] == ("CaskConvolution" if inspector else "Conv+Relu")
    # bindings API: synchronous execute_v2 (TRT 7 reports layer times only for it); tensors: v3
    assert calls(trt, "execute") == ["execute_v2" if io == "bindings" else "execute_async_v3"] * 5
    assert b._context.profiler is None  # detached again
    b.run_once()


def test_cuda_python_instead_of_pycuda(monkeypatch, tmp_path, conv_dyn):
    install_trt(monkeypatch, "10.3.0", cuda="cuda-python")
    b = backend(tmp_path).load(conv_dyn, DYN)
    assert b.info()["cuda_api"] == "cuda-python" and b.info()["gpu"] == "Fake GPU (sm_87)"
    b.run_once()
    x = b._exec.tensors[0]["host"]
    assert np.allclose(b.outputs()["out"], x.mean(dtype=np.float64), atol=1e-5)
    assert b.device_time_ms() == pytest.approx(0.1)
    b.close()
    with pytest.raises(BackendUnavailable, match="pycuda is not importable"):
        TensorRTBackend({"cuda_api": "pycuda", "engine_cache": False}).load(conv_dyn, DYN)


def test_old_pycuda_uses_autoinit(monkeypatch, tmp_path, conv_dyn):
    install_trt(monkeypatch, "8.2.1", pycuda_version=(2020, 1))
    backend(tmp_path).load(conv_dyn, DYN).run_once()
    assert GPU.context == "autoinit"


def test_model_errors(monkeypatch, tmp_path, models, conv_dyn):
    install_trt(monkeypatch, "8.6.1")
    with pytest.raises(ModelLoadError, match="input names do not match the model: the task gives image"):
        backend(tmp_path).load(conv_dyn, {"image": [1, 3, 16, 16]})
    with pytest.raises(ModelLoadError, match=r"input input: shape \[1, 3, 32, 32\] does not match"):
        backend(tmp_path).load(str(models["conv"][0]), {"input": [1, 3, 32, 32]})
    with pytest.raises(ModelLoadError, match="TensorRT cannot parse the ONNX model"):
        backend(tmp_path).load(str(models["corrupt"][0]), {"input": [1, 3, 16, 16]})
    with pytest.raises(ModelLoadError, match="model file not found"):
        backend(tmp_path).load(str(tmp_path / "nope.onnx"), DYN)
    with pytest.raises(ModelLoadError, match="the engine expects float32 but the task's dtype is float16"):
        backend(tmp_path).load(conv_dyn, DYN, dtype="float16")
    static = backend(tmp_path).load(str(models["conv"][0]), {"input": [1, 3, 16, 16]})
    assert "optimization_profile" not in static.info()["build"]  # static shapes need no profile
    static.run_once()


@pytest.mark.parametrize(
    "options, match",
    [
        ({"workspace_mb": -1}, "workspace_mb"),
        ({"workspace_mb": True}, "workspace_mb"),
        ({"cuda_api": "cupy"}, "cuda_api"),
        ({"engine_cache": "yes"}, "engine_cache"),
        ({"workspace": 64}, "unknown option"),
    ],
)
def test_option_errors(options, match):
    with pytest.raises(BackendOptionError, match=match):
        TensorRTBackend(options)


def test_available_reasons(monkeypatch):
    install_trt(monkeypatch, None)  # tensorrt missing
    reason = TensorRTBackend.available()
    assert reason.startswith("tensorrt is not importable") and "JetPack" in reason
    assert "/usr/lib/python3.6/dist-packages" in reason
    assert BACKENDS.available()["tensorrt"] == reason
    install_trt(monkeypatch, "8.2.1", cuda=None)  # tensorrt there, no CUDA API
    reason = TensorRTBackend.available()
    assert "pycuda is not importable" in reason and "cuda-python is not importable" in reason
    install_trt(monkeypatch, "8.2.1", cuda="cuda-python")
    assert TensorRTBackend.available() is None
    install_cuda(monkeypatch, "pycuda")
    assert TensorRTBackend.available() is None
    assert (
        TensorRTBackend.versions()["tensorrt"] == "8.2.1" and TensorRTBackend.versions()["pycuda"] == "2022.1"
    )


def test_missing_reason_points_at_jetpacks_system_tensorrt(tmp_path):
    (tmp_path / "usr/lib/python3.6/dist-packages/tensorrt").mkdir(parents=True)
    err = ImportError("No module named 'tensorrt'")
    other = tensorrt_missing_reason(
        err, root=str(tmp_path), version_info=(3, 8), executable="/venv/bin/python"
    )
    assert "by /venv/bin/python (Python 3.8)" in other
    assert "a system TensorRT is installed in /usr/lib/python3.6/dist-packages" in other
    assert "cannot load into Python 3.8: run the agent with /usr/bin/python3.6" in other
    same = tensorrt_missing_reason(
        err, root=str(tmp_path), version_info=(3, 6), executable="/venv/bin/python"
    )
    assert "--system-site-packages" in same
    none = tensorrt_missing_reason(err, root=str(tmp_path / "empty"), version_info=(3, 10))
    assert "python3-libnvinfer" in none and "/usr/lib/python3.6/dist-packages on JetPack 4" in none
