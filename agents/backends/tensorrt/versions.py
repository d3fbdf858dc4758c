"""TensorRT version shims: which API to call, decided by capability, never by parsing version strings.

The TensorRT Python API changed a lot between 7.x (JetPack 4.5), 8.0/8.2 (JetPack 4.6), 8.4/8.5 (JetPack
5), 8.6 (JetPack 6.0) and 10.x (JetPack 6.1+):

- I/O: the tensor API (num_io_tensors, get_tensor_name/mode, set_input_shape, set_tensor_address,
  execute_async_v3; TRT >= 8.5, the only one in 10) else the bindings API (num_bindings,
  binding_is_input, get_binding_shape, set_binding_shape, execute_async_v2; TRT <= 8.6);
- build: build_serialized_network (8+) else build_engine (7);
- workspace: config.set_memory_pool_limit(MemoryPoolType.WORKSPACE, n) (8.4+) else max_workspace_size;
- layer types: the engine inspector (8.2+) else none.

Every function takes the `trt` module (and the objects) as arguments, so tests drive them with fakes.
"""

import json

import numpy as np

from ..base import BackendUnavailable, ModelLoadError


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
