"""Jetson sysfs readers: L4T release, SoC, integrated GPU devfreq and load, EMC clock.

Readers take `root` like those of sysfs.py and never raise; the two-valued ones return (state, reason)
so that board_reasons can say why a value is None. Paths per board-formats.md 3.1, 3.6, 3.7.
"""

import glob
import os
import re

from .sysfs import int_or_none, natural_key, read_int, read_text, under

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


GPU_DEVFREQ_NAMES = ("gp10b", "gv11b", "ga10b", "gb10b", "gpu")

# integrated-GPU load, per-mille (board-formats.md 3.6), when the devfreq device has no load file
GPU_LOAD_FILES = (
    "/sys/devices/gpu.0/load",
    "/sys/devices/platform/gpu.0/load",
    "/sys/devices/platform/bus@0/17000000.gpu/load",
)
# EMC clock (board-formats.md 3.7): debugfs, root only. (source, current, min, max, override)
EMC_DEBUGFS = (
    (
        "bpmp",  # tegra186 / tegra194 / tegra234
        "/sys/kernel/debug/bpmp/debug/clk/emc/rate",
        "/sys/kernel/debug/bpmp/debug/clk/emc/min_rate",
        "/sys/kernel/debug/bpmp/debug/clk/emc/max_rate",
        "/sys/kernel/debug/bpmp/debug/clk/emc/mrq_rate_locked",
    ),
    (
        "tegra210",  # Nano, TX1
        "/sys/kernel/debug/clk/override.emc/clk_rate",
        "/sys/kernel/debug/tegra_bwmgr/emc_min_rate",
        "/sys/kernel/debug/tegra_bwmgr/emc_max_rate",
        "/sys/kernel/debug/clk/override.emc/clk_state",
    ),
)
EMC_DEVFREQ = "/sys/class/devfreq/bwmgr"  # Thor
EMC_LOAD_FILE = "/sys/kernel/actmon_avg_activity/mc_all"
DEBUGFS = "/sys/kernel/debug"
DEBUGFS_ROOT_ONLY = (
    "the EMC clock is in debugfs (/sys/kernel/debug), readable by root only; run the agent as root, or "
    "read EMC from tegrastats (EMC_FREQ) or `sudo jetson_clocks --show`"
)
_L4T_RE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)\.(\d+)")
_COMPATIBLE_RE = re.compile(r"^nvidia,(tegra\d+)$")


def is_jetson(root="/"):
    return os.path.exists(under(root, "/etc/nv_tegra_release"))


def _read_strict(path):
    """The text of a file; raises OSError (tests replace this to simulate permission errors)."""
    with open(path, "rb") as f:
        return f.read(4096).decode("utf-8", "replace")


def read_l4t_release(root="/"):
    """ "32.7.1" from the first line of /etc/nv_tegra_release, or None off Jetson."""
    text = read_text(under(root, "/etc/nv_tegra_release"))
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


def find_gpu_devfreq(root="/"):
    """[(devfreq folder, of_node name)] of the Jetson integrated GPU(s), as jtop's find_igpu finds them.

    Matched by the of_node name of each /sys/class/devfreq entry (gp10b, gv11b, ga10b, gb10b, gpu),
    because the folder names differ on every board and release.
    """
    out = []
    for folder in sorted(glob.glob(under(root, "/sys/class/devfreq/*")), key=natural_key):
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


def read_soc(root="/"):
    """ "tegra210", "tegra194", ... from the device-tree compatible list, or None."""
    for path in ("/proc/device-tree/compatible", "/sys/firmware/devicetree/base/compatible"):
        text = read_text(under(root, path))
        if not text:
            continue
        for item in text.split("\x00"):
            m = _COMPATIBLE_RE.match(item.strip())
            if m:
                return m.group(1)
    return None


def read_igpu(root="/"):
    """(gpus, reason): {devfreq name: {of_node, governor, cur_hz, min_hz, max_hz, available_hz,
    load_permille, load_pct, railgate_enable, enable_3d_scaling}} of the integrated GPU.

    Found as jtop's find_igpu does (of_node name gp10b/gv11b/ga10b/gb10b/gpu); the load file is
    <realpath(device)>/load (0..1000), else one of the fixed paths in board-formats.md 3.6.
    """
    out = {}
    for folder, node in find_gpu_devfreq(root):
        device = os.path.realpath(os.path.join(folder, "device"))
        gov = read_text(os.path.join(folder, "governor"))
        avail = read_text(os.path.join(folder, "available_frequencies"))
        load = read_int(os.path.join(device, "load"))
        if load is None:
            for path in GPU_LOAD_FILES:
                load = read_int(under(root, path))
                if load is not None:
                    break
        out[os.path.basename(folder)] = {
            "of_node": node,
            "governor": gov.strip() if gov else None,
            "cur_hz": read_int(os.path.join(folder, "cur_freq")),
            "min_hz": read_int(os.path.join(folder, "min_freq")),
            "max_hz": read_int(os.path.join(folder, "max_freq")),
            "available_hz": [int(v) for v in avail.split() if v.isdigit()] if avail else None,
            "load_permille": load,
            "load_pct": None if load is None else load / 10.0,
            "railgate_enable": read_int(os.path.join(device, "railgate_enable")),
            "enable_3d_scaling": read_int(os.path.join(device, "enable_3d_scaling")),
        }
    if out:
        return out, None
    return None, (
        "no integrated-GPU devfreq node (of_node name gp10b, gv11b, ga10b, gb10b or gpu) under "
        "/sys/class/devfreq"
    )


def _debugfs_denied(root):
    try:
        os.listdir(under(root, DEBUGFS))
        return False
    except PermissionError:
        return True
    except OSError:
        return False


def read_emc(root="/"):
    """(state, reason): the EMC (memory controller) clock {source, cur_hz, min_hz, max_hz, locked,
    load_permille}. debugfs needs root: without it the reason says so (see DEBUGFS_ROOT_ONLY)."""
    folder = under(root, EMC_DEVFREQ)
    if os.path.isdir(folder):
        gov = read_text(os.path.join(folder, "governor"))
        return {
            "source": "devfreq bwmgr",
            "cur_hz": read_int(os.path.join(folder, "cur_freq")),
            "min_hz": read_int(os.path.join(folder, "min_freq")),
            "max_hz": read_int(os.path.join(folder, "max_freq")),
            "locked": None,
            "governor": gov.strip() if gov else None,
            "load_permille": read_int(under(root, EMC_LOAD_FILE)),
        }, None
    denied = False
    for source, cur, lo, hi, locked in EMC_DEBUGFS:
        try:
            rate = int_or_none(_read_strict(under(root, cur)))
        except PermissionError:
            denied = True
            continue
        except OSError:
            continue
        values = {}
        for key, path in (("min_hz", lo), ("max_hz", hi), ("locked", locked)):
            try:
                values[key] = int_or_none(_read_strict(under(root, path)))
            except OSError:
                values[key] = None
        return {
            "source": "debugfs " + source,
            "cur_hz": rate,
            "min_hz": values["min_hz"],
            "max_hz": values["max_hz"],
            "locked": None if values["locked"] is None else values["locked"] != 0,
            "load_permille": read_int(under(root, EMC_LOAD_FILE)),
        }, None
    if denied or _debugfs_denied(root):
        return None, DEBUGFS_ROOT_ONLY
    if not os.path.isdir(under(root, DEBUGFS)) or not os.listdir(under(root, DEBUGFS)):
        return None, "debugfs (/sys/kernel/debug) is not mounted or empty: no EMC clock to read"
    return None, "no EMC clock file in debugfs (bpmp/debug/clk/emc/rate or clk/override.emc/clk_rate)"
