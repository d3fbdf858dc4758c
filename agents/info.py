"""`python -m agents info`: what this machine offers the agent, and why anything is missing.

The host runs it when a device is added, so every "no" carries a reason a person can act on.
"""

import ctypes.util
import glob
import importlib.util
import os
import platform
import shutil
import sys

from . import __version__
from .backends import BACKENDS
from .environment import (
    jetpack_for_l4t,
    read_board_model,
    read_cpu_info,
    read_l4t_release,
    read_nvpmodel,
    read_text,
)
from .meters import METERS

# runtimes that later agent versions will register as backends
PLANNED_BACKENDS = ("tensorrt", "torch", "pycuda")
NOT_IMPLEMENTED = "no %s meter in agent %s yet"
NVML_LIB_GLOBS = (
    "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so*",
    "/usr/lib/aarch64-linux-gnu/libnvidia-ml.so*",
    "/usr/lib64/libnvidia-ml.so*",
    "/usr/lib/libnvidia-ml.so*",
)


def _p(root, path):
    return os.path.join(root or "/", path.lstrip("/"))


def _readable(path):
    try:
        with open(path, "rb") as f:
            f.read(64)
        return True
    except OSError:
        return False


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _which(root, name, fallbacks=()):
    if (root or "/") == "/":
        return shutil.which(name)
    for path in fallbacks:
        if os.path.exists(_p(root, path)):
            return path
    return None


def probe_rapl(root="/"):
    """Intel/AMD RAPL energy counters under /sys/class/powercap."""
    folders = glob.glob(_p(root, "/sys/class/powercap/intel-rapl:*"))
    zones = {}
    for folder in sorted(folders):
        name = read_text(os.path.join(folder, "name"))
        zones[os.path.basename(folder)] = {
            "name": name.strip() if name else None,
            "energy_uj_readable": _readable(os.path.join(folder, "energy_uj")),
        }
    if not zones:
        why = (
            "no /sys/class/powercap/intel-rapl:* zones (not an x86 CPU with RAPL, or a kernel without "
            "CONFIG_INTEL_RAPL)"
        )
    elif not any(z["energy_uj_readable"] for z in zones.values()):
        why = (
            "RAPL zones found but energy_uj is readable by root only (Linux >= 5.10, CVE-2020-8694): run "
            "as root or make it world-readable with a udev or sysfs.conf rule; and "
            + NOT_IMPLEMENTED
            % ("RAPL", __version__)
        )
    else:
        why = "RAPL energy_uj is readable, but " + NOT_IMPLEMENTED % ("RAPL", __version__)
    return {"found": bool(zones), "available": False, "reason": why, "zones": zones}


def probe_ina3221(root="/"):
    """Jetson INA3221 power monitors: hwmon (JetPack 5+) or iio (JetPack 4) layout, rails by label."""
    devices = {}
    for dev in sorted(glob.glob(_p(root, "/sys/bus/i2c/devices/*"))):
        name = read_text(os.path.join(dev, "name"))
        if not name or "ina3221" not in name:
            continue
        labels = glob.glob(os.path.join(dev, "hwmon", "hwmon*", "in*_label"))
        layout = "hwmon" if labels else None
        if not labels:
            labels = glob.glob(os.path.join(dev, "iio:device*", "rail_name_*"))
            labels += glob.glob(os.path.join(dev, "iio_device", "rail_name_*"))
            layout = "iio" if labels else None
        rails = []
        for path in sorted(labels):
            text = read_text(path)
            if text and text.strip() and "NC" not in text.strip().split():
                rails.append(text.strip())
        devices[os.path.basename(dev)] = {"driver": name.strip(), "layout": layout, "rails": rails}
    if not devices:
        why = "no INA3221 under /sys/bus/i2c/devices (not a Jetson, or the driver is not loaded)"
    else:
        why = "INA3221 found, but " + NOT_IMPLEMENTED % ("INA3221", __version__)
    return {"found": bool(devices), "available": False, "reason": why, "devices": devices}


def probe_nvml(root="/", l4t=None):
    """NVIDIA's management library (desktop and server GPUs; no power readings on Jetson)."""
    smi = _which(root, "nvidia-smi", ("/usr/bin/nvidia-smi",))
    lib = None
    if (root or "/") == "/":
        lib = ctypes.util.find_library("nvidia-ml")
    if lib is None:
        for pattern in NVML_LIB_GLOBS:
            hits = sorted(glob.glob(_p(root, pattern)))
            if hits:
                lib = hits[0]
                break
    found = bool(smi or lib)
    if l4t:
        why = (
            f"this is a Jetson (L4T {l4t}): NVML has no power or energy readings here (NotSupported); "
            "the INA3221 rails are the meter to use"
        )
    elif not found:
        why = "no nvidia-smi and no libnvidia-ml: no NVIDIA driver on this machine"
    else:
        why = "NVML found, but " + NOT_IMPLEMENTED % ("NVML", __version__)
    return {
        "found": found,
        "available": False,
        "reason": why,
        "nvidia_smi": smi,
        "libnvidia_ml": lib,
        "pynvml_installed": _installed("pynvml"),
    }


def probe_tegrastats(root="/"):
    exe = _which(root, "tegrastats", ("/usr/bin/tegrastats",))
    why = (
        "tegrastats not found (not a Jetson)"
        if exe is None
        else "tegrastats found, but " + NOT_IMPLEMENTED % ("tegrastats", __version__)
    )
    return {"found": exe is not None, "available": False, "reason": why, "path": exe}


def backends_info():
    """Registered backends with availability and versions, plus the runtimes not registered yet."""
    out = {}
    reasons = BACKENDS.available()
    for name in BACKENDS.names():
        entry = {
            "registered": True,
            "available": reasons[name] is None,
            "reason": reasons[name],
            "versions": {},
        }
        if reasons[name] is None:
            try:
                entry["versions"] = BACKENDS.get(name).versions()
            except Exception as exc:  # noqa: BLE001
                entry["versions"] = {"error": f"{type(exc).__name__}: {exc}"}
            providers = entry["versions"].get("onnxruntime_providers")
            if providers is not None:
                entry["providers"] = providers
        out[name] = entry
    for name in PLANNED_BACKENDS:
        if name in out:
            continue
        installed = _installed(name)
        out[name] = {
            "registered": False,
            "available": False,
            "installed": installed,
            "reason": (
                f"{name} is installed, but agent {__version__} has no {name} backend yet"
                if installed
                else f"{name} is not installed (and agent {__version__} has no {name} backend yet)"
            ),
        }
    return out


def meters_info(root="/", l4t=None):
    out = {}
    for name, reason in METERS.available().items():
        out[name] = {
            "registered": True,
            "available": reason is None,
            "reason": reason,
            "note": "measures nothing: results carry energy null" if name in ("none", "null") else None,
        }
    probes = {
        "rapl": lambda: probe_rapl(root),
        "ina3221": lambda: probe_ina3221(root),
        "nvml": lambda: probe_nvml(root, l4t),
        "tegrastats": lambda: probe_tegrastats(root),
    }
    for name, probe in probes.items():
        try:
            entry = probe()
        except Exception as exc:  # noqa: BLE001
            entry = {
                "found": False,
                "available": False,
                "reason": f"probe failed: {type(exc).__name__}: {exc}",
            }
        entry["registered"] = name in METERS
        out[name] = entry
    return out


def collect_info(root="/"):
    """A JSON-able report of the agent, this machine, its backends and its power meters."""
    l4t = read_l4t_release(root)
    cpu = read_cpu_info(root) or {}
    return {
        "agent_version": __version__,
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "environment": {
            "hostname": platform.node(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "board_model": read_board_model(root),
            "l4t": l4t,
            "jetpack": jetpack_for_l4t(l4t),
            "nvpmodel": read_nvpmodel(root),
            "cpu_model": cpu.get("model"),
            "cpu_count": cpu.get("count"),
        },
        "numpy": _numpy_version(),
        "backends": backends_info(),
        "meters": meters_info(root, l4t),
    }


def _numpy_version():
    try:
        import numpy

        return numpy.__version__
    except Exception:  # noqa: BLE001
        return None


def format_info(info):
    """Human-readable lines of collect_info()'s report."""
    env = info["environment"]
    lines = [
        "edgeprof agent {} on {} ({})".format(info["agent_version"], env["hostname"], env["machine"]),
        "  python {}  numpy {}".format(info["python"]["version"], info["numpy"]),
    ]
    if env.get("board_model"):
        lines.append("  board  {}".format(env["board_model"]))
    if env.get("l4t"):
        lines.append("  L4T {}  JetPack {}".format(env["l4t"], env["jetpack"] or "?"))
    lines.append("  cpu    {} ({} logical)".format(env.get("cpu_model"), env.get("cpu_count")))
    lines.append("backends:")
    for name, b in sorted(info["backends"].items()):
        if b["available"]:
            ver = ", ".join(
                f"{k} {v}" for k, v in sorted(b.get("versions", {}).items()) if not isinstance(v, list)
            )
            lines.append(f"  {name:<12} yes  {ver}")
            if b.get("providers"):
                lines.append("  {:<12}      providers: {}".format("", ", ".join(b["providers"])))
        else:
            lines.append("  {:<12} no   {}".format(name, b["reason"]))
    lines.append("power meters:")
    for name, m in sorted(info["meters"].items()):
        state = "yes" if m["available"] else "no "
        lines.append("  {:<12} {}  {}".format(name, state, m.get("reason") or m.get("note") or ""))
    return "\n".join(lines)
