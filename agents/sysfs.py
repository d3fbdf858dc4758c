"""Small sysfs/procfs readers, tolerant of real layouts (jetson-stats style).

Every reader takes `root`, a path prefix ("/" on a real board, a fake tree under tmp_path in tests), and
never raises: a missing or unreadable file gives None, because one odd node must not cost a measurement.
Units are in the key names (kHz, Hz, C). Jetson-only nodes are in jetson_sysfs; the environment and the
board state are assembled from both (environment.py, board.py), so neither of those imports the other.
"""

import glob
import os
import re

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
_NUM_RE = re.compile(r"(\d+)")


def under(root, path):
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

def int_or_none(text):
    try:
        return int(text.strip().split()[0])
    except (AttributeError, IndexError, ValueError):
        return None



def read_cpu_info(root="/"):
    """{"model", "count" (logical CPUs), "hardware", "online", "affinity"} of the CPU.

    x86 has a useful "model name". ARM kernels (Jetson L4T) print a generic "ARMv8 Processor rev 1 (v8l)"
    or only "Hardware", so the implementer/part codes are decoded into core names (Cortex-A57, Carmel).
    """
    try:
        text = read_text(under(root, "/proc/cpuinfo"))
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
        online = read_text(under(root, "/sys/devices/system/cpu/online"))
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
        base = under(root, "/sys/devices/system/cpu")
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
        folders = glob.glob(under(root, "/sys/class/thermal/thermal_zone*"))
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

def read_board_model(root="/"):
    """Device-tree model (Jetson, ARM boards; NUL-terminated) or the DMI vendor + product (x86)."""
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        text = read_text(under(root, path))
        if text:
            text = text.replace("\x00", "").strip()
            if text:
                return text
    vendor = read_text(under(root, "/sys/devices/virtual/dmi/id/sys_vendor"))
    product = read_text(under(root, "/sys/devices/virtual/dmi/id/product_name"))
    parts = [t.strip() for t in (vendor, product) if t and t.strip()]
    return " ".join(parts) or None


def read_loadavg(root="/"):
    """[1 min, 5 min, 15 min] load averages, or None."""
    text = read_text(under(root, "/proc/loadavg"))
    try:
        return [float(v) for v in text.split()[:3]] if text else None
    except ValueError:
        return None
