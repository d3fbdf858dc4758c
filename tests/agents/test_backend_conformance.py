"""Every registered backend passes check_backend(), with or without its runtime installed."""

import sys
import types
from typing import ClassVar

import pytest
from fakes.install import install_trt

from agents.backends import BACKENDS, Backend
from agents.backends.checks import check_backend, module_level_runtime_imports
from agents.options import Option


@pytest.mark.parametrize("name", BACKENDS.names())
def test_registered_backend_conforms(name):
    assert check_backend(BACKENDS.get(name), name) == []


@pytest.mark.parametrize("name", BACKENDS.names())
def test_conforms_without_its_runtime(monkeypatch, name):
    for runtime in ("tensorrt", "pycuda", "pycuda.driver", "cuda", "onnxruntime", "torch"):
        monkeypatch.setitem(sys.modules, runtime, None)
    cls = BACKENDS.get(name)
    assert check_backend(cls, name) == []
    if name not in ("debug",):
        assert isinstance(cls.available(), str)  # a reason, not an exception


def test_tensorrt_conforms_with_fakes(monkeypatch):
    install_trt(monkeypatch, "10.3.0")
    assert check_backend(BACKENDS.get("tensorrt"), "tensorrt") == []
    assert BACKENDS.get("tensorrt").available() is None


class Broken(Backend):
    OPTIONS: ClassVar[dict] = {"x": Option(object(), "any", "not JSON"), "y": 3, "z": Option(1, "str", "")}
    PRECISIONS: ClassVar[tuple] = ()
    MODEL_FORMAT = "tflite"

    def __init__(self, task_options=None):  # accepts anything
        self.options = dict(task_options or {})
        self.job_dir = None

    @classmethod
    def available(cls):
        raise RuntimeError("boom")

    def load(self, path, inputs):
        pass

    def info(self):
        return {"bad": {1, 2}}

    def device_time_ms(self):
        return 1.0


def test_problems_are_reported():
    problems = "\n".join(check_backend(Broken, "broken"))
    for needle in (
        "name must be set",
        "registered as 'broken'",
        "OPTIONS defaults must be JSON-able",
        "OPTIONS['y'] must be an Option(default, type, help)",
        "OPTIONS['z']: the default does not pass its own check",
        "OPTIONS['z'] needs a help text",
        "PRECISIONS must be a non-empty tuple",
        "MODEL_FORMAT must be one of onnx, space, got 'tflite'",
        "Broken.load takes",
        "available() raised RuntimeError: boom",
        "accepted an unknown option",
        "info() before load() must be a JSON-able dict",
        "device_time_ms() before any run must be None",
    ):
        assert needle in problems
    assert check_backend(int) == ["<class 'int'> is not a Backend subclass"]


def test_module_level_runtime_imports_are_found(tmp_path, monkeypatch):
    (tmp_path / "eager_backend.py").write_text(
        "import os\nimport numpy\nfrom tensorrt import Builder  # noqa\n\n\ndef f():\n    import torch\n"
    )
    (tmp_path / "tensorrt.py").write_text("Builder = None\n")  # so that the module imports here
    monkeypatch.syspath_prepend(str(tmp_path))
    import eager_backend

    assert module_level_runtime_imports(eager_backend) == [("tensorrt", 3)]
    assert module_level_runtime_imports(types.ModuleType("no_source")) == []
    monkeypatch.delitem(sys.modules, "eager_backend")
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
