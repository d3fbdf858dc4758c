"""TensorRT backend: ONNX -> engine (cached on disk), run with device buffers on a CUDA stream.

By responsibility:
- cuda_adapters: pycuda / cuda-python behind one small interface (buffers, streams, events);
- versions: the TensorRT version shims (capability dispatch, engine build);
- executor: buffers and runs of one execution context, and the per-layer profiler;
- backend: TensorRTBackend (options, engine cache, life cycle).

Everything imports tensorrt and the CUDA API lazily, inside functions, so tests drive it with fake
modules (tests/agents/fakes) and a board without TensorRT still imports the agent.
"""

from .backend import PRECISIONS, TensorRTBackend, engine_key, tensorrt_missing_reason  # noqa: F401
from .cuda_adapters import CUDA_ADAPTERS, CudaPythonApi, PyCudaApi, load_cuda_api  # noqa: F401
