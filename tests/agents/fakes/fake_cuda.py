"""Fake `pycuda` (driver, autoinit, autoprimaryctx) and cuda-python (`cuda.cudart`) over the fake GPU."""

import ctypes
import importlib.abc
import importlib.util
import itertools
import types

import numpy as np

from .gpu import GPU

_ids = itertools.count(1)


def make_pycuda(version=(2022, 1)):
    """{module name: module} for sys.modules: pycuda, pycuda.driver (contexts: ContextFinder)."""
    pycuda = types.ModuleType("pycuda")
    pycuda.VERSION = version
    pycuda.VERSION_TEXT = ".".join(str(v) for v in version)
    pycuda.__path__ = []
    drv = types.ModuleType("pycuda.driver")

    class DeviceAllocation:
        def __init__(self, ptr):
            self.ptr = ptr

        def __int__(self):
            return self.ptr

        __index__ = __int__

        def free(self):
            GPU.free(self.ptr)

    def mem_alloc(nbytes):
        return DeviceAllocation(GPU.malloc(nbytes))

    def pagelocked_empty(shape, dtype):
        arr = np.empty(shape, dtype)
        GPU.pinned.add(arr.ctypes.data)
        GPU.calls.append(("pagelocked_empty", tuple(shape)))
        return arr

    def _pinned(arr, what):
        if arr.ctypes.data not in GPU.pinned:
            raise RuntimeError(f"fake pycuda: {what} needs page-locked host memory")

    def memcpy_htod_async(dest, src, stream=None):
        _pinned(src, "memcpy_htod_async")
        if stream is None:
            raise RuntimeError("fake pycuda: expected a stream")
        GPU.htod(int(dest), src.tobytes())

    def memcpy_dtoh_async(dest, src, stream=None):
        _pinned(dest, "memcpy_dtoh_async")
        if stream is None:
            raise RuntimeError("fake pycuda: expected a stream")
        raw = GPU.dtoh(int(src), dest.nbytes)
        dest[...] = np.frombuffer(raw, dtype=dest.dtype).reshape(dest.shape)

    class Stream:
        def __init__(self, flags=0):
            self.handle = 0x5000 + next(_ids)

        def synchronize(self):
            GPU.calls.append(("stream_synchronize", self.handle))

    class Event:
        def __init__(self, flags=0):
            self.t = None

        def record(self, stream=None):
            self.t = GPU.clock_ms
            GPU.calls.append(("event_record", id(self)))
            return self

        def synchronize(self):
            return self

        def time_till(self, end):
            if self.t is None or end.t is None:
                raise RuntimeError("fake pycuda: cuEventElapsedTime failed: invalid value")
            return end.t - self.t

        def time_since(self, start):
            return start.time_till(self)

    class Device:
        def __init__(self, i):
            self.i = i

        def name(self):
            return "Fake GPU"

        def compute_capability(self):
            return (8, 7)

    class Context:
        @staticmethod
        def get_device():
            if GPU.context is None:
                raise RuntimeError("fake pycuda: no current context")
            return Device(0)

    drv.DeviceAllocation = DeviceAllocation
    drv.mem_alloc = mem_alloc
    drv.pagelocked_empty = pagelocked_empty
    drv.memcpy_htod_async = memcpy_htod_async
    drv.memcpy_dtoh_async = memcpy_dtoh_async
    drv.Stream = Stream
    drv.Event = Event
    drv.Device = Device
    drv.Context = Context
    drv.init = lambda flags=0: None
    pycuda.driver = drv

    return {"pycuda": pycuda, "pycuda.driver": drv}


class ContextFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Creates pycuda.autoinit / pycuda.autoprimaryctx on import, setting the fake GPU's context as the
    real modules do (a module put straight into sys.modules would run no code on import)."""

    def __init__(self, primary_ctx=True):
        self.names = {"pycuda.autoinit": "autoinit"}
        if primary_ctx:
            self.names["pycuda.autoprimaryctx"] = "primary"

    def find_spec(self, fullname, path=None, target=None):
        if fullname in self.names:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        GPU.context = self.names[module.__name__]
        GPU.calls.append(("context", GPU.context))
        module.context = GPU.context


def make_cudart():
    """{module name: module}: cuda (package) and cuda.cudart (the pre-12.6.1 layout)."""
    cuda = types.ModuleType("cuda")
    cuda.__path__ = []
    cuda.__version__ = "12.2.0"
    rt = types.ModuleType("cuda.cudart")

    class cudaError_t:
        cudaSuccess = 0
        cudaErrorInvalidValue = 1

    class cudaMemcpyKind:
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    host = {}

    class Handle(int):
        pass

    class Props:
        name = b"Fake GPU\0\0\0\0"
        major = 8
        minor = 7

    events = {}

    def log(*call):
        GPU.calls.append(call)

    def cudaMalloc(n):
        return (cudaError_t.cudaSuccess, GPU.malloc(n))

    def cudaFree(ptr):
        GPU.free(ptr)
        return (cudaError_t.cudaSuccess,)

    def cudaMallocHost(n):
        buf = ctypes.create_string_buffer(int(n))
        addr = ctypes.addressof(buf)
        host[addr] = buf
        GPU.pinned.add(addr)
        log("cudaMallocHost", int(n))
        return (cudaError_t.cudaSuccess, addr)

    def cudaFreeHost(ptr):
        host.pop(int(ptr), None)
        return (cudaError_t.cudaSuccess,)

    def cudaMemcpyAsync(dst, src, n, kind, stream):
        if kind == cudaMemcpyKind.cudaMemcpyHostToDevice:
            if int(src) not in GPU.pinned:
                return (cudaError_t.cudaErrorInvalidValue,)
            GPU.htod(int(dst), ctypes.string_at(int(src), int(n)))
        else:
            if int(dst) not in GPU.pinned:
                return (cudaError_t.cudaErrorInvalidValue,)
            raw = GPU.dtoh(int(src), int(n))
            ctypes.memmove(int(dst), raw, int(n))
        return (cudaError_t.cudaSuccess,)

    def cudaStreamCreate():
        return (cudaError_t.cudaSuccess, Handle(0x7000 + next(_ids)))

    def cudaStreamDestroy(s):
        return (cudaError_t.cudaSuccess,)

    def cudaStreamSynchronize(s):
        log("stream_synchronize", int(s))
        return (cudaError_t.cudaSuccess,)

    def cudaEventCreate():
        ev = Handle(0x9000 + next(_ids))
        events[int(ev)] = None
        return (cudaError_t.cudaSuccess, ev)

    def cudaEventDestroy(ev):
        return (cudaError_t.cudaSuccess,)

    def cudaEventRecord(ev, stream):
        events[int(ev)] = GPU.clock_ms
        log("event_record", int(ev))
        return (cudaError_t.cudaSuccess,)

    def cudaEventSynchronize(ev):
        return (cudaError_t.cudaSuccess,)

    def cudaEventElapsedTime(start, end):
        a, b = events.get(int(start)), events.get(int(end))
        if a is None or b is None:
            return (cudaError_t.cudaErrorInvalidValue, 0.0)
        return (cudaError_t.cudaSuccess, b - a)

    def cudaGetDeviceProperties(i):
        return (cudaError_t.cudaSuccess, Props())

    for name, obj in list(locals().items()):
        if name.startswith("cuda"):
            setattr(rt, name, obj)
    cuda.cudart = rt
    return {"cuda": cuda, "cuda.cudart": rt}
