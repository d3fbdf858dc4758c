"""The executor of one TensorRT execution context, and the per-layer profiler.

One run is trtexec's "Latency": H2D copies + execute + D2H copies on one non-default stream,
synchronized; device_ms() is its "GPU Compute Time": CUDA events recorded around the execute call only.
"""

from ..base import InferenceError, ModelLoadError, make_inputs
from .versions import check_shapes, io_tensors, uses_tensor_api

FLOAT_DTYPES = ("float32", "float16", "float64")


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
