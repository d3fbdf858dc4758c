"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers.

On the CPU provider `sess.run(None, feeds)` returns host arrays, so each call is synchronized. With a GPU
provider (CUDAExecutionProvider, TensorrtExecutionProvider) the inputs are bound once on the device and the
outputs bound to the device (IO binding), and each run is run_with_iobinding + synchronize_outputs: the
timed run is the device work, without the host<->device copies ORT would otherwise add to every run
(`io_binding: false` measures those copies too). backend_info["timed_copies"] says which.

GPU provider options come from task options (device_id, cudnn_conv_algo_search, trt_fp16_enable,
trt_engine_cache_enable/path, ...), or per provider as ["Name", {options}] entries of `providers`
(those win). Precision fp16/int8 on the TensorRT provider sets trt_fp16_enable / trt_int8_enable. The
first run on a GPU provider (where the TensorRT provider builds its engines: minutes on a Jetson) happens
in load(), never timed (backend_info["first_run_s"]). A requested provider that ORT does not have, or that
the session silently dropped (ORT falls back to CPU when CUDA libraries are missing), is
BackendUnavailable.

layer_profile() runs a separate short session with enable_profiling after the timed phase and reads its
Chrome-trace JSON: per node, the `dur` (us) of the "Node" events named <node>_kernel_time, inside the
"model_run" windows after a warm-up run, with args.op_name and args.provider. On GPU providers these are
host-side times of each kernel call (launch and synchronization as ORT sees them), not CUDA kernel times;
the TensorRT provider shows each TensorRT subgraph as one node.

The option parsing is in onnxruntime_options.py, the profile parser in onnxruntime_profile.py.
"""

import os
import shutil
import tempfile
import time
from typing import ClassVar

import numpy as np

from .base import (
    Backend,
    BackendOptionError,
    BackendUnavailable,
    InferenceError,
    ModelLoadError,
    Option,
    check_option,
    default_cache_dir,
    make_inputs,
    short_error,
)
from .onnxruntime_options import (
    CONV_ALGO_SEARCH,
    CPU_EP,
    CUDA_EP,
    CUDA_KEYS,
    EXEC_MODES,
    GPU_EPS,
    OPT_LEVELS,
    TRT_EP,
    TRT_KEYS,
    choice,
    parse_providers,
    provider_name,
    thread_count,
)
from .onnxruntime_profile import read_profile

ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}
FLOAT_DTYPES = ("float32", "float16", "float64")
def _ort():
    import onnxruntime

    return onnxruntime


_short = short_error


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime InferenceSession with explicit providers, threads and graph optimization level."""

    name = "onnxruntime"
    OPTIONS: ClassVar[dict] = dict(
        [
            ("providers", Option([CPU_EP], "list", "execution providers in order: names, or [name, {options}]")),
            ("intra_op_threads", Option(0, "int", "threads inside one operator; 0: ONNX Runtime's default")),
            ("inter_op_threads", Option(0, "int", "threads across operators (parallel mode); 0: the default")),
            ("graph_optimization_level", Option("all", "str", "graph optimizations: " + ", ".join(OPT_LEVELS))),
            ("execution_mode", Option("sequential", "str", "operator scheduling: sequential or parallel")),
            ("device_id", Option(0, "int", "GPU index of the GPU providers")),
            (
                "io_binding",
                Option("auto", "any", "inputs and outputs bound on the device; auto: with a GPU provider; "
                       "false: copies are timed", ("auto", True, False)),
            ),
        ]
        + [(k, Option(None, "any", "CUDAExecutionProvider option, passed on when set")) for k in CUDA_KEYS]
        + [(k, Option(None, "any", "TensorrtExecutionProvider option, passed on when set")) for k in TRT_KEYS]
    )
    PRECISIONS: ClassVar[tuple] = ("fp32", "fp16", "int8")  # fp16/int8 through the TensorRT provider

    @classmethod
    def available(cls):
        try:
            _ort()
        except Exception as exc:  # noqa: BLE001
            return f"onnxruntime is not importable: {_short(exc)}"
        return None

    @classmethod
    def versions(cls):
        out = {"numpy": np.__version__}
        try:
            ort = _ort()
            out["onnxruntime"] = ort.__version__
            out["onnxruntime_providers"] = list(ort.get_available_providers())
        except Exception:  # noqa: BLE001, S110
            pass
        return out

    def __init__(self, task_options=None):
        Backend.__init__(self, task_options)
        o = self.options
        self.providers = parse_providers(o["providers"])
        self.intra_op_threads = thread_count(o["intra_op_threads"], "intra_op_threads")
        self.inter_op_threads = thread_count(o["inter_op_threads"], "inter_op_threads")
        self.graph_optimization_level = choice(
            o["graph_optimization_level"], OPT_LEVELS, "graph_optimization_level"
        )
        self.execution_mode = choice(o["execution_mode"], EXEC_MODES, "execution_mode")
        self.device_id = check_option(
            "onnxruntime", "device_id", o["device_id"], int, "a GPU index >= 0", ok=lambda v: v >= 0
        )
        if o["io_binding"] not in ("auto", True, False):
            raise BackendOptionError(
                "onnxruntime option io_binding: expected auto, true or false, got {!r}".format(
                    o["io_binding"]
                )
            )
        search = o["cudnn_conv_algo_search"]
        if search is not None and str(search).upper() not in CONV_ALGO_SEARCH:
            raise BackendOptionError(
                "onnxruntime option cudnn_conv_algo_search: expected one of {}, got {!r}".format(
                    ", ".join(CONV_ALGO_SEARCH), search
                )
            )
        for key in CUDA_KEYS + TRT_KEYS:
            value = o[key]
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise BackendOptionError(
                    f"onnxruntime option {key}: expected a string, number or boolean, got {value!r}"
                )
        names = [provider_name(p) for p in self.providers]
        for keys, ep in ((CUDA_KEYS, CUDA_EP), (TRT_KEYS, TRT_EP)):
            given = [k for k in keys if o[k] is not None]
            if given and ep not in names:
                raise BackendOptionError(
                    "onnxruntime option(s) {} apply to {}, which is not in providers ({})".format(
                        ", ".join(given), ep, ", ".join(names)
                    )
                )
        self.gpu = any(n in GPU_EPS for n in names)
        self.io_binding = self.gpu if o["io_binding"] == "auto" else bool(o["io_binding"])
        self.io_device = "cuda" if self.gpu else "cpu"  # io_binding true on the CPU binds host buffers
        self._sess = None
        self._feeds = None
        self._io = None
        self._device_values = []
        self._input_info = {}
        self._precision = None
        self._model_path = None
        self._effective = None
        self._first_run_s = None

    def _session_options(self, ort):
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.intra_op_threads
        so.inter_op_num_threads = self.inter_op_threads
        so.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, OPT_LEVELS[self.graph_optimization_level]
        )
        so.execution_mode = getattr(ort.ExecutionMode, EXEC_MODES[self.execution_mode])
        return so

    def effective_providers(self, precision="fp32", model_path=None):
        """The providers list for InferenceSession: task options folded into each GPU provider's options."""
        o = self.options
        out = []
        for p in self.providers:
            name = provider_name(p)
            explicit = dict(p[1]) if not isinstance(p, str) else {}
            opts = {}
            if name in GPU_EPS:
                opts["device_id"] = self.device_id
            if name == CUDA_EP:
                for key in CUDA_KEYS:
                    if o[key] is not None:
                        opts[key] = str(o[key]).upper() if key == "cudnn_conv_algo_search" else o[key]
            if name == TRT_EP:
                for key in TRT_KEYS:
                    if o[key] is not None:
                        opts[key] = o[key]
                if precision == "fp16":
                    opts["trt_fp16_enable"] = True
                if precision == "int8":
                    opts["trt_int8_enable"] = True
                if (
                    opts.get("trt_engine_cache_enable")
                    and not opts.get("trt_engine_cache_path")
                    and model_path
                ):
                    opts["trt_engine_cache_path"] = os.path.join(
                        default_cache_dir(self.job_dir, model_path), "ort-tensorrt"
                    )
            opts.update(explicit)
            out.append((name, opts) if (opts or not isinstance(p, str)) else name)
        return out

    def _check_precision(self, precision, dtype):
        names = [provider_name(p) for p in self.providers]
        trt_ep = TRT_EP in names
        if precision == "fp32" or (precision == "fp16" and (trt_ep or dtype == "float16")):
            pass
        elif precision == "int8" and trt_ep:
            table = self.options["trt_int8_calibration_table_name"]
            explicit = [p[1] for p in self.providers if not isinstance(p, str) and p[0] == TRT_EP]
            if not table and not any(e.get("trt_int8_calibration_table_name") for e in explicit):
                raise ModelLoadError(
                    "onnxruntime precision int8 on TensorrtExecutionProvider needs a calibration table: set the "
                    "task option trt_int8_calibration_table_name (or use a model with Q/DQ nodes in fp32)"
                )
        else:
            raise BackendUnavailable(
                "onnxruntime backend: precision {!r} needs {}".format(
                    precision,
                    "a model exported in float16 (dtype float16), or TensorrtExecutionProvider"
                    if precision == "fp16"
                    else "TensorrtExecutionProvider (trt_int8_enable) or a quantized model run as fp32",
                )
            )

    def _make_session(self, ort, model_path, profile_prefix=None):
        so = self._session_options(ort)
        if profile_prefix:
            so.enable_profiling = True
            so.profile_file_prefix = profile_prefix
        return ort.InferenceSession(model_path, sess_options=so, providers=self._effective)

    def _bind(self, ort, sess, feeds):
        """IO binding: inputs copied once to the device, outputs left on the device. (io, ortvalues).

        Returns the binding and the OrtValues, which must live as long as it."""
        io = sess.io_binding()
        values = []
        for name, arr in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(arr, self.io_device, self.device_id)
            values.append(value)
            if hasattr(io, "bind_ortvalue_input"):
                io.bind_ortvalue_input(name, value)
            else:
                io.bind_input(
                    name, self.io_device, self.device_id, arr.dtype, list(arr.shape), value.data_ptr()
                )
        for out in sess.get_outputs():
            io.bind_output(out.name, self.io_device, self.device_id)
        return io, values

    @staticmethod
    def _run(sess, io, feeds):
        if io is not None:
            sess.run_with_iobinding(io)
            if hasattr(io, "synchronize_outputs"):
                io.synchronize_outputs()
        else:
            sess.run(None, feeds)

    def load(self, model_path, inputs, dtype="float32", precision="fp32"):
        try:
            ort = _ort()
        except Exception as exc:
            raise BackendUnavailable(f"onnxruntime is not importable: {_short(exc)}") from exc
        self._check_precision(precision, dtype)
        available = list(ort.get_available_providers())
        for p in self.providers:
            name = provider_name(p)
            if name not in available:
                raise BackendUnavailable(
                    "execution provider {} is not available (available: {})".format(
                        name, ", ".join(available)
                    )
                )
        if not os.path.isfile(model_path):
            raise ModelLoadError(f"model file not found: {model_path}")
        self._effective = self.effective_providers(precision, model_path)
        for p in self._effective:
            if not isinstance(p, str) and p[1].get("trt_engine_cache_path"):
                try:
                    os.makedirs(p[1]["trt_engine_cache_path"], exist_ok=True)
                except OSError:
                    pass
        try:
            self._sess = self._make_session(ort, model_path)
        except Exception as exc:
            raise ModelLoadError(f"cannot load model {model_path}: {_short(exc)}") from exc
        used = list(self._sess.get_providers())
        dropped = [provider_name(p) for p in self.providers if provider_name(p) not in used]
        if dropped:
            raise BackendUnavailable(
                "onnxruntime did not use {} for this session (it runs on {}): the provider's libraries "
                "(CUDA, cuDNN, TensorRT) are probably missing or of the wrong version".format(
                    ", ".join(dropped), ", ".join(used)
                )
            )
        dtypes = self._check_inputs(inputs, dtype)
        self._precision = precision
        self._model_path = model_path
        self._feeds = make_inputs(inputs, dtypes, seed=0)
        if self.io_binding:
            try:
                self._io, self._device_values = self._bind(ort, self._sess, self._feeds)
            except Exception as exc:
                raise ModelLoadError(f"IO binding failed: {_short(exc)}") from exc
        if self.gpu:  # the first run allocates, tunes and (TensorRT provider) builds engines: not timed
            t0 = time.monotonic()
            try:
                self._run(self._sess, self._io, self._feeds)
            except Exception as exc:
                raise ModelLoadError(f"first run on {', '.join(used)} failed: {_short(exc)}") from exc
            self._first_run_s = time.monotonic() - t0
        return self

    def _check_inputs(self, inputs, dtype):
        """{name: dtype} for the feeds; ModelLoadError when names, ranks, static dims or types differ."""
        expected = {}
        for node in self._sess.get_inputs():
            expected[node.name] = (list(node.shape), node.type)
        self._input_info = {
            k: {"shape": [d if isinstance(d, int) else str(d) for d in s], "type": t}
            for k, (s, t) in expected.items()
        }

        def describe():
            return ", ".join(
                "{} {} {}".format(k, v["shape"], v["type"]) for k, v in sorted(self._input_info.items())
            )

        if sorted(inputs) != sorted(expected):
            raise ModelLoadError(
                "input names do not match the model: the task gives {}, the model expects {}".format(
                    ", ".join(sorted(inputs)), describe()
                )
            )
        dtypes = {}
        for name, shape in inputs.items():
            model_shape, model_type = expected[name]
            static = [d if isinstance(d, int) and d > 0 else None for d in model_shape]
            if len(static) != len(shape) or any(s is not None and s != d for s, d in zip(static, shape)):
                raise ModelLoadError(
                    f"input {name}: shape {list(shape)} does not match the model (expected {describe()})"
                )
            model_dtype = ORT_TYPES.get(model_type)
            if model_dtype is None:
                raise ModelLoadError(f"input {name}: unsupported input type {model_type}")
            if model_dtype in FLOAT_DTYPES and model_dtype != dtype:
                raise ModelLoadError(
                    f"input {name}: the model expects {model_dtype} but the task's dtype is {dtype}"
                )
            dtypes[name] = model_dtype
        return dtypes

    def run_once(self):
        try:
            self._run(self._sess, self._io, self._feeds)
        except Exception as exc:
            if self._sess is None:
                raise InferenceError("run_once() called before load()") from None
            raise InferenceError(f"inference failed: {_short(exc)}") from exc

    def layer_profile(self, n_runs=10, warmup_runs=1):
        """Per-node times from a separate profiling session (same options and providers), after timing."""
        if self._sess is None:
            raise InferenceError("layer_profile() called before load()")
        ort = _ort()
        folder = tempfile.mkdtemp(prefix="edgeprof-ort-profile-")
        try:
            try:
                sess = self._make_session(ort, self._model_path, os.path.join(folder, "ort"))
                io = self._bind(ort, sess, self._feeds)[0] if self._io is not None else None
                for _ in range(warmup_runs + max(1, int(n_runs))):
                    self._run(sess, io, self._feeds)
                path = sess.end_profiling()
            except Exception as exc:
                raise InferenceError(f"profiling session failed: {_short(exc)}") from exc
            if not os.path.isfile(path):
                path = os.path.join(folder, os.path.basename(path))
            records, _ = read_profile(path, skip_runs=warmup_runs)
            return records
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def info(self):
        out = {
            "onnxruntime": self.versions().get("onnxruntime"),
            "providers_requested": [p if isinstance(p, str) else [p[0], p[1]] for p in self.providers],
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "graph_optimization_level": self.graph_optimization_level,
            "execution_mode": self.execution_mode,
            "precision": self._precision,
            "io_binding": self.io_binding,
            "timed_copies": not (self.io_binding and self.gpu),
        }
        if self.gpu:
            out["device_id"] = self.device_id
        if self._effective is not None:
            out["providers_effective"] = [p if isinstance(p, str) else [p[0], p[1]] for p in self._effective]
        if self._first_run_s is not None:
            out["first_run_s"] = self._first_run_s
        if self._sess is not None:
            out["providers"] = list(self._sess.get_providers())
            try:
                out["provider_options"] = self._sess.get_provider_options()
            except Exception:  # noqa: BLE001, S110
                pass
            out["inputs"] = self._input_info
            out["outputs"] = [o.name for o in self._sess.get_outputs()]
        return out

    def close(self):
        self._io = None
        self._device_values = []
        self._sess = None
        self._feeds = None
