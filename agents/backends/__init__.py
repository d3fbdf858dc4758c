"""Backends by name. Entries are lazy so that a missing runtime never breaks the agent's import."""

from ..plugins import load_bundled
from ..registry import Registry
from .base import (  # noqa: F401 (re-exported interface)
    Backend,
    BackendError,
    BackendOptionError,
    BackendUnavailable,
    InferenceError,
    ModelLoadError,
)

BACKENDS = Registry("backend", loader=load_bundled)  # plugins shipped with the agent register too
BACKENDS.add_lazy("onnxruntime", __name__ + ".onnxruntime:OnnxRuntimeBackend")
BACKENDS.add_lazy("debug", __name__ + ".debug:DebugBackend")
BACKENDS.add_lazy("tensorrt", __name__ + ".tensorrt:TensorRTBackend")
BACKENDS.add_lazy("torch", __name__ + ".torch:TorchBackend")
# a new runtime is one new module plus one add_lazy line here (tests run checks.check_backend on each),
# or a plugin file outside the package (agents.plugins) that registers itself with BACKENDS.register
