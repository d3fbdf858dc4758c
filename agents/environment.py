"""Board and machine state recorded with every result.

Every reader takes `root`, a path prefix ("/" on a real board, a fake tree under tmp_path in tests), and
never raises: a missing or unreadable file gives None, because one odd sysfs node must not cost a
measurement. Units are in the key names (kHz, Hz, C).
"""

import glob
import os
import platform
import re
import socket
import sys
import time

from . import __version__

# L4T release -> JetPack (jtop jetson_variables.py NVIDIA_JETPACK, see board-formats.md 3.1)
L4T_TO_JETPACK = {
    "32.6.1": "4.6",
    "32.7.1": "4.6.1",
    "32.7.2": "4.6.2",
    "32.7.3": "4.6.3",
    "32.7.4": "4.6.4",
    "32.7.5": "4.6.5",
    "32.7.6": "4.6.6",
    "34.1.1": "5.0.1 DP",
    "35.1.0": "5.0.2",
    "35.2.1": "5.1",
    "35.3.1": "5.1.1",
    "35.4.1": "5.1.2",
    "35.5.0": "5.1.3",
    "35.6.0": "5.1.4",
    "35.6.1": "5.1.5",
    "35.6.2": "5.1.5",
    "35.6.3": "5.1.5",
    "35.6.4": "5.1.6",
    "36.2.0": "6.0 DP",
    "36.3.0": "6.0",
    "36.4.0": "6.1",
    "36.4.2": "6.1 (rev1)",
    "36.4.3": "6.2",
    "36.4.4": "6.2.1",
    "36.4.7": "6.2.1",
    "36.5.0": "6.2.2",
    "38.4.0": "7.1",
    "39.0.0": "7.2 EA",
    "39.2.0": "7.2 GA",
}
L4T_PREFIX_TO_JETPACK = {"38.2": "7.0"}  # 38.2.x

# ARM "CPU implementer:CPU part" -> core name, for boards whose /proc/cpuinfo has no "model name"
ARM_CPU_PARTS = {
    "0x41:0xd03": "Cortex-A53",
    "0x41:0xd04": "Cortex-A35",
    "0x41:0xd05": "Cortex-A55",
    "0x41:0xd07": "Cortex-A57",
    "0x41:0xd08": "Cortex-A72",
    "0x41:0xd09": "Cortex-A73",
    "0x41:0xd0a": "Cortex-A75",
    "0x41:0xd0b": "Cortex-A76",
    "0x41:0xd0c": "Neoverse-N1",
    "0x41:0xd0d": "Cortex-A77",
    "0x41:0xd41": "Cortex-A78",
    "0x41:0xd42": "Cortex-A78AE",
    "0x41:0xd4f": "Neoverse-V2",
    "0x4e:0x003": "Denver 2",
    "0x4e:0x004": "Carmel",
}

# Environment variables that change performance; recorded when set
ENV_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "CUDA_", "ORT_", "TRT_", "NVIDIA_", "TF_", "KMP_")
ENV_NAMES = ("LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONHASHSEED", "GOMP_CPU_AFFINITY")

GPU_DEVFREQ_NAMES = ("gp10b", "gv11b", "ga10b", "gb10b", "gpu")

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

_L4T_RE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)\.(\d+)")
_NUM_RE = re.compile(r"(\d+)")


def _p(root, path):
    """path (absolute, as on the board) under root."""
    return os.path.join(root or "/", path.lstrip("/"))


def read_text(path):
    """File contents as text, or None when missing, unreadable or not text."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
        return data.decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def read_int(path):
    """The first integer in a file (sysfs values may carry units such as "32760 ma"), or None."""
    text = read_text(path)
    if text is None:
        return None
    text = text.strip().split(" ")[0] if text.strip() else ""
    try:
        return int(text)
    except ValueError:
        return None


def natural_key(text):
    """Sort key so that thermal_zone10 comes after thermal_zone9."""
    return [int(part) if part.isdigit() else part for part in _NUM_RE.split(text)]


def read_cpu_info(root="/"):
    """{"model", "count" (logical CPUs), "hardware", "online", "affinity"} of the CPU.

    x86 has a useful "model name". ARM kernels (Jetson L4T) print a generic "ARMv8 Processor rev 1 (v8l)"
    or only "Hardware", so the implementer/part codes are decoded into core names (Cortex-A57, Carmel).
    """
    try:
        text = read_text(_p(root, "/proc/cpuinfo"))
        model = hardware = implementer = None
        parts = []
        for line in (text or "").splitlines():
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key = key.strip().lower()
            value = value.strip()
            if key == "model name" and model is None and value:
                model = value
            elif key == "hardware" and value:
                hardware = value
            elif key == "cpu implementer":
                implementer = value.lower()
            elif key == "cpu part":
                code = "{}:{}".format(implementer or "0x41", value.lower())
                name = ARM_CPU_PARTS.get(code, f"ARM part {value}")
                if name not in parts:
                    parts.append(name)
        if parts and (model is None or model.startswith("ARMv")):
            model = " + ".join(parts)
        elif model is None:
            model = hardware
        affinity = None
        if hasattr(os, "sched_getaffinity"):
            try:
                affinity = sorted(os.sched_getaffinity(0))
            except OSError:
                affinity = None
        online = read_text(_p(root, "/sys/devices/system/cpu/online"))
        return {
            "model": model,
            "hardware": hardware,
            "count": os.cpu_count(),
            "online": online.strip() if online else None,
            "affinity": affinity,
        }
    except Exception:  # noqa: BLE001 - a reader never costs a measurement
        return None


def _freq_block(folder):
    def khz(name):
        return read_int(os.path.join(folder, name))

    gov = read_text(os.path.join(folder, "scaling_governor"))
    cpus = read_text(os.path.join(folder, "related_cpus")) or read_text(os.path.join(folder, "affected_cpus"))
    cur = khz("scaling_cur_freq")
    if cur is None:
        cur = khz("cpuinfo_cur_freq")
    return {
        "governor": gov.strip() if gov else None,
        "cur_khz": cur,
        "min_khz": khz("scaling_min_freq"),
        "max_khz": khz("scaling_max_freq"),
        "hw_max_khz": khz("cpuinfo_max_freq"),
        "cpus": cpus.strip() if cpus else None,
    }


def read_cpufreq(root="/"):
    """Per-policy CPU frequency state: {policyN or cpuN: {governor, cur_khz, min_khz, max_khz, ...}}."""
    try:
        base = _p(root, "/sys/devices/system/cpu")
        folders = glob.glob(os.path.join(base, "cpufreq", "policy*"))
        if not folders:
            folders = glob.glob(os.path.join(base, "cpu[0-9]*", "cpufreq"))
        out = {}
        for folder in sorted(folders, key=natural_key):
            name = os.path.basename(folder)
            if name == "cpufreq":
                name = os.path.basename(os.path.dirname(folder))
            block = _freq_block(folder)
            if any(v is not None for v in block.values()):
                out[name] = block
        return out or None
    except Exception:  # noqa: BLE001
        return None


def read_thermal_zones(root="/"):
    """{zone type: degrees C} from /sys/class/thermal/thermal_zone*; duplicate types get _1, _2, ...

    A zone whose temp cannot be read (disabled zones read empty or fail) maps to None. Mapped by type,
    never by index: zone numbering differs between kernels.
    """
    try:
        folders = glob.glob(_p(root, "/sys/class/thermal/thermal_zone*"))
        out = {}
        for folder in sorted(folders, key=natural_key):
            ztype = read_text(os.path.join(folder, "type"))
            ztype = ztype.strip() if ztype and ztype.strip() else os.path.basename(folder)
            name = ztype
            i = 1
            while name in out:
                name = f"{ztype}_{i}"
                i += 1
            milli = read_int(os.path.join(folder, "temp"))
            out[name] = None if milli is None else milli / 1000.0
        return out or None
    except Exception:  # noqa: BLE001
        return None


def read_l4t_release(root="/"):
    """ "32.7.1" from the first line of /etc/nv_tegra_release, or None off Jetson."""
    text = read_text(_p(root, "/etc/nv_tegra_release"))
    if not text:
        return None
    m = _L4T_RE.search(text.splitlines()[0] if text.splitlines() else "")
    if not m:
        return None
    return "{}.{}.{}".format(*m.groups())


def jetpack_for_l4t(l4t):
    """JetPack version for an L4T release, or None when not in the table."""
    if not l4t:
        return None
    if l4t in L4T_TO_JETPACK:
        return L4T_TO_JETPACK[l4t]
    for prefix, jp in L4T_PREFIX_TO_JETPACK.items():
        if l4t.startswith(prefix + "."):
            return jp
    return None


def read_board_model(root="/"):
    """Device-tree model (Jetson, ARM boards; NUL-terminated) or the DMI vendor + product (x86)."""
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        text = read_text(_p(root, path))
        if text:
            text = text.replace("\x00", "").strip()
            if text:
                return text
    vendor = read_text(_p(root, "/sys/devices/virtual/dmi/id/sys_vendor"))
    product = read_text(_p(root, "/sys/devices/virtual/dmi/id/product_name"))
    parts = [t.strip() for t in (vendor, product) if t and t.strip()]
    return " ".join(parts) or None


def read_loadavg(root="/"):
    """[1 min, 5 min, 15 min] load averages, or None."""
    text = read_text(_p(root, "/proc/loadavg"))
    try:
        return [float(v) for v in text.split()[:3]] if text else None
    except ValueError:
        return None


def find_gpu_devfreq(root="/"):
    """[(devfreq folder, of_node name)] of the Jetson integrated GPU(s), as jtop's find_igpu finds them.

    Matched by the of_node name of each /sys/class/devfreq entry (gp10b, gv11b, ga10b, gb10b, gpu),
    because the folder names differ on every board and release.
    """
    out = []
    for folder in sorted(glob.glob(_p(root, "/sys/class/devfreq/*")), key=natural_key):
        node = read_text(os.path.join(folder, "device", "of_node", "name"))
        node = node.replace("\x00", "").strip() if node else os.path.basename(folder).split(".")[-1]
        if node in GPU_DEVFREQ_NAMES:
            out.append((folder, node))
    return out


def read_gpu_devfreq(root="/"):
    """Jetson integrated-GPU devfreq state {name: {governor, cur_hz, min_hz, max_hz}}, or None."""
    try:
        out = {}
        for folder, _ in find_gpu_devfreq(root):
            gov = read_text(os.path.join(folder, "governor"))
            out[os.path.basename(folder)] = {
                "governor": gov.strip() if gov else None,
                "cur_hz": read_int(os.path.join(folder, "cur_freq")),
                "min_hz": read_int(os.path.join(folder, "min_freq")),
                "max_hz": read_int(os.path.join(folder, "max_freq")),
            }
        return out or None
    except Exception:  # noqa: BLE001
        return None


def parse_nvpmodel_query(text):
    """{"mode": name, "id": int or None} from `nvpmodel -q` output, or None (board.py has the full parse)."""
    from .board import parse_nvpmodel_query as parse

    state = parse(text)
    return None if state is None else {"mode": state["mode"], "id": state["id"]}


def read_nvpmodel(root="/", timeout_s=5.0):
    """The nvpmodel state via `nvpmodel -q` (see board.read_nvpmodel); None off Jetson, under a fake root,
    or on any failure."""
    from .board import read_nvpmodel as read

    try:
        return read(root, timeout_s)[0]
    except Exception:  # noqa: BLE001
        return None


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
    from .board import collect_board_state

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
        board = {k: None for k in BOARD_KEYS}
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
