"""CUDA adapters for TensorRT's buffers: the few calls the backend needs, over pycuda or cuda-python.

pycuda (pycuda.driver; the context from pycuda.autoprimaryctx when pycuda >= 2021.1, as TensorRT uses the
primary context, else pycuda.autoinit) or, where pycuda is missing, cuda-python (cuda.bindings.runtime,
or the older cuda.cudart). Both are imported inside functions, so this module loads without either.
"""

import numpy as np

from ..base import BackendUnavailable, short_error


def _import_pycuda_driver():
    import pycuda.driver

    return pycuda.driver


def _import_cudart():
    try:
        from cuda.bindings import runtime  # cuda-python >= 12.6.1 (cuda-bindings)
    except ImportError:
        from cuda import cudart as runtime  # older cuda-python; removed in cuda-bindings 13
    return runtime


def cuda_missing_reason(errors):
    """errors: {api: exception} for every CUDA API tried."""
    parts = [f"{api} is not importable ({short_error(exc, 200)})" for api, exc in errors.items()]
    return (
        "no CUDA API for TensorRT buffers: {}; install pycuda (pip install pycuda, with nvcc on PATH, e.g. "
        "/usr/local/cuda/bin) or cuda-python matching the board's CUDA version".format("; ".join(parts))
    )


class PyCudaApi:
    """pycuda.driver: mem_alloc, pagelocked_empty, memcpy_*_async, Stream, Event (times in ms)."""

    name = "pycuda"

    def __init__(self, driver):
        self.cuda = driver
        self._allocs = []

    @classmethod
    def load(cls):
        driver = _import_pycuda_driver()
        try:
            import pycuda.autoprimaryctx
        except ImportError:
            import pycuda.autoinit  # noqa: F401 (a new context on device 0, or $CUDA_DEVICE)
        return cls(driver)

    def device_name(self):
        try:
            dev = self.cuda.Context.get_device()
        except Exception:  # noqa: BLE001
            dev = self.cuda.Device(0)
        name = dev.name()
        try:
            name += " (sm_{}{})".format(*dev.compute_capability())
        except Exception:  # noqa: BLE001, S110
            pass
        return name

    def alloc(self, nbytes):
        mem = self.cuda.mem_alloc(max(1, int(nbytes)))
        self._allocs.append(mem)
        return mem

    def ptr(self, mem):
        return int(mem)

    def host_empty(self, shape, dtype):
        return self.cuda.pagelocked_empty(tuple(shape), dtype)

    def stream(self):
        return self.cuda.Stream()

    def stream_handle(self, stream):
        return stream.handle

    def synchronize(self, stream):
        stream.synchronize()

    def event(self):
        return self.cuda.Event()

    def record(self, event, stream):
        event.record(stream)

    def elapsed_ms(self, start, end):
        end.synchronize()
        return float(start.time_till(end))

    def htod(self, dev, host, stream):
        self.cuda.memcpy_htod_async(dev, host, stream)

    def dtoh(self, host, dev, stream):
        self.cuda.memcpy_dtoh_async(host, dev, stream)

    def close(self):
        for mem in self._allocs:
            try:
                mem.free()
            except Exception:  # noqa: BLE001, S110
                pass
        self._allocs = []


class CudaPythonApi:
    """cuda-python's runtime API (cudaMalloc, cudaMallocHost, cudaMemcpyAsync, cudaEvent*); each call returns
    (error, value...), checked here."""

    name = "cuda-python"

    def __init__(self, runtime):
        self.rt = runtime
        self._device = []
        self._host = []
        self._other = []

    @classmethod
    def load(cls):
        return cls(_import_cudart())

    def _call(self, what, *args):
        result = getattr(self.rt, what)(*args)
        if not isinstance(result, tuple):
            result = (result,)
        err = result[0]
        if err != self.rt.cudaError_t.cudaSuccess:
            raise RuntimeError(f"{what} failed: {err}")
        if len(result) == 1:
            return None
        return result[1] if len(result) == 2 else result[1:]

    def device_name(self):
        props = self._call("cudaGetDeviceProperties", 0)
        name = props.name
        if isinstance(name, bytes):
            name = name.split(b"\0", 1)[0].decode("utf-8", "replace")
        try:
            name += f" (sm_{props.major}{props.minor})"
        except Exception:  # noqa: BLE001, S110
            pass
        return name

    def alloc(self, nbytes):
        ptr = self._call("cudaMalloc", max(1, int(nbytes)))
        self._device.append(ptr)
        return ptr

    def ptr(self, mem):
        return int(mem)

    def host_empty(self, shape, dtype):
        import ctypes

        dtype = np.dtype(dtype)
        nbytes = max(1, int(np.prod(shape)) * dtype.itemsize)
        ptr = self._call("cudaMallocHost", nbytes)
        self._host.append(ptr)
        raw = (ctypes.c_byte * nbytes).from_address(int(ptr))
        return np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(tuple(shape))

    def stream(self):
        stream = self._call("cudaStreamCreate")
        self._other.append(("cudaStreamDestroy", stream))
        return stream

    def stream_handle(self, stream):
        return int(stream)

    def synchronize(self, stream):
        self._call("cudaStreamSynchronize", stream)

    def event(self):
        event = self._call("cudaEventCreate")
        self._other.append(("cudaEventDestroy", event))
        return event

    def record(self, event, stream):
        self._call("cudaEventRecord", event, stream)

    def elapsed_ms(self, start, end):
        self._call("cudaEventSynchronize", end)
        return float(self._call("cudaEventElapsedTime", start, end))

    def htod(self, dev, host, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call("cudaMemcpyAsync", int(dev), host.ctypes.data, host.nbytes, kind, stream)

    def dtoh(self, host, dev, stream):
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call("cudaMemcpyAsync", host.ctypes.data, int(dev), host.nbytes, kind, stream)

    def close(self):
        for what, obj in reversed(self._other):
            try:
                self._call(what, obj)
            except Exception:  # noqa: BLE001, S110
                pass
        for ptr in self._device:
            try:
                self._call("cudaFree", ptr)
            except Exception:  # noqa: BLE001, S110
                pass
        for ptr in self._host:
            try:
                self._call("cudaFreeHost", ptr)
            except Exception:  # noqa: BLE001, S110
                pass
        self._device, self._host, self._other = [], [], []


CUDA_ADAPTERS = {"pycuda": PyCudaApi, "cuda-python": CudaPythonApi}


def load_cuda_api(which="auto"):
    """The CUDA adapter to use; BackendUnavailable naming what is missing."""
    order = ("pycuda", "cuda-python") if which == "auto" else (which,)
    errors = {}
    for api in order:
        try:
            return CUDA_ADAPTERS[api].load()
        except Exception as exc:  # noqa: BLE001
            errors[api] = exc
    raise BackendUnavailable(cuda_missing_reason(errors))
