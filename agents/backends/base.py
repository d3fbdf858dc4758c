"""The Backend interface: what a runtime must offer to be measured.

A backend module imports its runtime lazily (inside functions), so a board without TensorRT or torch can
still import the agent, list backends and report why one is unavailable.
"""

from typing import ClassVar

import numpy as np


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

    OPTIONS maps each accepted task option to its default; anything else in `options` is an error, so a
    typo does not silently measure the default configuration.
    """

    name = "base"
    OPTIONS: ClassVar[dict] = {}

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
        unknown = sorted(k for k in task_options if k not in self.OPTIONS)
        if unknown:
            raise BackendOptionError(
                "{} backend: unknown option(s) {} (accepted: {})".format(
                    self.name, ", ".join(unknown), ", ".join(sorted(self.OPTIONS)) or "none"
                )
            )
        self.options = dict(self.OPTIONS)
        self.options.update(task_options)

    def load(self, model_path, inputs, dtype="float32", precision="fp32"):
        """Build the engine or session and allocate the inputs. Never timed."""
        raise NotImplementedError

    def run_once(self):
        """One synchronized inference on the pre-allocated inputs (returns when the result is ready)."""
        raise NotImplementedError

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
