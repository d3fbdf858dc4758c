"""TensorRT backend: ONNX -> engine (cached on disk), run with device buffers on a CUDA stream.

The TensorRT Python API changed a lot between 7.x (JetPack 4.5), 8.0/8.2 (JetPack 4.6), 8.4/8.5 (JetPack
5), 8.6 (JetPack 6.0) and 10.x (JetPack 6.1+). What to call is decided by capability (hasattr on the
builder, config, engine and context), never by parsing version strings:

- I/O: the tensor API (num_io_tensors, get_tensor_name/mode, set_input_shape, set_tensor_address,
  execute_async_v3; TRT >= 8.5, the only one in 10) else the bindings API (num_bindings,
  binding_is_input, get_binding_shape, set_binding_shape, execute_async_v2; TRT <= 8.6);
- build: build_serialized_network (8+) else build_engine (7);
- workspace: config.set_memory_pool_limit(MemoryPoolType.WORKSPACE, n) (8.4+) else max_workspace_size.

The dispatch lives in small functions and classes that take the `trt` module and a CUDA adapter as
arguments, so tests drive them with fake modules (tests/agents/fakes).

CUDA access is pycuda (pycuda.driver; the context from pycuda.autoprimaryctx when pycuda >= 2021.1, as
TensorRT uses the primary context, else pycuda.autoinit) or, where pycuda is missing, cuda-python
(cuda.bindings.runtime, or the older cuda.cudart). One run_once() is trtexec's "Latency": H2D copies +
execute + D2H copies on one non-default stream, synchronized; device_time_ms() is its "GPU Compute Time":
CUDA events recorded around the execute call only.

The engine build is never timed: engines are cached on disk, keyed by the sha256 of the model bytes, the
TensorRT version, precision, GPU name, input shapes, workspace and int8 calibration cache, so a second
task (or job) on the same model deserializes instead of building (minutes on a Jetson).
"""

import glob
import hashlib
import json
import os
import sys
import time
from typing import ClassVar

import numpy as np

from .base import (
    Backend,
    BackendUnavailable,
    InferenceError,
    ModelLoadError,
    check_option,
    default_cache_dir,
    make_inputs,
    short_error,
)

PRECISIONS = ("fp32", "fp16", "int8", "bf16")
CUDA_APIS = ("auto", "pycuda", "cuda-python")
FLOAT_DTYPES = ("float32", "float16", "float64")
ENGINE_CACHE_VERSION = 1  # bump when the key or the file layout changes
MB = 1 << 20


def _trt():
    import tensorrt

    return tensorrt


# ---- why TensorRT or CUDA is missing


def system_tensorrt_dirs(root="/"):
    """TensorRT Python packages installed for a system Python (JetPack puts them there via apt)."""
    pattern = os.path.join(root or "/", "usr/lib/python3*/dist-packages/tensorrt")
    return sorted(p for p in glob.glob(pattern) if os.path.isdir(p))


def tensorrt_missing_reason(exc, root="/", version_info=None, executable=None):
    """Why `import tensorrt` failed here, and what to do about it (JetPack's system TensorRT in mind)."""
    version_info = version_info or sys.version_info
    executable = executable or sys.executable
    here = f"{version_info[0]}.{version_info[1]}"
    base = f"tensorrt is not importable by {executable} (Python {here}): {short_error(exc, 300)}"
    found = system_tensorrt_dirs(root)
    if found:
        where = found[0]
        if root and root != "/":
            where = "/" + os.path.relpath(where, root)
        pyver = os.path.basename(os.path.dirname(os.path.dirname(where))).replace("python", "")
        hint = f"; a system TensorRT is installed in {os.path.dirname(where)} (JetPack installs it for the system Python {pyver})"
        if pyver != here:
            hint += f", which cannot load into Python {here}: run the agent with /usr/bin/python{pyver}"
        else:
            hint += (
                f": run the agent with /usr/bin/python{pyver} or make its virtual environment with "
                "--system-site-packages"
            )
        return base + hint
    return base + (
        "; on a Jetson, TensorRT's Python bindings come with JetPack (apt package python3-libnvinfer, in "
        "/usr/lib/python3.6/dist-packages on JetPack 4, python3.8 on JetPack 5, python3.10 on JetPack 6) "
        "for the system Python only; elsewhere install the tensorrt wheel matching the CUDA version"
    )


def _import_pycuda_driver():
    import pycuda.driver

    return pycuda.driver


def _import_cudart():
    try:
        from cuda.bindings import runtime  # cuda-python >= 12.6.1 (cuda-bindings)
    except ImportError:
        from cuda import cudart as runtime  # older cuda-python; removed in cuda-bindings 13
    return runtime


def cuda_missing_reason(errors):
    """errors: {api: exception} for every CUDA API tried."""
    parts = [f"{api} is not importable ({short_error(exc, 200)})" for api, exc in errors.items()]
    return (
        "no CUDA API for TensorRT buffers: {}; install pycuda (pip install pycuda, with nvcc on PATH, e.g. "
        "/usr/local/cuda/bin) or cuda-python matching the board's CUDA version".format("; ".join(parts))
    )


# ---- CUDA adapters: the few calls the backend needs, over pycuda or cuda-python


class PyCudaApi:
    """pycuda.driver: mem_alloc, pagelocked_empty, memcpy_*_async, Stream, Event (times in ms)."""

    name = "pycuda"

    def __init__(self, driver):
        self.cuda = driver
        self._allocs = []

    @classmethod
    def load(cls):
        driver = _import_pycuda_driver()
        try:
            import pycuda.autoprimaryctx
        except ImportError:
            import pycuda.autoinit  # noqa: F401 (a new context on device 0, or $CUDA_DEVICE)
        return cls(driver)

    def device_name(self):
        try:
            dev = self.cuda.Context.get_device()
        except Exception:  # noqa: BLE001
            dev = self.cuda.Device(0)
        name = dev.name()
        try:
            name += " (sm_{}{})".format(*dev.compute_capability())
        except Exception:  # noqa: BLE001, S110
            pass
        return name

    def alloc(self, nbytes):
        mem = self.cuda.mem_alloc(max(1, int(nbytes)))
        self._allocs.append(mem)
        return mem

    def ptr(self, mem):
        return int(mem)

    def host_empty(self, shape, dtype):
        return self.cuda.pagelocked_empty(tuple(shape), dtype)

    def stream(self):
        return self.cuda.Stream()

    def stream_handle(self, stream):
        return stream.handle

    def synchronize(self, stream):
        stream.synchronize()

    def event(self):
        return self.cuda.Event()

    def record(self, event, stream):
        event.record(stream)

    def elapsed_ms(self, start, end):
        end.synchronize()
        return float(start.time_till(end))

    def htod(self, dev, host, stream):
        self.cuda.memcpy_htod_async(dev, host, stream)

    def dtoh(self, host, dev, stream):
        self.cuda.memcpy_dtoh_async(host, dev, stream)

    def close(self):
        for mem in self._allocs:
            try:
                mem.free()
            except Exception:  # noqa: BLE001, S110
                pass
        self._allocs = []


class CudaPythonApi:
    """cuda-python's runtime API (cudaMalloc, cudaMallocHost, cudaMemcpyAsync, cudaEvent*); each call returns
    (error, value...), checked here."""

    name = "cuda-python"

    def __init__(self, runtime):
        self.rt = runtime
        self._device = []
        self._host = []
        self._other = []

    @classmethod
    def load(cls):
        return cls(_import_cudart())

    def _call(self, what, *args):
        result = getattr(self.rt, what)(*args)
        if not isinstance(result, tuple):
            result = (result,)
        err = result[0]
        if err != self.rt.cudaError_t.cudaSuccess:
            raise RuntimeError(f"{what} failed: {err}")
        if len(result) == 1:
            return None
        return result[1] if len(result) == 2 else result[1:]

    def device_name(self):
        props = self._call("cudaGetDeviceProperties", 0)
        name = props.name
        if isinstance(name, bytes):
            name = name.split(b"\0", 1)[0].decode("utf-8", "replace")
        try:
            name += f" (sm_{props.major}{props.minor})"
        except Exception:  # noqa: BLE001, S110
            pass
        return name

    def alloc(self, nbytes):
        ptr = self._call("cudaMalloc", max(1, int(nbytes)))
        self._device.append(ptr)
        return ptr

    def ptr(self, mem):
        return int(mem)

    def host_empty(self, shape, dtype):
        import ctypes

        dtype = np.dtype(dtype)
        nbytes = max(1, int(np.prod(shape)) * dtype.itemsize)
        ptr = self._call("cudaMallocHost", nbytes)
        self._host.append(ptr)
        raw = (ctypes.c_byte * nbytes).from_address(int(ptr))
        return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(tuple(shape))

    def stream(self):
        stream = self._call("cudaStreamCreate")
        self._other.append(("cudaStreamDestroy", stream))
        return stream

    def stream_handle(self, stream):
        return int(stream)

    def synchronize(self, stream):
        self._call("cudaStreamSynchronize", stream)

    def event(self):
        event = self._call("cudaEventCreate")
        self._other.append(("cudaEventDestroy", event))
        return event

    def record(self, event, stream):
        self._call("cudaEventRecord", event, stream)

    def elapsed_ms(self, start, end):
        self._call("cudaEventSynchronize", end)
        return float(self._call("cudaEventElapsedTime", start, end))

    def htod(self, dev, host, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call("cudaMemcpyAsync", int(dev), host.ctypes.data, host.nbytes, kind, stream)

    def dtoh(self, host, dev, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call("cudaMemcpyAsync", host.ctypes.data, int(dev), host.nbytes, kind, stream)

    def close(self):
        for what, obj in reversed(self._other):
            try:
                self._call(what, obj)
            except Exception:  # noqa: BLE001, S110
                pass
        for ptr in self._device:
            try:
                self._call("cudaFree", ptr)
            except Exception:  # noqa: BLE001, S110
                pass
        for ptr in self._host:
            try:
                self._call("cudaFreeHost", ptr)
            except Exception:  # noqa: BLE001, S110
                pass
        self._device, self._host, self._other = [], [], []


CUDA_ADAPTERS = {"pycuda": PyCudaApi, "cuda-python": CudaPythonApi}


def load_cuda_api(which="auto"):
    """The CUDA adapter to use; BackendUnavailable naming what is missing."""
    order = ("pycuda", "cuda-python") if which == "auto" else (which,)
    errors = {}
    for api in order:
        try:
            return CUDA_ADAPTERS[api].load()
        except Exception as exc:  # noqa: BLE001
            errors[api] = exc
    raise BackendUnavailable(cuda_missing_reason(errors))


# ---- API dispatch (pure: take the trt module and the objects, decide by capability)


def api_report(trt, builder=None, config=None, engine=None, context=None):
    """Which API variants the given objects offer (also recorded in backend_info["api"])."""
    out = {}
    if builder is not None:
        out["build"] = (
            "build_serialized_network" if hasattr(builder, "build_serialized_network") else "build_engine"
        )
    if config is not None:
        out["workspace"] = (
            "set_memory_pool_limit"
            if hasattr(config, "set_memory_pool_limit") and hasattr(trt, "MemoryPoolType")
            else "max_workspace_size"
        )
    if engine is not None:
        out["io"] = "tensors" if uses_tensor_api(engine, context) else "bindings"
        if context is not None:
            out["execute"] = "execute_async_v3" if out["io"] == "tensors" else "execute_async_v2"
    return out


def uses_tensor_api(engine, context=None):
    """TRT >= 8.5 names I/O tensors; older engines only have bindings (and 10.x only tensors)."""
    ok = hasattr(engine, "num_io_tensors") and hasattr(engine, "get_tensor_name")
    if context is not None:
        ok = ok and hasattr(context, "execute_async_v3") and hasattr(context, "set_tensor_address")
    return ok


def network_flags(trt):
    """EXPLICIT_BATCH (needed for ONNX before TRT 10; TRT 10 ignores it: networks are always explicit)."""
    flags = 0
    creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
    if creation is not None and hasattr(creation, "EXPLICIT_BATCH"):
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    return flags


def set_workspace(trt, config, workspace_bytes):
    """Workspace limit via the memory-pool API (8.4+) or the older attribute; returns the API used."""
    if hasattr(config, "set_memory_pool_limit") and hasattr(trt, "MemoryPoolType"):
        if workspace_bytes:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
        return "set_memory_pool_limit"
    if workspace_bytes:
        config.max_workspace_size = int(workspace_bytes)
    return "max_workspace_size"


def make_cache_calibrator(trt, cache_bytes, batch):
    """An INT8 calibrator that only replays a calibration cache (no calibration data on the board)."""
    base = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:
        raise BackendUnavailable(
            "this TensorRT has no IInt8EntropyCalibrator2: int8 from a cache is not possible"
        )

    class CacheCalibrator(base):
        def __init__(self):
            base.__init__(self)

        def get_batch_size(self):
            return int(batch)

        def get_batch(self, names, *args):
            return None  # no data: TensorRT must find everything in the cache

        def read_calibration_cache(self, *args):
            return cache_bytes

        def write_calibration_cache(self, cache, *args):
            return None

    return CacheCalibrator()


def set_precision(trt, builder, config, precision, calibration_cache=None, batch=1):
    """Builder flags for the precision; returns warnings (e.g. no fast fp16 on this GPU)."""
    warnings = []
    flags = trt.BuilderFlag
    if precision == "fp16":
        if getattr(builder, "platform_has_fast_fp16", True) is False:
            warnings.append("this GPU has no fast fp16 (platform_has_fast_fp16 is False)")
        config.set_flag(flags.FP16)
    elif precision == "bf16":
        if not hasattr(flags, "BF16"):
            raise BackendUnavailable("this TensorRT has no BuilderFlag.BF16 (bf16 needs TensorRT >= 9)")
        config.set_flag(flags.BF16)
    elif precision == "int8":
        if getattr(builder, "platform_has_fast_int8", True) is False:
            warnings.append("this GPU has no fast int8 (platform_has_fast_int8 is False)")
        config.set_flag(flags.INT8)
        config.int8_calibrator = make_cache_calibrator(trt, calibration_cache, batch)
    return warnings


def network_inputs(network):
    """{name: (shape tuple with -1 for dynamic dims, dtype)} of a parsed network."""
    out = {}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        out[tensor.name] = (tuple(int(d) for d in tensor.shape), tensor.dtype)
    return out


def check_shapes(declared, inputs):
    """ModelLoadError unless the task's inputs match the model's names, ranks and static dims."""

    def describe():
        return ", ".join(f"{k} {list(declared[k])}" for k in sorted(declared))

    if sorted(inputs) != sorted(declared):
        raise ModelLoadError(
            "input names do not match the model: the task gives {}, the model expects {}".format(
                ", ".join(sorted(inputs)), describe()
            )
        )
    for name, shape in inputs.items():
        model = declared[name]
        if len(model) != len(shape) or any(m >= 0 and m != d for m, d in zip(model, shape)):
            raise ModelLoadError(
                f"input {name}: shape {list(shape)} does not match the model (expected {describe()})"
            )


def build_serialized(
    trt, logger, onnx_bytes, inputs, precision, workspace_bytes=None, calibration_cache=None, batch=1
):
    """Parse ONNX and build a serialized engine (bytes). Returns (plan, report).

    The network is explicit-batch; inputs with dynamic dims get one optimization profile with
    min = opt = max = the task's shape.
    """
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ModelLoadError("TensorRT cannot parse the ONNX model: " + ("; ".join(errors) or "no detail"))
    declared = network_inputs(network)
    check_shapes({k: v[0] for k, v in declared.items()}, inputs)
    config = builder.create_builder_config()
    report = api_report(trt, builder=builder, config=config)
    set_workspace(trt, config, workspace_bytes)
    verbosity = getattr(trt, "ProfilingVerbosity", None)
    if verbosity is not None and hasattr(verbosity, "DETAILED"):
        config.profiling_verbosity = verbosity.DETAILED  # layer types for the engine inspector
    if any(any(d < 0 for d in shape) for shape, _ in declared.values()):
        profile = builder.create_optimization_profile()
        for name in declared:
            want = tuple(int(d) for d in inputs[name])
            profile.set_shape(name, want, want, want)
        config.add_optimization_profile(profile)
        report["optimization_profile"] = {k: list(v) for k, v in inputs.items()}
    report["warnings"] = set_precision(trt, builder, config, precision, calibration_cache, batch)
    if report["build"] == "build_serialized_network":
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise ModelLoadError(
                "TensorRT could not build the engine (build_serialized_network returned None)"
            )
        plan = bytes(plan)
    else:
        engine = builder.build_engine(network, config)
        if engine is None:
            raise ModelLoadError("TensorRT could not build the engine (build_engine returned None)")
        plan = bytes(engine.serialize())
    return plan, report


def io_tensors(trt, engine):
    """[{name, index, is_input, shape (engine's, -1 = dynamic), dtype (numpy)}] in I/O order."""
    out = []
    if uses_tensor_api(engine):
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            out.append(
                {
                    "name": name,
                    "index": i,
                    "is_input": engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                    "shape": tuple(int(d) for d in engine.get_tensor_shape(name)),
                    "dtype": np.dtype(trt.nptype(engine.get_tensor_dtype(name))),
                }
            )
    else:
        for i in range(engine.num_bindings):
            out.append(
                {
                    "name": engine.get_binding_name(i),
                    "index": i,
                    "is_input": bool(engine.binding_is_input(i)),
                    "shape": tuple(int(d) for d in engine.get_binding_shape(i)),
                    "dtype": np.dtype(trt.nptype(engine.get_binding_dtype(i))),
                }
            )
    return out


class TrtExecutor:
    """Buffers and runs of one execution context, over either I/O API and any CUDA adapter."""

    def __init__(self, trt, engine, context, cuda, inputs, dtype="float32", seed=0):
        self.trt = trt
        self.engine = engine
        self.context = context
        self.cuda = cuda
        self.tensor_api = uses_tensor_api(engine, context)
        self.tensors = io_tensors(trt, engine)
        ins = [t for t in self.tensors if t["is_input"]]
        check_shapes({t["name"]: t["shape"] for t in ins}, inputs)
        for t in ins:
            np_dtype = t["dtype"].name
            if np_dtype in FLOAT_DTYPES and np_dtype != dtype:
                raise ModelLoadError(
                    "input {}: the engine expects {} but the task's dtype is {}".format(
                        t["name"], np_dtype, dtype
                    )
                )
            shape = tuple(int(d) for d in inputs[t["name"]])
            accepted = True
            if self.tensor_api:
                accepted = context.set_input_shape(t["name"], shape)
            elif any(d < 0 for d in t["shape"]):
                accepted = context.set_binding_shape(t["index"], shape)
            if accepted is False:
                raise ModelLoadError("input {}: TensorRT refused the shape {}".format(t["name"], list(shape)))
            t["shape"] = shape
        for t in self.tensors:
            if not t["is_input"]:
                if self.tensor_api:
                    shape = context.get_tensor_shape(t["name"])
                else:
                    shape = context.get_binding_shape(t["index"])
                t["shape"] = tuple(int(d) for d in shape)
                if any(d < 0 for d in t["shape"]):
                    raise ModelLoadError(
                        "output {}: shape {} still dynamic after setting the inputs".format(
                            t["name"], list(t["shape"])
                        )
                    )
        feeds = make_inputs(
            {t["name"]: t["shape"] for t in ins}, {t["name"]: t["dtype"].name for t in ins}, seed
        )
        for t in self.tensors:
            t["host"] = cuda.host_empty(t["shape"], t["dtype"])
            t["device"] = cuda.alloc(t["host"].nbytes)
            if t["is_input"]:
                t["host"][...] = feeds[t["name"]]
        self.bindings = [0] * len(self.tensors)
        for t in self.tensors:
            self.bindings[t["index"]] = cuda.ptr(t["device"])
            if self.tensor_api:
                context.set_tensor_address(t["name"], cuda.ptr(t["device"]))
        self.stream = cuda.stream()
        self.handle = cuda.stream_handle(self.stream)
        self.ev_start = cuda.event()
        self.ev_end = cuda.event()
        self._recorded = False
        self.runs = 0

    def _execute(self):
        if self.tensor_api:
            ok = self.context.execute_async_v3(self.handle)
        else:
            ok = self.context.execute_async_v2(self.bindings, self.handle)
        if ok is False:
            raise InferenceError("TensorRT execute returned False")

    def run(self):
        """H2D, [event] execute [event], D2H on one stream; returns after the stream synchronized."""
        cuda = self.cuda
        for t in self.tensors:
            if t["is_input"]:
                cuda.htod(t["device"], t["host"], self.stream)
        cuda.record(self.ev_start, self.stream)
        self._execute()
        cuda.record(self.ev_end, self.stream)
        for t in self.tensors:
            if not t["is_input"]:
                cuda.dtoh(t["host"], t["device"], self.stream)
        cuda.synchronize(self.stream)
        self._recorded = True
        self.runs += 1

    def run_profiled(self):
        """One run for the layer profiler: synchronous execute_v2 on the bindings API (TRT 7 reports layer
        times only for synchronous execution), execute_async_v3 + synchronize on the tensor API."""
        if not self.tensor_api and hasattr(self.context, "execute_v2"):
            if self.context.execute_v2(self.bindings) is False:
                raise InferenceError("TensorRT execute_v2 returned False")
            return
        self._execute()
        self.cuda.synchronize(self.stream)

    def device_ms(self):
        if not self._recorded:
            return None
        return self.cuda.elapsed_ms(self.ev_start, self.ev_end)

    def outputs(self):
        return {t["name"]: t["host"] for t in self.tensors if not t["is_input"]}

    def shapes(self, inputs):
        return {t["name"]: list(t["shape"]) for t in self.tensors if t["is_input"] == inputs}


def make_layer_profiler(trt):
    """An IProfiler collecting report_layer_time(layer_name, ms) per layer, in execution order."""
    base = trt.IProfiler

    class LayerTimes(base):
        def __init__(self):
            base.__init__(self)
            self.order = []
            self.totals = {}
            self.counts = {}

        def report_layer_time(self, layer_name, ms):
            if layer_name not in self.totals:
                self.order.append(layer_name)
                self.totals[layer_name] = 0.0
                self.counts[layer_name] = 0
            self.totals[layer_name] += float(ms)
            self.counts[layer_name] += 1

        def records(self, n_runs, op_types=None):
            op_types = op_types or {}
            return [
                {
                    "name": name,
                    "op_type": op_types.get(name),
                    "time_ms": self.totals[name] / n_runs,
                    "calls": self.counts[name] / float(n_runs),
                }
                for name in self.order
            ]

    return LayerTimes()


def layer_types(trt, engine):
    """{layer name: LayerType} from the engine inspector (TRT >= 8.2, DETAILED verbosity), else {}."""
    try:
        inspector = engine.create_engine_inspector()
        fmt = trt.LayerInformationFormat.JSON
        out = {}
        for i in range(engine.num_layers):
            info = json.loads(inspector.get_layer_information(i, fmt))
            if isinstance(info, dict) and info.get("Name") and info.get("LayerType"):
                out[info["Name"]] = info["LayerType"]
        return out
    except Exception:  # noqa: BLE001
        return {}


# ---- engine cache


def engine_key(
    model_sha256, trt_version, precision, gpu, inputs, workspace_bytes=None, int8_cache_sha256=None
):
    """(fields, hex digest): everything that makes a built engine reusable."""
    fields = {
        "cache_version": ENGINE_CACHE_VERSION,
        "model_sha256": model_sha256,
        "tensorrt": str(trt_version),
        "precision": precision,
        "gpu": gpu,
        "inputs": {k: [int(d) for d in v] for k, v in sorted(inputs.items())},
        "workspace_bytes": workspace_bytes,
        "int8_cache_sha256": int8_cache_sha256,
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()
    return fields, digest


def _write_atomic(path, data):
    tmp = f"{path}.{os.getpid()}.part"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class TensorRTBackend(Backend):
    """An ONNX model built into a TensorRT engine (cached), run with pycuda/cuda-python buffers."""

    name = "tensorrt"
    OPTIONS: ClassVar[dict] = {
        "workspace_mb": None,  # None: TensorRT's default (8.4+: the device's memory; 8.2 trtexec: 16 MiB)
        "int8_calibration_cache": None,  # a calibration cache file, needed for precision int8
        "engine_cache": True,  # reuse engines built before (never times a build either way)
        "engine_cache_dir": None,  # default <job folder>/../../engines
        "cuda_api": "auto",  # pycuda, else cuda-python
    }

    @classmethod
    def available(cls):
        try:
            _trt()
        except Exception as exc:  # noqa: BLE001
            return tensorrt_missing_reason(exc)
        errors = {}
        for api, probe in (("pycuda", _import_pycuda_driver), ("cuda-python", _import_cudart)):
            try:
                probe()
                return None
            except Exception as exc:  # noqa: BLE001
                errors[api] = exc
        return cuda_missing_reason(errors)

    @classmethod
    def versions(cls):
        out = {"numpy": np.__version__}
        try:
            out["tensorrt"] = _trt().__version__
        except Exception:  # noqa: BLE001, S110
            pass
        try:
            import pycuda

            out["pycuda"] = getattr(pycuda, "VERSION_TEXT", None) or str(getattr(pycuda, "VERSION", ""))
        except Exception:  # noqa: BLE001, S110
            pass
        try:
            import cuda

            version = getattr(cuda, "__version__", None)
            if version:
                out["cuda-python"] = version
        except Exception:  # noqa: BLE001, S110
            pass
        return out

    def __init__(self, task_options=None):
        Backend.__init__(self, task_options)
        o = self.options
        name = self.name
        check_option(
            name,
            "workspace_mb",
            o["workspace_mb"],
            (int, float),
            "a number of MiB > 0 or null",
            ok=lambda v: v > 0,
            allow_none=True,
        )
        check_option(
            name,
            "int8_calibration_cache",
            o["int8_calibration_cache"],
            str,
            "a file path or null",
            allow_none=True,
        )
        check_option(name, "engine_cache", o["engine_cache"], bool, "true or false")
        check_option(
            name, "engine_cache_dir", o["engine_cache_dir"], str, "a folder or null", allow_none=True
        )
        check_option(
            name,
            "cuda_api",
            o["cuda_api"],
            str,
            "one of " + ", ".join(CUDA_APIS),
            ok=lambda v: v in CUDA_APIS,
        )
        self._trt = None
        self._logger = None
        self._runtime = None
        self._engine = None
        self._context = None
        self._exec = None
        self._cuda = None
        self._info = {}

    def _workspace_bytes(self):
        mb = self.options["workspace_mb"]
        return None if mb is None else int(mb * MB)

    def _resolve(self, path):
        if os.path.isabs(path):
            return path
        return os.path.join(self.job_dir or os.getcwd(), path)

    def _calibration_cache(self, precision):
        if precision != "int8":
            return None, None
        path = self.options["int8_calibration_cache"]
        if not path:
            raise ModelLoadError(
                "tensorrt precision int8 needs a calibration cache: set the task option int8_calibration_cache "
                "to a TensorRT calibration cache file (written on the host, e.g. by a calibrator's "
                "write_calibration_cache or trtexec --int8 --calib=FILE); the agent does not calibrate on "
                "the board"
            )
        path = self._resolve(path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ModelLoadError(f"int8 calibration cache {path} cannot be read: {short_error(exc)}")
        return data, hashlib.sha256(data).hexdigest()

    def cache_dir(self, model_path):
        return self.options["engine_cache_dir"] or default_cache_dir(self.job_dir, model_path)

    def load(self, model_path, inputs, dtype="float32", precision="fp32"):
        try:
            trt = _trt()
        except Exception as exc:  # noqa: BLE001
            raise BackendUnavailable(tensorrt_missing_reason(exc))
        return self.load_with(
            trt, load_cuda_api(self.options["cuda_api"]), model_path, inputs, dtype, precision
        )

    def load_with(self, trt, cuda, model_path, inputs, dtype="float32", precision="fp32"):
        """load() with the modules given (tests pass fakes)."""
        if precision not in PRECISIONS:
            raise BackendUnavailable(f"tensorrt backend: precision {precision!r} is not supported")
        self._trt = trt
        self._cuda = cuda
        calib, calib_sha = self._calibration_cache(precision)
        if not os.path.isfile(model_path):
            raise ModelLoadError(f"model file not found: {model_path}")
        with open(model_path, "rb") as f:
            onnx_bytes = f.read()
        model_sha = hashlib.sha256(onnx_bytes).hexdigest()
        inputs = {k: [int(d) for d in v] for k, v in inputs.items()}
        first = [shape for shape in inputs.values() if shape]
        batch = first[0][0] if first else 1  # only the int8 calibrator's get_batch_size() asks
        gpu = cuda.device_name()
        fields, digest = engine_key(
            model_sha, trt.__version__, precision, gpu, inputs, self._workspace_bytes(), calib_sha
        )
        self._logger = trt.Logger(trt.Logger.WARNING)
        if hasattr(trt, "init_libnvinfer_plugins"):
            try:
                trt.init_libnvinfer_plugins(self._logger, "")  # ONNX models with plugin ops (NMS, ...)
            except Exception:  # noqa: BLE001, S110
                pass
        info = {
            "tensorrt": trt.__version__,
            "cuda_api": cuda.name,
            "gpu": gpu,
            "precision": precision,
            "workspace_bytes": self._workspace_bytes(),
            "engine_key": digest,
            "engine_cached": False,
            "build_s": None,
            "warnings": [],
        }
        self._info = info
        plan = None
        path = None
        if self.options["engine_cache"]:
            folder = self.cache_dir(model_path)
            path = os.path.join(folder, digest[:32] + ".engine")
            info["engine_path"] = path
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    plan = f.read()
                info["engine_cached"] = True
        engine = self._deserialize(plan) if plan is not None else None
        if plan is not None and engine is None:
            info["warnings"].append(f"cached engine {path} could not be deserialized; rebuilt")
            info["engine_cached"] = False
        if engine is None:
            t0 = time.monotonic()
            try:
                plan, report = build_serialized(
                    trt, self._logger, onnx_bytes, inputs, precision, self._workspace_bytes(), calib, batch
                )
            except (ModelLoadError, BackendUnavailable):
                raise
            except Exception as exc:  # noqa: BLE001
                raise ModelLoadError(f"TensorRT build failed for {model_path}: {short_error(exc)}")
            info["build_s"] = time.monotonic() - t0
            info["warnings"].extend(report.pop("warnings", []))
            info["build"] = report
            engine = self._deserialize(plan)
            if engine is None:
                raise ModelLoadError("TensorRT cannot deserialize the engine it just built")
            if path is not None:
                try:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    _write_atomic(path, plan)
                    with open(path[: -len(".engine")] + ".json", "w") as f:
                        json.dump(fields, f, indent=1, sort_keys=True)
                except OSError as exc:
                    info["warnings"].append(f"engine not cached in {path}: {short_error(exc)}")
        info["engine_bytes"] = len(plan)
        self._engine = engine
        try:
            self._context = engine.create_execution_context()
            if self._context is None:
                raise RuntimeError("create_execution_context returned None (out of device memory?)")
            self._exec = TrtExecutor(trt, engine, self._context, cuda, inputs, dtype)
        except (ModelLoadError, BackendUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"TensorRT cannot set up the engine of {model_path}: {short_error(exc)}")
        info["api"] = api_report(trt, engine=engine, context=self._context)
        info["inputs"] = self._exec.shapes(True)
        info["outputs"] = self._exec.shapes(False)
        return self

    def _deserialize(self, plan):
        trt = self._trt
        if self._runtime is None:
            self._runtime = trt.Runtime(self._logger)
        try:
            return self._runtime.deserialize_cuda_engine(plan)
        except Exception:  # noqa: BLE001
            return None

    def run_once(self):
        if self._exec is None:
            raise InferenceError("run_once() called before load()")
        try:
            self._exec.run()
        except InferenceError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise InferenceError(f"inference failed: {short_error(exc)}")

    def device_time_ms(self):
        if self._exec is None:
            return None
        try:
            return self._exec.device_ms()
        except Exception as exc:  # noqa: BLE001
            raise InferenceError(f"reading the CUDA events failed: {short_error(exc)}")

    def outputs(self):
        """The host copies of the last run's outputs {name: ndarray} (for checks, not for timing)."""
        return self._exec.outputs() if self._exec is not None else {}

    def layer_profile(self, n_runs=10):
        if self._exec is None:
            raise InferenceError("layer_profile() called before load()")
        n_runs = max(1, int(n_runs))
        profiler = make_layer_profiler(self._trt)
        self._context.profiler = profiler
        try:
            for _ in range(n_runs):
                self._exec.run_profiled()
        except InferenceError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise InferenceError(f"profiled run failed: {short_error(exc)}")
        finally:
            try:
                self._context.profiler = None
            except Exception:  # noqa: BLE001, S110
                pass
        return profiler.records(n_runs, layer_types(self._trt, self._engine))

    def info(self):
        out = {"tensorrt": self.versions().get("tensorrt")}
        out.update(self._info)
        out["options"] = dict(self.options)
        return out

    def close(self):
        self._exec = None
        self._context = None
        self._engine = None
        self._runtime = None
        if self._cuda is not None:
            try:
                self._cuda.close()
            except Exception:  # noqa: BLE001, S110
                pass
            self._cuda = None
