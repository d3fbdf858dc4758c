"""`auto`: the first usable meter of this machine, in the order INA3221, NVML, RAPL, tegrastats.

INA3221 sysfs comes first on Jetson (direct, fast); NVML on machines with an NVIDIA driver; RAPL on x86
where energy_uj is readable; tegrastats last (a subprocess at a coarse interval). The choice and the
reasons for skipping the others are recorded in the meter's notes.
"""

from .base import MeterUnavailable, PowerMeter

ORDER = ("ina3221", "nvml", "rapl", "tegrastats")


def _candidates():
    from . import METERS

    for name in ORDER:
        try:
            yield name, METERS.get(name)
        except Exception:  # noqa: BLE001, S112 - a meter that cannot even be imported is skipped
            continue


def choose_meter(root="/"):
    """(name, class, reasons): the first available meter, or (None, None, reasons) when none is."""
    reasons = {}
    for name, cls in _candidates():
        try:
            reason = cls.available(root=root)
        except Exception as exc:  # noqa: BLE001
            reason = f"available() failed: {type(exc).__name__}: {exc}"
        if reason is None:
            return name, cls, reasons
        reasons[name] = reason
    return None, None, reasons


def _none_reason(reasons):
    return "no usable power meter: " + "; ".join(f"{k}: {v}" for k, v in reasons.items())


class AutoMeter(PowerMeter):
    """Delegates to the first available meter; `rail` is passed on (its meaning is that meter's)."""

    name = "auto"

    @classmethod
    def available(cls, root="/"):
        name, _, reasons = choose_meter(root)
        return None if name else _none_reason(reasons)

    @classmethod
    def probe(cls, root="/"):
        name, _, reasons = choose_meter(root)
        return {
            "found": name is not None,
            "available": name is not None,
            "reason": None if name else _none_reason(reasons),
            "chooses": name,
        }

    def __init__(self, rail=None, rate_hz=100.0, root="/"):
        PowerMeter.__init__(self, rail=rail, rate_hz=rate_hz, root=root)
        name, cls, reasons = choose_meter(root)
        if cls is None:
            raise MeterUnavailable(_none_reason(reasons))
        self.chosen = name
        self.inner = cls(rail=rail, rate_hz=rate_hz, root=root)
        self.rule = self.inner.rule
        self.notes = [f"auto chose {name}"] + [f"skipped {k}: {v}" for k, v in reasons.items()]

    def rails(self):
        return self.inner.rails()

    def start(self):
        self.inner.start()

    def stop(self):
        trace = self.inner.stop()
        self.rule = trace.rule
        return trace

    def samples_in(self, t0, t1):
        return self.inner.samples_in(t0, t1)

    def close(self):
        self.inner.close()

    def describe(self):
        out = self.inner.describe()
        out["auto"] = {"chose": self.chosen, "notes": list(self.notes)}
        return out
