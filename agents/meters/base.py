"""The PowerMeter interface and its trace.

A meter samples power in the background between start() and stop(). Timestamps are on
time.perf_counter, the clock of the timing loop, so the energy integral covers exactly the timed window.
start() takes one sample before it returns and stop() one after it is called, so the trace brackets the
window in between.
"""

import time


class MeterError(Exception):
    """Base class of power-meter errors."""


class MeterUnavailable(MeterError):
    """The meter cannot be read on this machine (missing driver, permissions)."""


class PowerTrace:
    """Timestamped power samples of one rail: t_s (perf_counter seconds) and power_mw, same length.

    rail names what was measured (a rail label, a sum of rails, a RAPL domain, an NVML GPU); rule says
    how (which rail is the board total and why, or which counter was read).
    """

    __slots__ = ("power_mw", "rail", "rule", "t_s")

    def __init__(self, t_s, power_mw, rail=None, rule=None):
        if len(t_s) != len(power_mw):
            raise ValueError(f"t_s and power_mw differ in length ({len(t_s)} vs {len(power_mw)})")
        self.t_s = list(t_s)
        self.power_mw = list(power_mw)
        self.rail = rail
        self.rule = rule

    def __len__(self):
        return len(self.t_s)

    def to_dict(self):
        return {"t_s": self.t_s, "power_mw": self.power_mw, "rail": self.rail, "rule": self.rule}


class PowerMeter:
    """One power source (INA3221 rail, tegrastats, NVML, RAPL). Life cycle: start() ... stop() -> trace."""

    name = "base"
    # The meter's own options, {name: agents.options.Option}: a job's meter.options (a device config's
    # [meter.options]) are checked against them and passed to the constructor as keyword arguments.
    # rail, rate_hz and idle_s are common to every meter and are not listed here.
    OPTIONS = {}  # noqa: RUF012 - a declaration, never mutated

    @classmethod
    def available(cls, root="/"):
        """None when readable here, otherwise the reason why not."""
        return

    @classmethod
    def probe(cls, root="/"):
        """What `agents info` reports: {"found", "available", "reason", ...what was found}."""
        reason = cls.available(root=root)
        return {"found": reason is None, "available": reason is None, "reason": reason}

    def __init__(self, rail=None, rate_hz=100.0, root="/"):
        self.rail = rail
        self.rate_hz = rate_hz
        self.root = root
        self.rule = None  # how the rail was chosen, recorded with every energy record
        self.notes = []  # what discovery skipped or assumed

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

    def samples_in(self, t0, t1):
        """How many samples taken so far fall in [t0, t1], or None when the meter cannot tell yet."""
        return

    def describe(self):
        """JSON-able summary of the meter for the result's environment."""
        return {
            "kind": self.name,
            "rail": self.rail,
            "rule": self.rule,
            "rate_hz": self.rate_hz,
            "notes": list(self.notes),
        }


def measure_idle(meter, idle_s, sleep=time.sleep, clock=time.perf_counter):
    """{"power_mw", "idle_s", "n_samples", "rail", "rule"} over idle_s seconds of doing nothing.

    power_mw is None when the meter gave fewer than 2 samples over the window.
    """
    from ..energy import integrate_energy

    meter.start()
    t0 = clock()
    sleep(idle_s)
    t1 = clock()
    trace = meter.stop()
    out = {
        "power_mw": None,
        "idle_s": t1 - t0,
        "n_samples": len(trace),
        "rail": getattr(trace, "rail", None),
        "rule": getattr(trace, "rule", None),
    }
    if len(trace) < 2 or t1 <= t0:
        return out
    lo = max(t0, trace.t_s[0])
    hi = min(t1, trace.t_s[-1])
    if hi <= lo:
        return out
    out["power_mw"] = integrate_energy(trace.t_s, trace.power_mw, lo, hi) / (hi - lo)
    return out


def measure_idle_power(meter, idle_s, sleep=time.sleep, clock=time.perf_counter):
    """Mean power (mW) over idle_s seconds of doing nothing, or None when the meter gave < 2 samples."""
    return measure_idle(meter, idle_s, sleep=sleep, clock=clock)["power_mw"]
