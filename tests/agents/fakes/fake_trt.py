"""A fake `tensorrt` module of a chosen version, with only the API that version has.

| API                                         | 7.2 | 8.0 | 8.2 | 8.6 | 10.3 |
| build_engine / engine.serialize             | yes | yes | yes | yes | -    |
| build_serialized_network                    | -   | yes | yes | yes | yes  |
| Builder.max_workspace_size                  | yes | -   | -   | -   | -    |
| IBuilderConfig.max_workspace_size           | yes | yes | yes | yes | -    |
| set_memory_pool_limit / MemoryPoolType      | -   | -   | -   | yes | yes  |
| bindings (num_bindings, execute_async_v2)   | yes | yes | yes | yes | -    |
| tensors (num_io_tensors, execute_async_v3)  | -   | -   | -   | yes | yes  |
| engine inspector, ProfilingVerbosity        | -   | -   | yes | yes | yes  |
| BuilderFlag.BF16                            | -   | -   | -   | -   | yes  |

The ONNX parser reads the model with `onnx`; an engine is a JSON "plan". Executing one reads the inputs
from the fake GPU's memory and writes every output filled with the mean of the first input, advancing the
fake GPU clock by 0.1 ms per layer (0.05 with FP16), and reports layer times to an attached IProfiler.
"""

import json
import types

import numpy as np

from .gpu import GPU

PLAN_MAGIC = b"FAKETRT\0"
LAYER_MS = 0.1


class _Enum:
    def __init__(self, name, value):
        self.name = name
        self.value = value

    def __int__(self):
        return self.value

    def __repr__(self):
        return self.name

    def __eq__(self, other):
        return isinstance(other, _Enum) and other.name == self.name

    def __hash__(self):
        return hash(self.name)


def _enum_class(name, members):
    cls = type(name, (), {})
    for i, m in enumerate(members):
        setattr(cls, m, _Enum(name + "." + m, i))
    return cls


def make_trt(version="8.6.1"):
    v = tuple(int(x) for x in version.split(".")[:2])
    has = {
        "build_serialized": v >= (8, 0),
        "build_engine": v < (10, 0),
        "builder_workspace": v < (8, 0),
        "config_workspace": v < (10, 0),
        "memory_pool": v >= (8, 4),
        "tensors": v >= (8, 5),
        "bindings": v < (10, 0),
        "inspector": v >= (8, 2),
        "bf16": v >= (9, 0),
    }
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = []
    trt.has = has

    DataType = _enum_class("DataType", ["FLOAT", "HALF", "INT8", "INT32", "BOOL"])
    np_of = {
        DataType.FLOAT: np.float32,
        DataType.HALF: np.float16,
        DataType.INT8: np.int8,
        DataType.INT32: np.int32,
        DataType.BOOL: np.bool_,
    }
    by_name = {"DataType." + k: getattr(DataType, k) for k in ("FLOAT", "HALF", "INT8", "INT32", "BOOL")}
    onnx_types = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32, 9: DataType.BOOL}
    trt.DataType = DataType
    trt.float32, trt.float16 = DataType.FLOAT, DataType.HALF
    trt.nptype = lambda dt: np_of[dt]
    trt.TensorIOMode = _enum_class("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
    flags = ["FP16", "INT8", "REFIT", "STRICT_TYPES"] + (["BF16"] if has["bf16"] else [])
    trt.BuilderFlag = _enum_class("BuilderFlag", flags)
    trt.NetworkDefinitionCreationFlag = _enum_class(
        "NetworkDefinitionCreationFlag", ["EXPLICIT_BATCH", "EXPLICIT_PRECISION"]
    )
    if has["memory_pool"]:
        trt.MemoryPoolType = _enum_class("MemoryPoolType", ["WORKSPACE", "DLA_MANAGED_SRAM"])
    if has["inspector"]:
        trt.ProfilingVerbosity = _enum_class("ProfilingVerbosity", ["LAYER_NAMES_ONLY", "NONE", "DETAILED"])
        trt.LayerInformationFormat = _enum_class("LayerInformationFormat", ["ONELINE", "JSON"])

    class Logger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self, severity=2):
            self.severity = severity

    class IProfiler:
        def __init__(self):
            pass

    class IInt8EntropyCalibrator2:
        def __init__(self):
            pass

    trt.Logger = Logger
    trt.IProfiler = IProfiler
    trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2

    # ---- network and parser

    class Tensor:
        def __init__(self, name, shape, dtype):
            self.name, self.shape, self.dtype = name, tuple(shape), dtype

    class Network:
        def __init__(self, flags):
            self.flags = flags
            self.inputs, self.outputs, self.layers = [], [], []

        @property
        def num_inputs(self):
            return len(self.inputs)

        def get_input(self, i):
            return self.inputs[i]

        @property
        def num_outputs(self):
            return len(self.outputs)

        def get_output(self, i):
            return self.outputs[i]

    class OnnxParser:
        def __init__(self, network, logger):
            self.network = network
            self.errors = []

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

        def parse(self, data):
            import onnx

            if v < (10, 0) and not self.network.flags & 1:
                self.errors.append("the ONNX parser needs an explicit-batch network")
                return False
            try:
                model = onnx.load_from_string(bytes(data))
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"ModelImporter: failed to parse the ONNX model: {exc}")
                return False
            init = {t.name for t in model.graph.initializer}

            def shape(vi):
                return [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]

            net = self.network
            for vi in model.graph.input:
                if vi.name not in init:
                    net.inputs.append(Tensor(vi.name, shape(vi), onnx_types[vi.type.tensor_type.elem_type]))
            for vi in model.graph.output:
                net.outputs.append(Tensor(vi.name, shape(vi), onnx_types[vi.type.tensor_type.elem_type]))
            nodes = [(n.name or f"{n.op_type}_{i}", n.op_type) for i, n in enumerate(model.graph.node)]
            i = 0
            while i < len(nodes):  # fuse X + Relu as TensorRT does
                if i + 1 < len(nodes) and nodes[i + 1][1] == "Relu":
                    net.layers.append((nodes[i][0] + " + " + nodes[i + 1][0], "CaskConvolution"))
                    i += 2
                else:
                    net.layers.append((nodes[i][0], nodes[i][1]))
                    i += 1
            return True

    trt.OnnxParser = OnnxParser

    # ---- builder

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, min, opt, max):
            self.shapes[name] = (tuple(min), tuple(opt), tuple(max))

    def _workspace_get(self):
        return self._workspace

    def _workspace_set(self, n):
        trt.calls.append(("max_workspace_size", n))
        self._workspace = n

    config_attrs = {}

    def config_init(self):
        self.flags = set()
        self.profiles = []
        self.int8_calibrator = None
        self.pool_limits = {}
        self._workspace = None
        self.profiling_verbosity = None

    def set_flag(self, flag):
        trt.calls.append(("set_flag", flag.name))
        self.flags.add(flag.name.split(".")[-1])

    def add_optimization_profile(self, p):
        self.profiles.append(p)
        return len(self.profiles) - 1

    def set_memory_pool_limit(self, pool, n):
        trt.calls.append(("set_memory_pool_limit", pool.name, n))
        self.pool_limits[pool.name] = n

    config_attrs.update(
        __init__=config_init, set_flag=set_flag, add_optimization_profile=add_optimization_profile
    )
    if has["config_workspace"]:
        config_attrs["max_workspace_size"] = property(_workspace_get, _workspace_set)
    if has["memory_pool"]:
        config_attrs["set_memory_pool_limit"] = set_memory_pool_limit
    Config = type("IBuilderConfig", (), config_attrs)

    def _plan(network, config):
        if config.profiling_verbosity is not None and not has["inspector"]:
            raise AttributeError("profiling_verbosity")
        inputs = []
        for t in network.inputs:
            shape = list(t.shape)
            if any(d < 0 for d in shape):
                prof = [p for p in config.profiles if t.name in p.shapes]
                if not prof:
                    trt.calls.append(("build_failed", "no optimization profile for " + t.name))
                    return None
                mn, opt, mx = prof[0].shapes[t.name]
                if not (mn == opt == mx):
                    return None
            inputs.append(
                {
                    "name": t.name,
                    "shape": shape,
                    "dtype": repr(t.dtype),
                    "profile": [list(s) for s in prof[0].shapes[t.name]]
                    if any(d < 0 for d in shape)
                    else None,
                }
            )
        if "INT8" in config.flags:
            cal = config.int8_calibrator
            if not isinstance(cal, IInt8EntropyCalibrator2) or not cal.read_calibration_cache():
                trt.calls.append(("build_failed", "int8 without a calibration cache"))
                return None
        ms = LAYER_MS * (0.5 if "FP16" in config.flags else 1.0)
        desc = {
            "version": version,
            "inputs": inputs,
            "outputs": [
                {"name": t.name, "shape": list(t.shape), "dtype": repr(t.dtype)} for t in network.outputs
            ],
            "layers": [[n, k, ms] for n, k in network.layers],
            "flags": sorted(config.flags),
            "workspace": config._workspace,
            "pool_limits": config.pool_limits,
            "verbosity": repr(config.profiling_verbosity),
        }
        return PLAN_MAGIC + json.dumps(desc).encode()

    class HostMemory:
        def __init__(self, data):
            self.data = data

        def __bytes__(self):
            return self.data

        @property
        def nbytes(self):
            return len(self.data)

    builder_attrs = {}

    def builder_init(self, logger):
        self.logger = logger
        self.platform_has_fast_fp16 = True
        self.platform_has_fast_int8 = True
        if has["builder_workspace"]:
            self.max_workspace_size = 0

    def create_network(self, flags=0):
        trt.calls.append(("create_network", flags))
        return Network(flags)

    def build_serialized_network(self, network, config):
        trt.calls.append(("build", "build_serialized_network"))
        plan = _plan(network, config)
        return HostMemory(plan) if plan is not None else None

    def build_engine(self, network, config):
        trt.calls.append(("build", "build_engine"))
        plan = _plan(network, config)
        return Engine(json.loads(plan[len(PLAN_MAGIC) :].decode())) if plan is not None else None

    builder_attrs.update(
        __init__=builder_init,
        create_network=create_network,
        create_builder_config=lambda self: Config(),
        create_optimization_profile=lambda self: Profile(),
    )
    if has["build_serialized"]:
        builder_attrs["build_serialized_network"] = build_serialized_network
    if has["build_engine"]:
        builder_attrs["build_engine"] = build_engine
    trt.Builder = type("Builder", (), builder_attrs)

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, plan):
            trt.calls.append(("deserialize", len(plan)))
            plan = bytes(plan)
            if not plan.startswith(PLAN_MAGIC):
                return None
            desc = json.loads(plan[len(PLAN_MAGIC) :].decode())
            if desc["version"] != version:
                return None
            return Engine(desc)

    trt.Runtime = Runtime

    # ---- engine and context

    engine_attrs = {}

    def engine_init(self, desc):
        self.desc = desc
        self.io = [dict(t, is_input=True) for t in desc["inputs"]] + [
            dict(t, is_input=False) for t in desc["outputs"]
        ]
        for t in self.io:
            t["dt"] = by_name[t["dtype"]]

    def _by_name(self, name):
        for t in self.io:
            if t["name"] == name:
                return t
        raise KeyError(name)

    engine_attrs.update(
        __init__=engine_init,
        _by_name=_by_name,
        num_layers=property(lambda self: len(self.desc["layers"])),
        serialize=lambda self: HostMemory(PLAN_MAGIC + json.dumps(self.desc).encode()),
        create_execution_context=lambda self: Context(self),  # noqa: PLW0108 - a class would not bind self
    )
    if has["bindings"]:
        engine_attrs.update(
            num_bindings=property(lambda self: len(self.io)),
            get_binding_name=lambda self, i: self.io[i]["name"],
            binding_is_input=lambda self, i: self.io[i]["is_input"],
            get_binding_shape=lambda self, i: tuple(self.io[i]["shape"]),
            get_binding_dtype=lambda self, i: self.io[i]["dt"],
        )
    if has["tensors"]:
        engine_attrs.update(
            num_io_tensors=property(lambda self: len(self.io)),
            get_tensor_name=lambda self, i: self.io[i]["name"],
            get_tensor_mode=lambda self, n: (
                trt.TensorIOMode.INPUT if self._by_name(n)["is_input"] else trt.TensorIOMode.OUTPUT
            ),
            get_tensor_shape=lambda self, n: tuple(self._by_name(n)["shape"]),
            get_tensor_dtype=lambda self, n: self._by_name(n)["dt"],
        )
    if has["inspector"]:

        class Inspector:
            def __init__(self, engine):
                self.engine = engine

            def get_layer_information(self, i, fmt):
                name, kind, _ = self.engine.desc["layers"][i]
                if self.engine.desc["verbosity"].endswith("DETAILED"):
                    return json.dumps({"Name": name, "LayerType": kind})
                return json.dumps(name)

        engine_attrs["create_engine_inspector"] = lambda self: Inspector(self)  # noqa: PLW0108 - as above
    Engine = type("ICudaEngine", (), engine_attrs)

    ctx_attrs = {}

    def ctx_init(self, engine):
        self.engine = engine
        self.shapes = {t["name"]: tuple(t["shape"]) for t in engine.io if t["is_input"]}
        self.addresses = {}
        self.profiler = None

    def _set_shape(self, name, shape):
        t = self.engine._by_name(name)
        if len(shape) != len(t["shape"]) or any(a >= 0 and a != b for a, b in zip(t["shape"], shape, strict=True)):
            return False
        if t.get("profile") and tuple(shape) != tuple(t["profile"][1]):
            return False
        self.shapes[name] = tuple(shape)
        return True

    def _out_shape(self, t):
        if t["is_input"]:
            return self.shapes[t["name"]]
        batch = next(iter(self.shapes.values()))[0]
        return tuple(batch if d < 0 else d for d in t["shape"])

    def _run(self, pointers, how):
        trt.calls.append(("execute", how))
        io = self.engine.io
        for t in io:
            if t["is_input"] and any(d < 0 for d in self.shapes[t["name"]]):
                raise RuntimeError("fake trt: input shape not set for " + t["name"])
        first = io[0]
        x = GPU.view(pointers[first["name"]], trt.nptype(first["dt"]), self.shapes[first["name"]])
        value = float(np.mean(x, dtype=np.float64)) if x.size else 0.0
        for t in io:
            if not t["is_input"]:
                out = GPU.view(pointers[t["name"]], trt.nptype(t["dt"]), self._out_shape(t))
                out[...] = value
        for name, _kind, ms in self.engine.desc["layers"]:
            GPU.clock_ms += ms
            if self.profiler is not None:
                self.profiler.report_layer_time(name, ms)
        return True

    def _pointers_from_bindings(self, bindings):
        if len(bindings) != len(self.engine.io):
            raise RuntimeError("fake trt: wrong number of bindings")
        return {t["name"]: int(b) for t, b in zip(self.engine.io, bindings, strict=True)}

    ctx_attrs.update(
        __init__=ctx_init,
        _set_shape=_set_shape,
        _out_shape=_out_shape,
        _run=_run,
        _pointers_from_bindings=_pointers_from_bindings,
        execute_v2=lambda self, bindings: self._run(self._pointers_from_bindings(bindings), "execute_v2"),
    )
    if has["bindings"]:
        ctx_attrs.update(
            set_binding_shape=lambda self, i, shape: self._set_shape(self.engine.io[i]["name"], shape),
            get_binding_shape=lambda self, i: self._out_shape(self.engine.io[i]),
            execute_async_v2=lambda self, bindings, stream_handle: self._run(
                self._pointers_from_bindings(bindings), "execute_async_v2"
            ),
        )
    if has["tensors"]:

        def set_tensor_address(self, name, ptr):
            self.engine._by_name(name)
            self.addresses[name] = int(ptr)
            return True

        def execute_async_v3(self, stream_handle):
            missing = [t["name"] for t in self.engine.io if t["name"] not in self.addresses]
            if missing:
                raise RuntimeError("fake trt: no address for " + ", ".join(missing))
            return self._run(self.addresses, "execute_async_v3")

        ctx_attrs.update(
            set_input_shape=lambda self, name, shape: self._set_shape(name, shape),
            get_tensor_shape=lambda self, name: self._out_shape(self.engine._by_name(name)),
            set_tensor_address=set_tensor_address,
            execute_async_v3=execute_async_v3,
        )
    Context = type("IExecutionContext", (), ctx_attrs)
    return trt
