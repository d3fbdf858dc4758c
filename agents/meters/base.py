"""The PowerMeter interface and its trace.

A meter samples power in the background between start() and stop(). Timestamps are on
time.perf_counter, the clock of the timing loop, so the energy integral covers exactly the timed window.
"""

import time


class MeterError(Exception):
    """Base class of power-meter errors."""


class MeterUnavailable(MeterError):
    """The meter cannot be read on this machine (missing driver, permissions)."""


class PowerTrace:
    """Timestamped power samples of one rail: t_s (perf_counter seconds) and power_mw, same length."""

    __slots__ = ("power_mw", "rail", "t_s")

    def __init__(self, t_s, power_mw, rail=None):
        if len(t_s) != len(power_mw):
            raise ValueError(f"t_s and power_mw differ in length ({len(t_s)} vs {len(power_mw)})")
        self.t_s = list(t_s)
        self.power_mw = list(power_mw)
        self.rail = rail

    def __len__(self):
        return len(self.t_s)

    def to_dict(self):
        return {"t_s": self.t_s, "power_mw": self.power_mw, "rail": self.rail}


class PowerMeter:
    """One power source (INA3221 rail, tegrastats, NVML, RAPL). Life cycle: start() ... stop() -> trace."""

    name = "base"

    @classmethod
    def available(cls, root="/"):
        """None when readable here, otherwise the reason why not."""
        return

    def __init__(self, rail=None, rate_hz=100.0, root="/"):
        self.rail = rail
        self.rate_hz = rate_hz
        self.root = root

    def rails(self):
        """Names of the rails this meter can read."""
        return []

    def start(self):
        """Begin sampling (take one sample at once, so the trace brackets what follows)."""
        raise NotImplementedError

    def stop(self):
        """Stop sampling (after one last sample) and return the PowerTrace."""
        raise NotImplementedError

    def close(self):
        """Release files or handles."""


def measure_idle_power(meter, idle_s, sleep=time.sleep, clock=time.perf_counter):
    """Mean power (mW) over idle_s seconds of doing nothing, or None when the meter gave < 2 samples."""
    from ..energy import integrate_energy

    meter.start()
    t0 = clock()
    sleep(idle_s)
    t1 = clock()
    trace = meter.stop()
    if len(trace) < 2 or t1 <= t0:
        return None
    lo = max(t0, trace.t_s[0])
    hi = min(t1, trace.t_s[-1])
    if hi <= lo:
        return None
    return integrate_energy(trace.t_s, trace.power_mw, lo, hi) / (hi - lo)
