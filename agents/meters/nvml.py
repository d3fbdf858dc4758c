"""NVIDIA desktop and server GPUs through NVML (board-formats.md section 5).

Preferred: the total-energy counter, nvmlDeviceGetTotalEnergyConsumption (mJ since the driver loaded,
Volta and newer), read at rate_hz and turned into a step power trace whose integral is the counter
difference. Fallback: nvmlDeviceGetPowerUsage (mW; averaged over 1 s on Ampere and newer except GA100,
instantaneous before). The binding is pynvml (package nvidia-ml-py) when importable, else a small
ctypes wrapper over libnvidia-ml.so.1; neither is imported until a meter is used. Jetson has no usable
NVML (JP4/JP5: none; JP6/JP7: nvmlInit works but power and energy are NotSupported): its INA3221 rails
are the meter to use there.
"""

import ctypes
import os
import re

from ..energy import counter_to_power
from ..jetson_sysfs import read_l4t_release
from ..sysfs import under
from .base import MeterUnavailable, PowerTrace
from .sampler import SampledMeter

NVML_LIBRARY = "libnvidia-ml.so.1"
NVML_ERROR_NOT_SUPPORTED = 3
_RAIL_RE = re.compile(r"^(?:gpu)?(\d+)$", re.IGNORECASE)


class NvmlError(Exception):
    """An NVML call that returned an error code (the ctypes binding's NVMLError)."""

    def __init__(self, value, message):
        Exception.__init__(self, message)
        self.value = value


def is_not_supported(exc):
    return getattr(exc, "value", None) == NVML_ERROR_NOT_SUPPORTED or "Not Supported" in str(exc)


class CtypesNvml:
    """The few NVML calls the meter needs, over libnvidia-ml.so.1 with ctypes (pynvml's names)."""

    NVMLError = NvmlError

    def __init__(self, library=NVML_LIBRARY):
        self._lib = ctypes.CDLL(library)
        self._lib.nvmlErrorString.restype = ctypes.c_char_p

    def _call(self, name, *args):
        fn = getattr(self._lib, name)
        rc = fn(*args)
        if rc != 0:
            try:
                text = self._lib.nvmlErrorString(rc).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001
                text = "error"
            raise NvmlError(rc, f"{name}: {text} ({rc})")

    def nvmlInit(self):
        name = "nvmlInit_v2" if hasattr(self._lib, "nvmlInit_v2") else "nvmlInit"
        self._call(name)

    def nvmlShutdown(self):
        self._call("nvmlShutdown")

    def nvmlSystemGetDriverVersion(self):
        buf = ctypes.create_string_buffer(96)
        self._call("nvmlSystemGetDriverVersion", buf, ctypes.c_uint(96))
        return buf.value.decode("utf-8", "replace")

    def nvmlDeviceGetCount(self):
        count = ctypes.c_uint()
        name = (
            "nvmlDeviceGetCount_v2" if hasattr(self._lib, "nvmlDeviceGetCount_v2") else "nvmlDeviceGetCount"
        )
        self._call(name, ctypes.byref(count))
        return count.value

    def nvmlDeviceGetHandleByIndex(self, index):
        handle = ctypes.c_void_p()
        name = "nvmlDeviceGetHandleByIndex_v2"
        if not hasattr(self._lib, name):
            name = "nvmlDeviceGetHandleByIndex"
        self._call(name, ctypes.c_uint(index), ctypes.byref(handle))
        return handle

    def nvmlDeviceGetName(self, handle):
        buf = ctypes.create_string_buffer(96)
        self._call("nvmlDeviceGetName", handle, buf, ctypes.c_uint(96))
        return buf.value.decode("utf-8", "replace")

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        value = ctypes.c_ulonglong()
        self._call("nvmlDeviceGetTotalEnergyConsumption", handle, ctypes.byref(value))
        return value.value

    def nvmlDeviceGetPowerUsage(self, handle):
        value = ctypes.c_uint()
        self._call("nvmlDeviceGetPowerUsage", handle, ctypes.byref(value))
        return value.value


def load_nvml():
    """(binding, None) with pynvml when importable, else ctypes on libnvidia-ml.so.1; (None, reason)."""
    try:
        import pynvml  # optional: imported only when an NVML meter is used

        return pynvml, None
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install
        pynvml_error = f"{type(exc).__name__}: {exc}"
    try:
        return CtypesNvml(), None
    except OSError as exc:
        return None, (
            f"no NVML: pynvml is not importable ({pynvml_error}) and {NVML_LIBRARY} cannot be loaded "
            f"({exc}); no NVIDIA driver on this machine"
        )


def jetson_reason(root="/"):
    """The reason NVML is not used on a Jetson, or None off Jetson."""
    l4t = read_l4t_release(root)
    if l4t is None and not os.path.exists(under(root, "/etc/nv_tegra_release")):
        return None
    return (
        "this is a Jetson (L4T {}): NVML gives no power or energy there (NotSupported, or no NVML at all); "
        "use the ina3221 or tegrastats meter".format(l4t or "?")
    )


def device_index(rail):
    """GPU index from the job's rail: None/"gpu0"/"0" -> 0, "gpu1" -> 1; ValueError otherwise."""
    if rail in (None, "", "auto", "total"):
        return 0
    m = _RAIL_RE.match(str(rail).strip())
    if not m:
        raise ValueError(f"NVML rail must name a GPU (gpu0, gpu1, ...), got {rail!r}")
    return int(m.group(1))


def _name(nvml, handle):
    name = nvml.nvmlDeviceGetName(handle)
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def query_device(nvml, index):
    """{"index", "name", "energy_counter", "power_usage", "mode", "reason"} of one GPU (NVML initialised)."""
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    info = {"index": index, "name": None, "energy_counter": False, "power_usage": False}
    try:
        info["name"] = _name(nvml, handle)
    except Exception:  # noqa: BLE001, S110
        pass
    errors = []
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        info["energy_counter"] = True
    except Exception as exc:  # noqa: BLE001
        errors.append(f"nvmlDeviceGetTotalEnergyConsumption: {exc}")
    try:
        nvml.nvmlDeviceGetPowerUsage(handle)
        info["power_usage"] = True
    except Exception as exc:  # noqa: BLE001
        errors.append(f"nvmlDeviceGetPowerUsage: {exc}")
    info["mode"] = "energy" if info["energy_counter"] else ("power" if info["power_usage"] else None)
    info["reason"] = (
        None if info["mode"] else "GPU {} gives neither energy nor power: {}".format(index, "; ".join(errors))
    )
    return info, handle


def _probe(root="/", nvml=None):
    out = {"found": False, "available": False, "reason": None, "binding": None, "devices": []}
    why = jetson_reason(root)
    if why:
        out["reason"] = why
        return out
    if nvml is None:
        nvml, why = load_nvml()
        if nvml is None:
            out["reason"] = why
            return out
    out["binding"] = getattr(nvml, "__name__", type(nvml).__name__)
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001
        out["reason"] = f"nvmlInit failed ({exc}): the NVIDIA driver is not loaded or does not match"
        return out
    out["found"] = True
    try:
        count = nvml.nvmlDeviceGetCount()
        for i in range(count):
            out["devices"].append(query_device(nvml, i)[0])
    except Exception as exc:  # noqa: BLE001
        out["reason"] = f"NVML query failed: {exc}"
        return out
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001, S110
            pass
    if not out["devices"]:
        out["reason"] = "NVML reports no GPU"
    elif not any(d["mode"] for d in out["devices"]):
        out["reason"] = out["devices"][0]["reason"]
    else:
        out["available"] = True
    return out


class NvmlMeter(SampledMeter):
    """Energy counter (preferred) or power samples of one GPU; rail "gpuN" picks the GPU (default 0).

    nvml: an NVML binding object with pynvml's function names (tests inject a fake one).
    """

    name = "nvml"

    @classmethod
    def available(cls, root="/", nvml=None):
        return _probe(root, nvml)["reason"]

    @classmethod
    def probe(cls, root="/", nvml=None):
        return _probe(root, nvml)

    def __init__(self, rail=None, rate_hz=100.0, root="/", nvml=None):
        SampledMeter.__init__(self, rail=rail, rate_hz=rate_hz, root=root)
        why = jetson_reason(root)
        if why:
            raise MeterUnavailable(why)
        try:
            self.index = device_index(rail)
        except ValueError as exc:
            raise MeterUnavailable(str(exc)) from None
        if nvml is None:
            nvml, why = load_nvml()
            if nvml is None:
                raise MeterUnavailable(why)
        self.nvml = nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:
            raise MeterUnavailable(f"nvmlInit failed: {exc}") from exc
        self._initialised = True
        try:
            count = nvml.nvmlDeviceGetCount()
            if self.index >= count:
                raise MeterUnavailable(f"NVML rail gpu{self.index} asked for, but there are {count} GPUs")
            self.device, self._handle = query_device(nvml, self.index)
            if self.device["mode"] is None:
                raise MeterUnavailable(self.device["reason"])
        except Exception:
            self.close()
            raise
        self.mode = self.device["mode"]
        if self.mode == "energy":
            self.rule = (
                "NVML total-energy counter (nvmlDeviceGetTotalEnergyConsumption, mJ) of GPU {} ({}): the "
                "card's own power, not the host's".format(self.index, self.device["name"])
            )
        else:
            self.rule = (
                "NVML power samples (nvmlDeviceGetPowerUsage, mW) of GPU {} ({}): no energy counter on "
                "this GPU; on Ampere and newer (except GA100) each value is a 1 s average".format(
                    self.index, self.device["name"]
                )
            )

    def trace_rail(self):
        return f"gpu{self.index}"

    def read_raw(self):
        if self.mode == "energy":
            return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        return self.nvml.nvmlDeviceGetPowerUsage(self._handle)

    def to_trace(self, t_s, raw):
        if self.mode == "energy":
            t, p = counter_to_power(t_s, [float(v) for v in raw])
            return PowerTrace(t, p, self.trace_rail(), self.rule)
        return SampledMeter.to_trace(self, t_s, raw)

    def describe(self):
        out = SampledMeter.describe(self)
        out.update({"mode": self.mode, "device": dict(self.device)})
        return out

    def close(self):
        if getattr(self, "_initialised", False):
            self._initialised = False
            try:
                self.nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001, S110
                pass
