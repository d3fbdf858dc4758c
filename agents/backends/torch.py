"""PyTorch backend: eager execution of a TorchScript file or of a search space's architecture.

Model formats (task option `model_format`):
- "torchscript": a file written by torch.jit.save, loaded with torch.jit.load;
- "space": the model file is a zip holding the host's search-space package `spaces/`; with the task
  options `space` (name), `space_config` (dict) and `arch` (list of ints) the backend puts the zip on
  sys.path (zipimport), imports `spaces` and runs `spaces.create_space(space, **space_config).build(arch)`
  eagerly: the model comes in as the space's architecture, not as ONNX. The spaces code needs the
  Python (and the packages) the host uses; where the board's Python is older the import fails, and the
  error says to use "torchscript" or the onnxruntime/tensorrt backends instead.

Runs are under torch.inference_mode() (no_grad before torch 1.9), on `device` cpu or cuda[:N], with
optional channels_last, and fp16 (.half()) or bf16 on CUDA. On CUDA, torch.cuda.synchronize() brackets
every run, and device_time_ms() is the time between two CUDA events around the forward call (for eager
PyTorch this includes the gaps while Python launches kernels, unlike a TensorRT engine's compute time).

layer_profile(): torch.profiler (torch.autograd.profiler before 1.8.1) over n_runs forwards, CPU
activity (and CUDA on a GPU). For an nn.Module (the "space" format) each leaf module's forward is wrapped
in a record_function range opened by a forward pre-hook and closed by a forward hook, so a layer is a
leaf module by its qualified name (op_type: its class), timed inclusive of its ops (device time on CUDA
when the profiler attributes kernels to the range, else CPU time); the time spent outside every leaf
(functional ops such as the additions in a cell, Python overhead) is one more record, "(outside leaf
modules)". Hooks cannot be put on a TorchScript module, so for "torchscript" a layer is an aten op (self
time), which is op-level, not layer-level.

Why over 450 lines: the life cycle, the two model formats and the layer profiler hook into the same module
objects and CUDA events; the space-package import is apart (torch_space.py).
"""

import os
import sys
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
    make_inputs,
    short_error,
)
from .torch_space import SpaceImport

FORMATS = ("torchscript", "space")
PRECISIONS = ("fp32", "fp16", "bf16")
MODEL_LABEL = "edgeprof::model"
LEAF_PREFIX = "edgeprof::"
OUTSIDE = "(outside leaf modules)"
SKIP_OPS = ("ProfilerStep", "[memory]", "cudaDeviceSynchronize", "cudaStreamSynchronize")


def _torch():
    import torch

    return torch


def _event_time(evt, device):
    """(time in us, clock) of a FunctionEventAvg: device time on CUDA when there is any, else CPU."""
    if device:
        for attr in ("device_time_total", "cuda_time_total"):
            value = getattr(evt, attr, None)
            if value:
                return float(value), "cuda"
    return float(evt.cpu_time_total), "cpu"


def _self_time(evt, device):
    if device:
        for attr in ("self_device_time_total", "self_cuda_time_total"):
            value = getattr(evt, attr, None)
            if value:
                return float(value), "cuda"
    return float(evt.self_cpu_time_total), "cpu"


class TorchBackend(Backend):
    """PyTorch eager execution (TorchScript or a search space's architecture), CPU or CUDA."""

    name = "torch"
    OPTIONS: ClassVar[dict] = {
        "device": Option("cpu", "str", "cpu, cuda or cuda:N"),
        "model_format": Option("torchscript", "str", "what the model file is (the host sends 'space')", FORMATS),
        "space": Option(None, "str", "the space's name (model_format 'space'; set by the host)"),
        "space_config": Option({}, "table", "the space's config (model_format 'space'; set by the host)"),
        "arch": Option(None, "list", "the architecture (model_format 'space'; set by the host)"),
        "channels_last": Option(False, "bool", "run in the channels_last memory format"),
        "threads": Option(0, "int", "torch.set_num_threads; 0 leaves torch's default"),
        "cudnn_benchmark": Option(None, "bool", "torch.backends.cudnn.benchmark; null leaves it"),
    }
    PRECISIONS: ClassVar[tuple] = PRECISIONS
    MODEL_FORMAT = "space"  # the host sends the space's package and the arch: the board runs eager torch

    @classmethod
    def available(cls):
        try:
            _torch()
        except Exception as exc:  # noqa: BLE001
            return (
                "torch is not importable by {} (Python {}): {}; on a Jetson install NVIDIA's torch wheel "
                "for the JetPack release".format(
                    sys.executable, ".".join(str(v) for v in sys.version_info[:2]), short_error(exc, 300)
                )
            )
        return None

    @classmethod
    def versions(cls):
        out = {"numpy": np.__version__}
        try:
            torch = _torch()
            out["torch"] = torch.__version__
            out["torch_cuda"] = getattr(torch.version, "cuda", None)
            try:
                out["cudnn"] = torch.backends.cudnn.version()
            except Exception:  # noqa: BLE001
                out["cudnn"] = None
        except Exception:  # noqa: BLE001, S110
            pass
        return out

    def __init__(self, task_options=None):
        Backend.__init__(self, task_options)
        o = self.options
        n = self.name
        device = check_option(
            n,
            "device",
            o["device"],
            str,
            "cpu, cuda or cuda:N",
            ok=lambda v: v == "cpu" or v == "cuda" or (v.startswith("cuda:") and v[5:].isdigit()),
        )
        self.cuda = device.startswith("cuda")
        check_option(
            n,
            "model_format",
            o["model_format"],
            str,
            "one of " + ", ".join(FORMATS),
            ok=lambda v: v in FORMATS,
        )
        check_option(n, "channels_last", o["channels_last"], bool, "true or false")
        check_option(
            n, "threads", o["threads"], int, "an integer >= 0 (0 = torch's default)", ok=lambda v: v >= 0
        )
        check_option(n, "cudnn_benchmark", o["cudnn_benchmark"], bool, "true, false or null", allow_none=True)
        check_option(n, "space_config", o["space_config"], dict, "a mapping of the space's config")
        if o["model_format"] == "space":
            check_option(n, "space", o["space"], str, "the space's name (model_format 'space')", ok=bool)
            arch = o["arch"]
            if (
                not isinstance(arch, list)
                or not arch
                or any(isinstance(a, bool) or not isinstance(a, int) for a in arch)
            ):
                raise BackendOptionError(
                    "torch option arch: expected the architecture as a list of ints (model_format 'space'), "
                    f"got {arch!r}"
                )
        else:
            given = [k for k in ("space", "arch") if o[k] is not None]
            if given:
                raise BackendOptionError(
                    "torch option(s) {} need model_format 'space' (model_format is {!r})".format(
                        ", ".join(given), o["model_format"]
                    )
                )
        self._torch = None
        self._model = None
        self._args = None
        self._space = None
        self._device = None
        self._events = None
        self._ran = False
        self._info = {}

    # ---- loading

    def _grad_ctx(self):
        torch = self._torch
        mode = getattr(torch, "inference_mode", None)
        return mode() if mode is not None else torch.no_grad()

    def _load_model(self, torch, model_path):
        o = self.options
        if o["model_format"] == "torchscript":
            try:
                return torch.jit.load(model_path, map_location=self._device)
            except Exception as exc:
                raise ModelLoadError(
                    f"cannot load TorchScript model {model_path} (a file from torch.jit.save): {short_error(exc)}"
                ) from exc
        self._space = SpaceImport(model_path)
        spaces = self._space.open()
        try:
            space = spaces.create_space(o["space"], **dict(o["space_config"]))
            return space.build(tuple(int(a) for a in o["arch"]))
        except Exception as exc:
            # the zip's copy of `spaces` must not stay imported after a failed build: the next model, or the
            # host's own `spaces` in the same process, would find it in sys.modules
            self._space.close()
            self._space = None
            raise ModelLoadError(
                "space {!r} (config {}) cannot build arch {}: {}".format(
                    o["space"], o["space_config"], o["arch"], short_error(exc)
                )
            ) from exc

    def load(self, model_path, inputs, dtype="float32", precision="fp32"):
        try:
            torch = _torch()
        except Exception as exc:
            raise BackendUnavailable(self.available() or short_error(exc)) from exc
        self._torch = torch
        o = self.options
        if precision not in PRECISIONS:
            raise BackendUnavailable(
                f"torch backend: precision {precision!r} is not supported (fp32, fp16, bf16)"
            )
        if self.cuda:
            if not torch.cuda.is_available():
                raise BackendUnavailable(
                    "torch device {}: torch.cuda.is_available() is False (torch {}, built for CUDA {})".format(
                        o["device"], torch.__version__, getattr(torch.version, "cuda", None)
                    )
                )
            self._device = torch.device(o["device"])
            if self._device.index is not None:
                torch.cuda.set_device(self._device.index)
        else:
            self._device = torch.device("cpu")
        if precision == "fp16" and not self.cuda:
            raise BackendUnavailable("torch backend: fp16 (.half()) runs on CUDA only; use fp32 on the CPU")
        if precision == "bf16" and not hasattr(torch, "bfloat16"):
            raise BackendUnavailable(f"torch {torch.__version__} has no bfloat16")
        if o["threads"]:
            torch.set_num_threads(o["threads"])
        if o["cudnn_benchmark"] is not None:
            torch.backends.cudnn.benchmark = o["cudnn_benchmark"]
        if not os.path.isfile(model_path):
            raise ModelLoadError(f"model file not found: {model_path}")
        model = self._load_model(torch, model_path)
        try:
            model = model.eval().to(self._device)
            if precision == "fp16":
                model = model.half()
            elif precision == "bf16":
                model = model.to(torch.bfloat16)
            if o["channels_last"]:
                model = model.to(memory_format=torch.channels_last)
        except Exception as exc:
            raise ModelLoadError(f"cannot move the model to {self._device} / {precision}: {short_error(exc)}") from exc
        self._model = model
        feeds = make_inputs(inputs, dtype, seed=0)
        float_dtype = {"fp16": torch.float16, "bf16": getattr(torch, "bfloat16", None)}.get(precision)
        args = []
        for name in inputs:  # positional, in the task's order
            t = torch.from_numpy(feeds[name]).to(self._device)
            if float_dtype is not None and t.is_floating_point():
                t = t.to(float_dtype)
            if o["channels_last"] and t.dim() == 4:
                t = t.contiguous(memory_format=torch.channels_last)
            args.append(t)
        self._args = tuple(args)
        if self.cuda:
            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        t0 = time.monotonic()
        try:
            with self._grad_ctx():
                out = self._model(*self._args)
            if self.cuda:
                torch.cuda.synchronize()
        except Exception as exc:
            raise ModelLoadError(
                f"the model does not run on inputs { ({k: list(v) for k, v in inputs.items()}) }: {short_error(exc)}"
            ) from exc
        self._info = {
            "first_run_s": time.monotonic() - t0,
            "inputs": {k: list(v) for k, v in inputs.items()},
            "outputs": _shapes(out),
            "params": int(sum(p.numel() for p in model.parameters())),
            "precision": precision,
        }
        if self._space is not None:
            self._info["space_source"] = getattr(self._space.module, "__file__", None)
        return self

    # ---- running

    def run_once(self):
        if self._model is None:
            raise InferenceError("run_once() called before load()")
        torch = self._torch
        try:
            with self._grad_ctx():
                if self.cuda:
                    torch.cuda.synchronize()
                    self._events[0].record()
                self._model(*self._args)
                if self.cuda:
                    self._events[1].record()
                    torch.cuda.synchronize()
            self._ran = True
        except Exception as exc:
            raise InferenceError(f"inference failed: {short_error(exc)}") from exc

    def device_time_ms(self):
        if not self.cuda or not self._ran or self._events is None:
            return None
        return float(self._events[0].elapsed_time(self._events[1]))

    # ---- layer profile

    def _profiler(self, torch):
        prof = getattr(torch, "profiler", None)
        if prof is not None and hasattr(prof, "ProfilerActivity"):
            acts = [prof.ProfilerActivity.CPU]
            if self.cuda:
                acts.append(prof.ProfilerActivity.CUDA)
            return prof.profile(activities=acts)
        return torch.autograd.profiler.profile(use_cuda=self.cuda)

    def _leaf_hooks(self, torch, order):
        record_function = torch.autograd.profiler.record_function
        stack = []
        handles = []
        types = {}

        def pre(label, name):
            def hook(module, inputs):
                if name not in types:
                    types[name] = type(module).__name__
                    order.append(name)
                rf = record_function(label)
                rf.__enter__()
                stack.append(rf)

            return hook

        def post(module, inputs, output):
            if stack:
                stack.pop().__exit__(None, None, None)

        for name, module in self._model.named_modules():
            if name and not any(True for _ in module.children()):
                handles.append(module.register_forward_pre_hook(pre(LEAF_PREFIX + name, name)))
                handles.append(module.register_forward_hook(post))
        return handles, types

    def layer_profile(self, n_runs=10):
        if self._model is None:
            raise InferenceError("layer_profile() called before load()")
        torch = self._torch
        n_runs = max(1, int(n_runs))
        script = isinstance(self._model, torch.jit.ScriptModule)
        order = []
        handles, types = ([], {}) if script else self._leaf_hooks(torch, order)
        try:
            self.run_once()  # outside the profiler: nothing left to warm, but the hooks are new
            with self._profiler(torch) as prof:
                for _ in range(n_runs):
                    with self._grad_ctx(), torch.autograd.profiler.record_function(MODEL_LABEL):
                        self._model(*self._args)
                    if self.cuda:
                        torch.cuda.synchronize()
        except Exception as exc:
            raise InferenceError(f"profiled run failed: {short_error(exc)}") from exc
        finally:
            for h in handles:
                h.remove()
        stats = {e.key: e for e in prof.key_averages()}
        records = []
        clocks = set()
        if script:
            for key, evt in stats.items():
                if key == MODEL_LABEL or key.startswith(LEAF_PREFIX) or key.startswith(SKIP_OPS):
                    continue
                us, clock = _self_time(evt, self.cuda)
                if us > 0:
                    clocks.add(clock)
                    records.append(
                        {
                            "name": key,
                            "op_type": key,
                            "time_ms": us / 1e3 / n_runs,
                            "calls": evt.count / float(n_runs),
                        }
                    )
            records.sort(key=lambda r: -r["time_ms"])
            self._info["layer_profile"] = "aten ops (TorchScript: no module hooks)"
        else:
            total = 0.0
            for name in order:
                evt = stats.get(LEAF_PREFIX + name)
                if evt is None:
                    continue
                us, clock = _event_time(evt, self.cuda)
                clocks.add(clock)
                total += us
                records.append(
                    {
                        "name": name,
                        "op_type": types[name],
                        "time_ms": us / 1e3 / n_runs,
                        "calls": evt.count / float(n_runs),
                    }
                )
            model = stats.get(MODEL_LABEL)
            if model is not None:
                us, clock = _event_time(model, self.cuda)
                if us > total:
                    records.append(
                        {
                            "name": OUTSIDE,
                            "op_type": "other",
                            "time_ms": (us - total) / 1e3 / n_runs,
                            "calls": 1.0,
                        }
                    )
            self._info["layer_profile"] = "leaf modules (record_function ranges from forward hooks)"
        self._info["layer_profile_clock"] = "+".join(sorted(clocks)) or None
        return records

    # ---- report

    def info(self):
        o = self.options
        out = {
            "torch": self.versions().get("torch"),
            "device": o["device"],
            "model_format": o["model_format"],
            "channels_last": o["channels_last"],
        }
        if o["model_format"] == "space":
            out.update(space=o["space"], space_config=dict(o["space_config"]), arch=list(o["arch"]))
        if self._model is not None:
            torch = self._torch
            out["threads"] = torch.get_num_threads()
            out["interop_threads"] = torch.get_num_interop_threads()
            out["grad_mode"] = "inference_mode" if hasattr(torch, "inference_mode") else "no_grad"
            out["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
            if self.cuda:
                out["gpu"] = torch.cuda.get_device_name(self._device)
        out.update(self._info)
        return out

    def close(self):
        self._model = None
        self._args = None
        self._events = None
        if self._space is not None:
            self._space.close()
            self._space = None


def _shapes(out):
    """Output shapes of a forward's result (a tensor, or a tuple/list/dict of them)."""
    if hasattr(out, "shape"):
        return [list(out.shape)]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        shapes = []
        for o in out:
            shapes.extend(_shapes(o))
        return shapes
    return []
