"""The Backend interface: what a runtime must offer to be measured.

A backend module imports its runtime lazily (inside functions), so a board without TensorRT or torch can
still import the agent, list backends and report why one is unavailable.

Life cycle, as the worker drives it:

    reason = cls.available()                      # None, or why not (the task becomes an error result)
    b = cls(task["options"]); b.set_job_dir(dir)  # options checked here, no runtime imported yet
    b.load(model, inputs, dtype, precision)       # build/deserialize, allocate; never timed
    b.run_once() ...                              # warm-up, then timed runs (host clock around each)
        b.device_time_ms()                        # optional, after each run, outside the timed window
    b.layer_profile(n_runs)                       # optional, after the timed phase, never inside it
    b.info(); b.close()
"""

import os
from typing import ClassVar

import numpy as np

from ..options import Option, option_defaults, option_problems  # noqa: F401 (Option re-exported)


class BackendError(Exception):
    """Base class of backend errors; the worker records the subclass name as error.type."""


class BackendUnavailable(BackendError):
    """The runtime is missing here, or cannot do what the task asks (provider, precision)."""


class BackendOptionError(BackendError):
    """A task's `options` has an unknown key or a bad value for this backend."""


class ModelLoadError(BackendError):
    """The model file is missing, corrupt, or does not match the task's inputs."""


class InferenceError(BackendError):
    """An inference call failed."""


NUMPY_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "float64": np.float64,
    "int8": np.int8,
    "uint8": np.uint8,
    "int32": np.int32,
    "int64": np.int64,
    "bool": np.bool_,
}


# What the host can send a backend (Backend.MODEL_FORMAT): an ONNX file, or the host's spaces package as
# a zip with the architecture in the task options (see the Backend docstring).
MODEL_FORMATS = ("onnx", "space")

MAX_MESSAGE = 600


def short_error(exc, limit=MAX_MESSAGE):
    """'Type: message' of an exception, cut to `limit` characters (runtime errors can be pages long)."""
    text = f"{type(exc).__name__}: {str(exc).strip()}"
    return text if len(text) <= limit else text[:limit] + "..."


def default_cache_dir(job_dir, model_path, kind="engines"):
    """Where built engines are kept between jobs: <workdir>/<kind>.

    A job folder is <workdir>/jobs/<job id>, so <job folder>/../../<kind>; without a job folder, models
    live in <workdir>/models, so <model folder>/../<kind> is the same place.
    """
    if job_dir:
        return os.path.normpath(os.path.join(job_dir, os.pardir, os.pardir, kind))
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(model_path)), os.pardir, kind))


def _rng(seed):
    # numpy < 1.17 (the apt numpy on JetPack 4) has no default_rng
    if hasattr(np.random, "default_rng"):
        return np.random.default_rng(seed)
    return np.random.RandomState(seed)


def make_inputs(shapes, dtypes, seed=0):
    """Random inputs {name: ndarray}, deterministic for a seed (names in sorted order).

    shapes: {name: shape}; dtypes: one dtype name for all inputs or {name: dtype name}. Integer inputs
    take values in [0, 10) so that they stay valid as small indices.
    """
    rng = _rng(seed)
    out = {}
    for name in sorted(shapes):
        dtype = dtypes[name] if isinstance(dtypes, dict) else dtypes
        np_dtype = NUMPY_DTYPES[dtype]
        shape = tuple(int(d) for d in shapes[name])
        if dtype == "bool":
            arr = rng.uniform(size=shape) < 0.5
        elif np.issubdtype(np_dtype, np.integer):
            draw = rng.integers if hasattr(rng, "integers") else rng.randint
            arr = draw(0, 10, size=shape)
        else:
            arr = rng.standard_normal(shape)
        out[name] = np.ascontiguousarray(np.asarray(arr).astype(np_dtype))
    return out


class Backend:
    """One runtime. Life cycle: available() -> __init__(options) -> load() -> run_once()* -> close().

    What a backend declares (the host checks device configs against it, so a registry entry is the one
    list of what exists):
    - OPTIONS: {name: Option(default, type, help)} of accepted task options; anything else in `options`
      is an error, so a typo does not silently measure the default configuration;
    - PRECISIONS: the precisions it can build (the worker refuses others before load());
    - MODEL_FORMAT: what the host sends it: "onnx" (an ONNX file) or "space" (a zip of the host's
      `spaces` package, with the task options model_format="space", space, space_config and arch).

    Optional parts (the defaults here say "not offered"): device_time_ms() (the last run's device compute
    time from device events, as trtexec's "GPU Compute Time" next to its end-to-end "Latency") and
    layer_profile(n_runs) (per-layer times, run after the timed phase).
    """

    name = "base"
    OPTIONS: ClassVar[dict] = {}
    PRECISIONS: ClassVar[tuple] = ("fp32",)
    MODEL_FORMAT = "onnx"

    @classmethod
    def available(cls):
        """None when usable on this machine, otherwise the reason why not."""
        return

    @classmethod
    def versions(cls):
        """{library: version} of everything that shapes this backend's speed."""
        return {}

    def __init__(self, task_options=None):
        task_options = dict(task_options or {})
        problems = option_problems(self.OPTIONS, task_options, f"{self.name} backend")
        if problems:
            raise BackendOptionError("; ".join(problems))
        self.options = option_defaults(self.OPTIONS)
        self.options.update(task_options)
        self.job_dir = None

    def set_job_dir(self, job_dir):
        """The folder of the job being run (for caches kept next to it: <job folder>/../../engines)."""
        self.job_dir = job_dir
        return self

    def load(self, model_path, inputs, dtype="float32", precision="fp32"):
        """Build the engine or session and allocate the inputs. Never timed."""
        raise NotImplementedError

    def run_once(self):
        """One synchronized end-to-end inference on the pre-allocated inputs, host<->device copies included.

        Returns when the result is ready; the caller's host clock around it is the end-to-end latency.
        """
        raise NotImplementedError

    def device_time_ms(self):
        """Device (GPU) compute time of the last run_once() in ms, from device events; None if not measured.

        Cheap and outside the timed window: call it after run_once() returned and the host clock was read.
        """
        return

    def layer_profile(self, n_runs=10):
        """Per-layer times over n_runs extra runs, or None when this backend has no layer profiler.

        A list of {"name", "op_type", "time_ms" (mean per run), "calls" (per run)} (agents.layers
        normalises it). Profiling slows the runs down, so call it only after the timed phase.
        """
        return

    def info(self):
        """The settings actually used (providers, threads, ...), recorded as the result's backend_info."""
        return {}

    def close(self):
        """Release the session, engine and device memory."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def check_option(backend, option, value, kinds, what, ok=None, allow_none=False):
    """value if it is of `kinds` (bool never counts as a number) and ok(value) holds, else BackendOptionError.

    what: the expected value in words, for the message ("an integer >= 0").
    """
    if value is None and allow_none:
        return value
    number = kinds in (int, float, (int, float))
    good = isinstance(value, kinds) and not (number and isinstance(value, bool))
    if good and ok is not None:
        good = bool(ok(value))
    if not good:
        raise BackendOptionError(f"{backend} option {option}: expected {what}, got {value!r}")
    return value
