"""A fake `onnxruntime` with GPU execution providers, IO binding and profiling (reads models with onnx).

It runs nothing real: outputs are zeros of the declared shapes (symbolic dims take the first input's
batch), every call is logged in `ort.calls`, and a profiling session writes a Chrome-trace JSON with one
"model_run" window per run and one "<node>_kernel_time" event per node (1 us per node).
"""

import json
import time
import types

import numpy as np

ONNX_TYPES = {1: "tensor(float)", 10: "tensor(float16)", 7: "tensor(int64)"}
NP = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


def make_ort(
    available=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
    drops=(),
    version="1.16.3",
):
    """drops: providers a session silently leaves out (as ORT does when CUDA libraries are missing)."""
    ort = types.ModuleType("onnxruntime")
    ort.__version__ = version
    ort.calls = []
    ort.get_available_providers = lambda: list(available)

    class GraphOptimizationLevel:
        ORT_DISABLE_ALL, ORT_ENABLE_BASIC, ORT_ENABLE_EXTENDED, ORT_ENABLE_ALL = 0, 1, 2, 99

    class ExecutionMode:
        ORT_SEQUENTIAL, ORT_PARALLEL = 0, 1

    class SessionOptions:
        def __init__(self):
            self.intra_op_num_threads = 0
            self.inter_op_num_threads = 0
            self.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
            self.execution_mode = ExecutionMode.ORT_SEQUENTIAL
            self.enable_profiling = False
            self.profile_file_prefix = "onnxruntime_profile_"

    class NodeArg:
        def __init__(self, name, shape, type_):
            self.name, self.shape, self.type = name, shape, type_

    class OrtValue:
        def __init__(self, arr, device, device_id):
            self.arr, self.device, self.device_id = arr, device, device_id

        @staticmethod
        def ortvalue_from_numpy(arr, device_type="cpu", device_id=0):
            ort.calls.append(("ortvalue_from_numpy", device_type, device_id, tuple(arr.shape)))
            return OrtValue(np.array(arr), device_type, device_id)

        def data_ptr(self):
            return self.arr.ctypes.data

        def device_name(self):
            return self.device

    class IOBinding:
        def __init__(self, sess):
            self.sess = sess
            self.inputs = {}
            self.outputs = {}
            self.results = None

        def bind_ortvalue_input(self, name, value):
            ort.calls.append(("bind_ortvalue_input", name, value.device, value.device_id))
            self.inputs[name] = value

        def bind_output(self, name, device_type="cpu", device_id=0, *args):
            ort.calls.append(("bind_output", name, device_type, device_id))
            self.outputs[name] = (device_type, device_id)

        def synchronize_outputs(self):
            ort.calls.append(("synchronize_outputs",))

        def copy_outputs_to_cpu(self):
            return list(self.results or [])

    class InferenceSession:
        def __init__(self, path, sess_options=None, providers=None):
            import onnx

            self.options = sess_options or SessionOptions()
            self.providers = list(providers or ["CPUExecutionProvider"])
            ort.calls.append(("InferenceSession", self.providers, bool(self.options.enable_profiling)))
            try:
                model = onnx.load(path)
            except Exception as exc:
                raise RuntimeError(f"[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : {exc}") from exc
            init = {t.name for t in model.graph.initializer}

            def arg(vi):
                dims = [
                    d.dim_value if d.HasField("dim_value") else d.dim_param
                    for d in vi.type.tensor_type.shape.dim
                ]
                return NodeArg(vi.name, dims, ONNX_TYPES[vi.type.tensor_type.elem_type])

            self.inputs = [arg(vi) for vi in model.graph.input if vi.name not in init]
            self.outputs = [arg(vi) for vi in model.graph.output]
            self.nodes = [(n.name or f"{n.op_type}_{i}", n.op_type) for i, n in enumerate(model.graph.node)]
            self.events = []
            self.t0 = time.perf_counter()

        def _names(self):
            return [p if isinstance(p, str) else p[0] for p in self.providers]

        def get_providers(self):
            return [n for n in self._names() if n not in drops]

        def get_provider_options(self):
            out = {}
            for p in self.providers:
                name = p if isinstance(p, str) else p[0]
                opts = {} if isinstance(p, str) else p[1]
                out[name] = {k: str(v) for k, v in opts.items()}
            return out

        def get_inputs(self):
            return self.inputs

        def get_outputs(self):
            return self.outputs

        def io_binding(self):
            return IOBinding(self)

        def _compute(self, feeds):
            batch = next(iter(feeds.values())).shape[0] if feeds else 1
            outs = [
                np.zeros([d if isinstance(d, int) and d > 0 else batch for d in o.shape], NP[o.type])
                for o in self.outputs
            ]
            if self.options.enable_profiling:
                ts = len(self.events) * 10.0 + 100.0
                provider = self.get_providers()[0]
                start = ts
                for name, op in self.nodes:
                    ts += 1.0
                    self.events.append(
                        {
                            "cat": "Node",
                            "name": name + "_fence_before",
                            "ts": ts,
                            "dur": 0,
                            "ph": "X",
                            "args": {"op_name": op},
                        }
                    )
                    self.events.append(
                        {
                            "cat": "Node",
                            "name": name + "_kernel_time",
                            "ts": ts,
                            "dur": 1,
                            "ph": "X",
                            "args": {"op_name": op, "provider": provider},
                        }
                    )
                self.events.append(
                    {
                        "cat": "Session",
                        "name": "model_run",
                        "ts": start,
                        "dur": ts + 1 - start,
                        "ph": "X",
                        "args": {},
                    }
                )
            return outs

        def run(self, output_names, feeds, run_options=None):
            ort.calls.append(("run",))
            return self._compute(feeds)

        def run_with_iobinding(self, io, run_options=None):
            ort.calls.append(("run_with_iobinding",))
            io.results = self._compute({k: v.arr for k, v in io.inputs.items()})

        def end_profiling(self):
            path = f"{self.options.profile_file_prefix}_fake.json"
            with open(path, "w") as f:
                json.dump(self.events, f)
            ort.calls.append(("end_profiling", path))
            return path

    ort.GraphOptimizationLevel = GraphOptimizationLevel
    ort.ExecutionMode = ExecutionMode
    ort.SessionOptions = SessionOptions
    ort.OrtValue = OrtValue
    ort.InferenceSession = InferenceSession
    return ort
