"""`python -m agents info`: what this machine offers the agent, and why anything is missing.

The host runs it when a device is added, so every "no" carries a reason a person can act on. Each power
meter reports what its discovery found (INA3221 rails with labels and values, RAPL zones, NVML GPUs, the
tegrastats binary) through its probe(), the same code the meter itself uses.
"""

import importlib.util
import platform
import sys

from . import __version__
from .backends import BACKENDS
from .board import read_nvpmodel
from .jetson_sysfs import jetpack_for_l4t, read_l4t_release
from .meters import METERS, NULL_METERS
from .plugins import load_bundled
from .sysfs import read_board_model, read_cpu_info

# runtimes that later agent versions will register as backends
# Libraries backends need that are not backends themselves: reported so `deploy` can say what is missing.
PLANNED_BACKENDS = ("pycuda",)


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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
                f"{name} is installed (a library of the tensorrt backend, not a backend of its own)"
                if installed
                else f"{name} is not installed (the tensorrt backend needs pycuda or cuda-python)"
            ),
        }
    return out


def meters_info(root="/", l4t=None):
    """{name: {"registered", "available", "reason", "found", ...what the meter's discovery found}}."""
    out = {}
    for name in METERS.names():
        if name in NULL_METERS:
            out[name] = {
                "registered": True,
                "available": True,
                "reason": None,
                "found": True,
                "note": "measures nothing: results carry energy null",
            }
            continue
        try:
            entry = METERS.get(name).probe(root=root)
        except Exception as exc:  # noqa: BLE001
            entry = {
                "found": False,
                "available": False,
                "reason": f"probe failed: {type(exc).__name__}: {exc}",
            }
        entry["registered"] = True
        if not entry.get("available") and not entry.get("reason"):
            entry["reason"] = "unavailable (no reason given)"
        out[name] = entry
    return out


def collect_info(root="/"):
    """A JSON-able report of the agent, this machine, its backends and its power meters."""
    l4t = read_l4t_release(root)
    cpu = read_cpu_info(root) or {}
    try:
        nvpmodel, nvpmodel_reason = read_nvpmodel(root)
    except Exception as exc:  # noqa: BLE001
        nvpmodel, nvpmodel_reason = None, f"{type(exc).__name__}: {exc}"
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
            "nvpmodel": nvpmodel,
            "nvpmodel_reason": nvpmodel_reason,
            "cpu_model": cpu.get("model"),
            "cpu_count": cpu.get("count"),
        },
        "numpy": _numpy_version(),
        "backends": backends_info(),
        "meters": meters_info(root, l4t),
        "plugins": load_bundled(),  # {file: None, or why it failed to import}
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
    if info.get("plugins"):
        lines.append("plugins:")
        for name, error in sorted(info["plugins"].items()):
            lines.append("  {:<12} {}".format(name, "failed: " + error if error else "loaded"))
    lines.append("power meters:")
    for name, m in sorted(info["meters"].items()):
        state = "yes" if m["available"] else "no "
        lines.append("  {:<12} {}  {}".format(name, state, m.get("reason") or m.get("note") or ""))
        lines.extend("  {:<12}      {}".format("", d) for d in _meter_details(m))
    return "\n".join(lines)


def _meter_details(m):
    """Extra lines for a meter's discovery: rails, zones, GPUs, the chosen meter."""
    out = []
    rails = m.get("rails")
    if isinstance(rails, list) and rails and isinstance(rails[0], dict):
        parts = []
        for r in rails:
            mw = r.get("power_mw")
            parts.append("{} {}".format(r["rail"], "?" if mw is None else f"{mw:.0f} mW"))
        out.append("rails: " + ", ".join(parts))
        out.append("board total: {}".format(m.get("total_rail") or "sum of the rails"))
    for note in m.get("notes") or []:
        out.append("note: " + note)
    zones = m.get("zones")
    if zones:
        out.append(
            "zones: "
            + ", ".join(
                "{} {}{}".format(k, z.get("name"), "" if z.get("readable") else " (unreadable)")
                for k, z in sorted(zones.items())
            )
        )
    for d in m.get("devices") or []:
        if isinstance(d, dict) and "index" in d:
            out.append("gpu{} {}: {}".format(d["index"], d.get("name"), d.get("mode") or d.get("reason")))
    if m.get("chooses"):
        out.append("chooses " + m["chooses"])
    return out
