"""The TensorRT backend: ONNX -> engine (cached on disk), run with device buffers on a CUDA stream.

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

from ..base import (
    Backend,
    BackendUnavailable,
    InferenceError,
    ModelLoadError,
    Option,
    check_option,
    default_cache_dir,
    short_error,
)
from .cuda_adapters import _import_cudart, _import_pycuda_driver, cuda_missing_reason, load_cuda_api
from .executor import TrtExecutor, make_layer_profiler
from .versions import api_report, build_serialized, layer_types

PRECISIONS = ("fp32", "fp16", "int8", "bf16")
CUDA_APIS = ("auto", "pycuda", "cuda-python")
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
        hint = (
            f"; a system TensorRT is installed in {os.path.dirname(where)}"
            f" (JetPack installs it for the system Python {pyver})"
        )
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
        # null: TensorRT's default (8.4+: the device's memory; 8.2 trtexec: 16 MiB)
        "workspace_mb": Option(None, "number", "builder workspace in MiB; null: TensorRT's default"),
        "int8_calibration_cache": Option(
            None, "str", "TensorRT calibration cache file, needed for precision int8 (not calibrated on the board)"
        ),
        "engine_cache": Option(True, "bool", "reuse engines built before (a build is never timed either way)"),
        "engine_cache_dir": Option(None, "str", "folder of cached engines; null: <workdir>/engines"),
        "cuda_api": Option("auto", "str", "CUDA API for the buffers; auto: pycuda, else cuda-python", CUDA_APIS),
    }
    PRECISIONS: ClassVar[tuple] = PRECISIONS

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
            raise ModelLoadError(f"int8 calibration cache {path} cannot be read: {short_error(exc)}") from exc
        return data, hashlib.sha256(data).hexdigest()

    def cache_dir(self, model_path):
        return self.options["engine_cache_dir"] or default_cache_dir(self.job_dir, model_path)

    def load(self, model_path, inputs, dtype="float32", precision="fp32"):
        try:
            trt = _trt()
        except Exception as exc:
            raise BackendUnavailable(tensorrt_missing_reason(exc)) from exc
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
            except Exception as exc:
                raise ModelLoadError(f"TensorRT build failed for {model_path}: {short_error(exc)}") from exc
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
        except Exception as exc:
            raise ModelLoadError(f"TensorRT cannot set up the engine of {model_path}: {short_error(exc)}") from exc
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
        except Exception as exc:
            raise InferenceError(f"inference failed: {short_error(exc)}") from exc

    def device_time_ms(self):
        if self._exec is None:
            return None
        try:
            return self._exec.device_ms()
        except Exception as exc:
            raise InferenceError(f"reading the CUDA events failed: {short_error(exc)}") from exc

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
        except Exception as exc:
            raise InferenceError(f"profiled run failed: {short_error(exc)}") from exc
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
