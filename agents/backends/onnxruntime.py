"""ONNX Runtime backend (CPU execution provider; other providers pass through when installed).

`sess.run(None, feeds)` returns host arrays, so each call is synchronized. GPU providers would include
host<->device copies in every run; IO binding comes with the GPU backends.
"""

import os
from typing import ClassVar

import numpy as np

from .base import (
    Backend,
    BackendOptionError,
    BackendUnavailable,
    InferenceError,
    ModelLoadError,
    make_inputs,
)

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
OPT_LEVELS = {
    "disable_all": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
EXEC_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}
FLOAT_DTYPES = ("float32", "float16", "float64")
MAX_MESSAGE = 600


def _ort():
    import onnxruntime

    return onnxruntime


def _short(exc):
    text = f"{type(exc).__name__}: {str(exc).strip()}"
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def _choice(value, table, option):
    key = str(value).lower()
    if key.startswith("ort_"):  # also accept ORT's own enum names
        for short, full in table.items():
            if full.lower() == key:
                return short
    if key not in table:
        raise BackendOptionError(
            "onnxruntime option {}: expected one of {}, got {!r}".format(option, ", ".join(table), value)
        )
    return key


def _threads(value, option):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BackendOptionError(
            f"onnxruntime option {option}: expected an integer >= 0 (0 = ORT decides), got {value!r}"
        )
    return value


def _providers(value):
    """Provider list: names, or [name, {options}] pairs as JSON allows no tuples."""
    if not isinstance(value, list) or not value:
        raise BackendOptionError(f"onnxruntime option providers: expected a non-empty list, got {value!r}")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(item)
        elif (
            isinstance(item, (list, tuple))
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], dict)
        ):
            out.append((item[0], dict(item[1])))
        else:
            raise BackendOptionError(
                f"onnxruntime option providers: each entry is a name or [name, {{options}}], got {item!r}"
            )
    return out


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime InferenceSession with explicit providers, threads and graph optimization level."""

    name = "onnxruntime"
    OPTIONS: ClassVar[dict] = {
        "providers": ["CPUExecutionProvider"],
        "intra_op_threads": 0,
        "inter_op_threads": 0,
        "graph_optimization_level": "all",
        "execution_mode": "sequential",
    }

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
        self.providers = _providers(o["providers"])
        self.intra_op_threads = _threads(o["intra_op_threads"], "intra_op_threads")
        self.inter_op_threads = _threads(o["inter_op_threads"], "inter_op_threads")
        self.graph_optimization_level = _choice(
            o["graph_optimization_level"], OPT_LEVELS, "graph_optimization_level"
        )
        self.execution_mode = _choice(o["execution_mode"], EXEC_MODES, "execution_mode")
        self._sess = None
        self._feeds = None
        self._input_info = {}
        self._precision = None

    def _session_options(self, ort):
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.intra_op_threads
        so.inter_op_num_threads = self.inter_op_threads
        so.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel, OPT_LEVELS[self.graph_optimization_level]
        )
        so.execution_mode = getattr(ort.ExecutionMode, EXEC_MODES[self.execution_mode])
        return so

    def load(self, model_path, inputs, dtype="float32", precision="fp32"):
        try:
            ort = _ort()
        except Exception as exc:  # noqa: BLE001
            raise BackendUnavailable(f"onnxruntime is not importable: {_short(exc)}")
        if precision not in ("fp32", "fp16") or (precision == "fp16" and dtype != "float16"):
            raise BackendUnavailable(
                "onnxruntime backend runs the graph as exported: precision {!r} needs {}".format(
                    precision,
                    "a model exported in float16 (dtype float16)"
                    if precision == "fp16"
                    else "a backend that supports it (not available in this agent version)",
                )
            )
        available = list(ort.get_available_providers())
        for p in self.providers:
            name = p if isinstance(p, str) else p[0]
            if name not in available:
                raise BackendUnavailable(
                    "execution provider {} is not available (available: {})".format(
                        name, ", ".join(available)
                    )
                )
        if not os.path.isfile(model_path):
            raise ModelLoadError(f"model file not found: {model_path}")
        try:
            self._sess = ort.InferenceSession(
                model_path, sess_options=self._session_options(ort), providers=self.providers
            )
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"cannot load model {model_path}: {_short(exc)}")
        dtypes = self._check_inputs(inputs, dtype)
        self._precision = precision
        self._feeds = make_inputs(inputs, dtypes, seed=0)
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
            self._sess.run(None, self._feeds)
        except Exception as exc:  # noqa: BLE001
            if self._sess is None:
                raise InferenceError("run_once() called before load()")
            raise InferenceError(f"inference failed: {_short(exc)}")

    def info(self):
        out = {
            "onnxruntime": self.versions().get("onnxruntime"),
            "providers_requested": [p if isinstance(p, str) else [p[0], p[1]] for p in self.providers],
            "intra_op_threads": self.intra_op_threads,
            "inter_op_threads": self.inter_op_threads,
            "graph_optimization_level": self.graph_optimization_level,
            "execution_mode": self.execution_mode,
            "precision": self._precision,
        }
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
        self._sess = None
        self._feeds = None
