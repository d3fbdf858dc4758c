"""Put fake runtimes into sys.modules for one test (monkeypatch undoes it)."""

import sys

from .fake_cuda import ContextFinder, make_cudart, make_pycuda
from .fake_trt import make_trt
from .gpu import GPU

PYCUDA = ("pycuda", "pycuda.driver", "pycuda.autoinit", "pycuda.autoprimaryctx")
CUDA_PYTHON = ("cuda", "cuda.cudart", "cuda.bindings", "cuda.bindings.runtime")


def block(monkeypatch, *names):
    """Make `import name` fail with ImportError (None in sys.modules)."""
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def install_cuda(monkeypatch, api="pycuda", pycuda_version=(2022, 1)):
    """api: "pycuda", "cuda-python" or None (neither importable)."""
    GPU.reset()
    for name in PYCUDA + CUDA_PYTHON:
        monkeypatch.delitem(sys.modules, name, raising=False)
    if api == "pycuda":
        for name, mod in make_pycuda(pycuda_version).items():
            monkeypatch.setitem(sys.modules, name, mod)
        monkeypatch.setattr(sys, "meta_path", [ContextFinder(pycuda_version >= (2021, 1))] + sys.meta_path)
        block(monkeypatch, *CUDA_PYTHON)
    elif api == "cuda-python":
        for name, mod in make_cudart().items():
            monkeypatch.setitem(sys.modules, name, mod)
        block(monkeypatch, "pycuda", "pycuda.driver", "cuda.bindings", "cuda.bindings.runtime")
    else:
        block(monkeypatch, *(PYCUDA + CUDA_PYTHON))
    return GPU


def install_trt(monkeypatch, version="8.6.1", cuda="pycuda", **kw):
    """A fake tensorrt of `version` plus a fake CUDA API; returns the fake tensorrt module."""
    install_cuda(monkeypatch, cuda, **kw)
    trt = make_trt(version) if version else None
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    return trt
