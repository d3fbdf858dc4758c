"""Fake runtime modules for the GPU code paths on a machine without CUDA, TensorRT or a GPU.

- gpu.py: one fake device (memory by address, a clock in ms, a call log) shared by the fakes below;
- fake_cuda.py: `pycuda` (driver, autoinit, autoprimaryctx) and cuda-python's `cuda.cudart`;
- fake_trt.py: `tensorrt` as of 7.2, 8.0, 8.2, 8.6 and 10.3 (only the APIs each version has);
- fake_ort.py: an `onnxruntime` with CUDA/TensorRT execution providers and IO binding.

They "execute" with numpy (outputs get their shapes and a value derived from the inputs) and record every
call, so the tests check which API the backend picked and in which order it called it.
"""
