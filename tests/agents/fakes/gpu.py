"""A fake GPU: device memory by integer address, a device clock (ms), and a log of calls."""

import numpy as np


class FakeGpu:
    H2D_MS_PER_MB = 0.1
    D2H_MS_PER_MB = 0.1

    def __init__(self):
        self.reset()

    def reset(self):
        self.memory = {}
        self.next_ptr = 0x10000
        self.clock_ms = 0.0
        self.calls = []
        self.context = None
        self.pinned = set()

    def malloc(self, nbytes):
        ptr = self.next_ptr
        self.next_ptr += (int(nbytes) + 255) // 256 * 256 + 256
        self.memory[ptr] = np.zeros(int(nbytes), dtype=np.uint8)
        self.calls.append(("malloc", int(nbytes)))
        return ptr

    def free(self, ptr):
        self.memory.pop(int(ptr), None)
        self.calls.append(("free", int(ptr)))

    def buffer(self, ptr):
        ptr = int(ptr)
        if ptr not in self.memory:
            raise RuntimeError(f"fake gpu: invalid device pointer {ptr:#x}")
        return self.memory[ptr]

    def view(self, ptr, dtype, shape):
        dtype = np.dtype(dtype)
        n = int(np.prod(shape)) if len(shape) else 1
        return self.buffer(ptr)[: n * dtype.itemsize].view(dtype).reshape(tuple(shape))

    def htod(self, ptr, data):
        raw = np.frombuffer(bytes(data), dtype=np.uint8)
        self.buffer(ptr)[: raw.size] = raw
        self.clock_ms += self.H2D_MS_PER_MB * raw.size / 1e6 + 0.001
        self.calls.append(("htod", int(ptr), raw.size))

    def dtoh(self, ptr, nbytes):
        self.clock_ms += self.D2H_MS_PER_MB * nbytes / 1e6 + 0.001
        self.calls.append(("dtoh", int(ptr), int(nbytes)))
        return self.buffer(ptr)[: int(nbytes)].tobytes()

    def names(self):
        return [c[0] for c in self.calls]


GPU = FakeGpu()
