"""ONNX Runtime's settings as task options: provider names and lists, thread counts, enum choices.

Checked when the backend is constructed (before onnxruntime is imported), so a bad option is a
BackendOptionError on the host's config check and on the board alike.
"""

from .base import BackendOptionError

OPT_LEVELS = {
    "disable_all": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
EXEC_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}
CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"
GPU_EPS = (CUDA_EP, TRT_EP)
# task options passed to a provider when set (None = the provider's default)
CUDA_KEYS = ("cudnn_conv_algo_search", "gpu_mem_limit", "arena_extend_strategy", "do_copy_in_default_stream")
TRT_KEYS = (
    "trt_fp16_enable",
    "trt_int8_enable",
    "trt_int8_calibration_table_name",
    "trt_engine_cache_enable",
    "trt_engine_cache_path",
    "trt_max_workspace_size",
    "trt_timing_cache_enable",
    "trt_dla_enable",
    "trt_dla_core",
)
CONV_ALGO_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")


def choice(value, table, option):
    key = str(value).lower()
    if key.startswith("ort_"):  # also accept ORT's own enum names
        for short, full in table.items():
            if full.lower() == key:
                return short
    if key not in table:
        raise BackendOptionError(
            "onnxruntime option {}: expected one of {}, got {!r}".format(option, ", ".join(table), value)
        )
    return key


def thread_count(value, option):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BackendOptionError(
            f"onnxruntime option {option}: expected an integer >= 0 (0 = ORT decides), got {value!r}"
        )
    return value


def parse_providers(value):
    """Provider list: names, or [name, {options}] pairs as JSON allows no tuples."""
    if not isinstance(value, list) or not value:
        raise BackendOptionError(f"onnxruntime option providers: expected a non-empty list, got {value!r}")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append(item)
        elif (
            isinstance(item, (list, tuple))
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], dict)
        ):
            out.append((item[0], dict(item[1])))
        else:
            raise BackendOptionError(
                f"onnxruntime option providers: each entry is a name or [name, {{options}}], got {item!r}"
            )
    return out


def provider_name(p):
    return p if isinstance(p, str) else p[0]
