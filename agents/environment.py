"""Board and machine state recorded with every result.

The readers live in sysfs.py and jetson_sysfs.py (file reads, never raising) and board.py (nvpmodel,
jetson_clocks); this module assembles what one result records. `root` is a path prefix ("/" on a real
board, a fake tree under tmp_path in tests). Units are in the key names (kHz, Hz, C).
"""

import os
import platform
import socket
import sys
import time

from . import __version__
from .board import collect_board_state
from .jetson_sysfs import read_gpu_devfreq
from .sysfs import read_cpu_info, read_cpufreq, read_loadavg, read_thermal_zones

ENV_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "CUDA_", "ORT_", "TRT_", "NVIDIA_", "TF_", "KMP_")
ENV_NAMES = ("LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONHASHSEED", "GOMP_CPU_AFFINITY")

# keys that board.collect_board_state adds to the environment
BOARD_KEYS = (
    "l4t",
    "jetpack",
    "board_model",
    "soc",
    "nvpmodel",
    "cpufreq",
    "gpu_devfreq",
    "igpu",
    "emc",
    "jetson_clocks",
    "thermal_c",
    "board_reasons",
)


def read_env_vars(environ=None):
    """The performance-relevant environment variables that are set."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in sorted(environ.items()) if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}


def numpy_version():
    try:
        import numpy

        return numpy.__version__
    except Exception:  # noqa: BLE001
        return None


def timer_info():
    """The clock used for timing and its resolution."""
    try:
        info = time.get_clock_info("perf_counter")
        return {
            "name": "perf_counter",
            "implementation": info.implementation,
            "resolution_s": info.resolution,
        }
    except Exception:  # noqa: BLE001
        return None


def collect_environment(root="/", backend_versions=None, environ=None):
    """Everything recorded about the machine for one result (see the contract's `environment`).

    The board part (L4T, model, nvpmodel, clocks, GPU, EMC, temperatures) comes from
    board.collect_board_state, so that it is read in one place.
    """
    def safe(fn, *args):
        try:
            return fn(*args)
        except Exception:  # noqa: BLE001
            return None

    env = {
        "agent_version": __version__,
        "hostname": safe(socket.gethostname),
        "platform": safe(platform.platform),
        "kernel": safe(platform.release),
        "machine": safe(platform.machine),
        "python": {
            "version": platform.python_version(),
            "executable": sys.executable,
            "implementation": platform.python_implementation(),
        },
        "numpy": numpy_version(),
        "timer": timer_info(),
        "cpu": read_cpu_info(root),
        "loadavg": read_loadavg(root),
        "libraries": dict(backend_versions or {}),
        "env": read_env_vars(environ),
    }
    board = safe(collect_board_state, root)
    if board is None:  # never expected: collect_board_state guards each reader
        board = dict.fromkeys(BOARD_KEYS)
    env.update(board)
    return env


def collect_dynamic_state(root="/"):
    """The part of the environment that changes during a measurement (recorded again afterwards)."""
    return {
        "thermal_c": read_thermal_zones(root),
        "cpufreq": read_cpufreq(root),
        "gpu_devfreq": read_gpu_devfreq(root),
        "loadavg": read_loadavg(root),
    }
