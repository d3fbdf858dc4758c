"""Conformance checks every backend must pass, on any machine (runtime installed or not).

check_backend(cls) returns a list of problems (empty when the class conforms); the tests run it for every
registered backend, so a new runtime is checked the day it is registered. What it checks:
- the class is a Backend with a non-empty name; OPTIONS is {name: Option} with JSON-able defaults and a
  help each; PRECISIONS is a non-empty tuple of precision names; MODEL_FORMAT is one the host can send;
- the module imports no runtime at module level (only the stdlib, numpy and the agent itself);
- available() and versions() never raise, and answer None-or-str / a JSON-able dict;
- the constructor takes the defaults without importing anything heavy and rejects an unknown option with
  BackendOptionError;
- before load(): info() is a JSON-able dict, device_time_ms() is None, close() works (twice);
- load(), run_once(), device_time_ms(), layer_profile() have the interface's signatures.
"""

import ast
import inspect
import sys

from ..options import _jsonable, declared_option_problems
from ..protocol import PRECISION_RE
from .base import MODEL_FORMATS, Backend, BackendOptionError

RUNTIMES = ("tensorrt", "pycuda", "cuda", "onnxruntime", "onnx", "torch", "pynvml")
SIGNATURES = {
    "load": ["self", "model_path", "inputs", "dtype", "precision"],
    "run_once": ["self"],
    "device_time_ms": ["self"],
    "layer_profile": ["self", "n_runs"],
    "info": ["self"],
    "close": ["self"],
}


def module_level_runtime_imports(module):
    """[(module name, line)] of runtime imports at the top level of a module's source."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return []
    out = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] in RUNTIMES:
                out.append((name, node.lineno))
    return out


def declaration_problems(cls):
    """Problems of what a backend declares for the host: OPTIONS, PRECISIONS, MODEL_FORMAT."""
    problems = declared_option_problems(cls.__name__, cls.OPTIONS)
    precisions = getattr(cls, "PRECISIONS", None)
    if (
        not isinstance(precisions, tuple)
        or not precisions
        or not all(isinstance(p, str) and PRECISION_RE.match(p) for p in precisions)
    ):
        problems.append(f"{cls.__name__}.PRECISIONS must be a non-empty tuple of precision names, got {precisions!r}")
    if getattr(cls, "MODEL_FORMAT", None) not in MODEL_FORMATS:
        problems.append(
            "{}.MODEL_FORMAT must be one of {}, got {!r}".format(
                cls.__name__, ", ".join(MODEL_FORMATS), getattr(cls, "MODEL_FORMAT", None)
            )
        )
    return problems


def check_backend(cls, name=None):
    """Problems of a backend class as a list of strings; [] when it conforms. name: its registry name."""
    problems = []
    if not (inspect.isclass(cls) and issubclass(cls, Backend)):
        return [f"{cls!r} is not a Backend subclass"]
    label = getattr(cls, "name", None)
    if not isinstance(label, str) or not label or label == Backend.name:
        problems.append(f"{cls.__name__}.name must be set to the backend's name, got {label!r}")
    if name is not None and label != name:
        problems.append(f"{cls.__name__}.name is {label!r} but it is registered as {name!r}")
    problems.extend(declaration_problems(cls))
    module = sys.modules.get(cls.__module__)
    for mod, line in module_level_runtime_imports(module):
        problems.append(f"{cls.__module__}:{line} imports {mod} at module level; import it inside a function")

    for method, params in SIGNATURES.items():
        fn = getattr(cls, method, None)
        if fn is None:
            problems.append(f"{cls.__name__} has no {method}()")
            continue
        got = list(inspect.signature(fn).parameters)
        if got[: len(params)] != params:
            problems.append(f"{cls.__name__}.{method} takes {got}, the interface says {params}")

    try:
        reason = cls.available()
        if reason is not None and (not isinstance(reason, str) or not reason.strip()):
            problems.append(
                f"{cls.__name__}.available() must return None or a non-empty reason, got {reason!r}"
            )
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{cls.__name__}.available() raised {type(exc).__name__}: {exc}")
    try:
        versions = cls.versions()
        if not isinstance(versions, dict) or not _jsonable(versions):
            problems.append(f"{cls.__name__}.versions() must return a JSON-able dict, got {versions!r}")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{cls.__name__}.versions() raised {type(exc).__name__}: {exc}")

    try:
        cls({"no_such_option_xyz": 1})
        problems.append(f"{cls.__name__} accepted an unknown option")
    except BackendOptionError:
        pass
    except Exception as exc:  # noqa: BLE001
        problems.append(
            f"{cls.__name__}: an unknown option raised {type(exc).__name__}, not BackendOptionError"
        )

    try:
        backend = cls({})
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{cls.__name__}() with default options raised {type(exc).__name__}: {exc}")
        return problems
    if backend.set_job_dir("/nonexistent/jobs/j") is not backend or backend.job_dir != "/nonexistent/jobs/j":
        problems.append(f"{cls.__name__}.set_job_dir() must store job_dir and return the backend")
    try:
        info = backend.info()
        if not isinstance(info, dict) or not _jsonable(info):
            problems.append(f"{cls.__name__}.info() before load() must be a JSON-able dict, got {info!r}")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{cls.__name__}.info() before load() raised {type(exc).__name__}: {exc}")
    try:
        if backend.device_time_ms() is not None:
            problems.append(f"{cls.__name__}.device_time_ms() before any run must be None")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{cls.__name__}.device_time_ms() before load() raised {type(exc).__name__}: {exc}")
    try:
        backend.close()
        backend.close()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{cls.__name__}.close() before load() raised {type(exc).__name__}: {exc}")
    return problems
