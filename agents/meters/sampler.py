"""A background thread that reads a meter at a fixed rate, and the meter class built on it.

Each sample is stamped with time.perf_counter (the clock of agents/timing.py) at the middle of its read.
The thread keeps to a fixed schedule; when a read runs late it skips the missed slots instead of
bursting, so the achieved rate (recorded with every trace) says what really happened.
"""

import threading
import time

from .base import MeterError, PowerMeter, PowerTrace


def achieved_rate_hz(t_s):
    """Samples per second over a list of timestamps: (n - 1) / span, or None for < 2 distinct times."""
    if len(t_s) < 2 or t_s[-1] <= t_s[0]:
        return None
    return (len(t_s) - 1) / float(t_s[-1] - t_s[0])


class Sampler:
    """Calls read() every 1/rate_hz seconds in a daemon thread and records (t, value).

    start() takes one sample before it returns and stop() one after the thread ends, so the samples
    bracket whatever ran in between. A read that raises is counted (errors, last_error), not recorded.
    clock and wait are injectable: wait(seconds) returns True when the sampler should stop.
    """

    def __init__(self, read, rate_hz, clock=time.perf_counter, wait=None):
        if not rate_hz or rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
        self.read = read
        self.rate_hz = float(rate_hz)
        self.period = 1.0 / self.rate_hz
        self.clock = clock
        self._stop_event = threading.Event()
        self._wait = wait or self._stop_event.wait
        self._lock = threading.Lock()
        self._thread = None
        self._origin = None  # start of the first read: the schedule's phase
        self.t_s = []
        self.values = []
        self.errors = 0
        self.last_error = None

    def sample(self):
        """One read, recorded with the time at its middle; False when the read failed."""
        t0 = self.clock()
        if self._origin is None:
            self._origin = t0
        try:
            value = self.read()
        except Exception as exc:  # noqa: BLE001 - one bad read must not kill the sampler
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        t1 = self.clock()
        with self._lock:
            self.t_s.append(0.5 * (t0 + t1))
            self.values.append(value)
        return True

    def run(self):
        """The sampling loop (the thread's target; tests call it directly with a fake clock and wait)."""
        next_t = (self.clock() if self._origin is None else self._origin) + self.period
        while True:
            delay = next_t - self.clock()
            if self._wait(max(delay, 0.0)) or self._stop_event.is_set():
                return
            self.sample()
            next_t += self.period
            now = self.clock()
            if next_t <= now:  # fell behind: skip the missed slots
                next_t = now + self.period - ((now - next_t) % self.period)

    def start(self):
        self._stop_event.clear()
        self.sample()
        self._thread = threading.Thread(target=self.run, name="edgeprof-sampler")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self):
        """End the thread, take the closing sample, and return (t_s, values) copies."""
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(max(1.0, 5 * self.period))
            self._thread = None
        self.sample()
        return self.snapshot()

    def snapshot(self):
        with self._lock:
            return list(self.t_s), list(self.values)

    def count_between(self, t0, t1):
        with self._lock:
            return sum(1 for t in self.t_s if t0 <= t <= t1)

    def achieved_rate_hz(self):
        with self._lock:
            return achieved_rate_hz(self.t_s)


class SampledMeter(PowerMeter):
    """A meter read by polling: subclasses implement read_raw() and, for counters, to_trace()."""

    def __init__(self, rail=None, rate_hz=100.0, root="/"):
        PowerMeter.__init__(self, rail=rail, rate_hz=rate_hz, root=root)
        self._sampler = None
        self._last = None  # (t_s, raw values) of the last run, for describe()
        self._last_rate = None
        self._last_errors = 0

    def read_raw(self):
        """One reading (power in mW, or counter values for counter meters)."""
        raise NotImplementedError

    def to_trace(self, t_s, raw):
        """PowerTrace from the raw readings; power meters use the values as they are."""
        return PowerTrace(t_s, [float(v) for v in raw], self.trace_rail(), self.rule)

    def trace_rail(self):
        return self.rail

    def start(self):
        self._sampler = Sampler(self.read_raw, self.rate_hz)
        self._sampler.start()
        if not self._sampler.t_s:
            why = self._sampler.last_error or "no reading"
            self._sampler.stop()
            self._sampler = None
            raise MeterError(f"{self.name}: first reading failed: {why}")

    def stop(self):
        if self._sampler is None:
            raise MeterError(f"{self.name}: stop() without start()")
        sampler, self._sampler = self._sampler, None
        t_s, raw = sampler.stop()
        self._last_rate = achieved_rate_hz(t_s)
        self._last_errors = sampler.errors
        if sampler.errors and sampler.last_error:
            note = f"{sampler.errors} failed reads (last: {sampler.last_error})"
            if note not in self.notes:
                self.notes.append(note)
        return self.to_trace(t_s, raw)

    def samples_in(self, t0, t1):
        sampler = self._sampler
        return None if sampler is None else sampler.count_between(t0, t1)

    def describe(self):
        out = PowerMeter.describe(self)
        out["rail"] = self.trace_rail()
        out["achieved_rate_hz"] = self._last_rate
        out["failed_reads"] = self._last_errors
        return out
