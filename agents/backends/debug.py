"""A fake runtime for pipeline tests and CI machines without any real runtime.

Its latency is configured and deterministic (a fixed jitter pattern), and it can fail on purpose at
load or run, or make the worker process die, to exercise every error path of the runner. With
`device_fraction` it also reports a device time per run (that fraction of the run's latency), and with
`layers` > 0 a layer profile of that many equal layers, so the worker's GPU-only fields can be tested
on any machine.
"""

import math
import os
import time
from typing import ClassVar

from .. import __version__
from .base import Backend, BackendOptionError, InferenceError, ModelLoadError, Option

FAIL_POINTS = (None, "load", "run", "exit")


class DebugBackend(Backend):
    """Sleeps (or spins) latency_ms per run, times 1 +- jitter following a fixed pattern."""

    name = "debug"
    OPTIONS: ClassVar[dict] = {
        "latency_ms": Option(1.0, "number", "time of one run in ms"),
        "jitter": Option(0.02, "number", "relative spread of the run times (a fixed pattern, not random)"),
        "spin": Option(False, "bool", "busy-wait instead of sleeping"),
        "fail_on": Option(None, "str", "fail on purpose at this point (tests of error paths)", FAIL_POINTS[1:]),
        "fail_after": Option(0, "int", "runs that succeed before fail_on = 'run' fails"),
        "device_fraction": Option(
            None, "number", "device_time_ms() is this fraction of the run's latency; null: not offered"
        ),
        "layers": Option(0, "int", "layers that layer_profile() reports; 0: not offered"),
    }
    PRECISIONS: ClassVar[tuple] = ("fp32", "fp16", "bf16", "int8")

    @classmethod
    def versions(cls):
        return {"debug": __version__}

    def __init__(self, task_options=None):
        Backend.__init__(self, task_options)
        o = self.options
        for key in ("latency_ms", "jitter"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise BackendOptionError(f"debug option {key}: expected a number >= 0, got {v!r}")
        if o["fail_on"] not in FAIL_POINTS:
            raise BackendOptionError(
                "debug option fail_on: expected one of load, run, exit or null, got {!r}".format(o["fail_on"])
            )
        fa = o["fail_after"]
        if isinstance(fa, bool) or not isinstance(fa, int) or fa < 0:
            raise BackendOptionError(f"debug option fail_after: expected an integer >= 0, got {fa!r}")
        df = o["device_fraction"]
        if df is not None and (isinstance(df, bool) or not isinstance(df, (int, float)) or not 0 < df <= 1):
            raise BackendOptionError(
                f"debug option device_fraction: expected a number in (0, 1] or null, got {df!r}"
            )
        nl = o["layers"]
        if isinstance(nl, bool) or not isinstance(nl, int) or nl < 0:
            raise BackendOptionError(f"debug option layers: expected an integer >= 0, got {nl!r}")
        self.calls = 0
        self.loaded = False
        self.profiled_runs = 0

    def load(self, model_path, inputs, dtype="float32", precision="fp32"):
        if self.options["fail_on"] == "load":
            raise ModelLoadError(f"debug backend: failing at load as asked (fail_on=load): {model_path}")
        self.loaded = True
        return self

    def latency_s(self, i):
        """The i-th run's latency: deterministic, within +- jitter of latency_ms."""
        o = self.options
        return o["latency_ms"] * (1.0 + o["jitter"] * math.sin(1.7 * i)) / 1e3

    def run_once(self):
        if not self.loaded:
            raise InferenceError("run_once() called before load()")
        i = self.calls
        self.calls += 1
        fail = self.options["fail_on"]
        if fail in ("run", "exit") and i >= self.options["fail_after"]:
            if fail == "exit":
                os._exit(3)  # simulate a runtime that kills the process (segfault, OOM)
            raise InferenceError(f"debug backend: failing at run {i} as asked (fail_on=run)")
        delay = self.latency_s(i)
        if self.options["spin"]:
            end = time.perf_counter() + delay
            while time.perf_counter() < end:
                pass
        elif delay > 0:
            time.sleep(delay)

    def device_time_ms(self):
        fraction = self.options["device_fraction"]
        if fraction is None or self.calls == 0:
            return None
        return self.latency_s(self.calls - 1) * 1e3 * fraction

    def layer_profile(self, n_runs=10):
        n = self.options["layers"]
        if not n:
            return None
        if not self.loaded:
            raise InferenceError("layer_profile() called before load()")
        self.profiled_runs += n_runs
        per_layer = self.options["latency_ms"] / n
        return [
            {
                "name": f"layer{k}",
                "op_type": "Conv" if k % 2 == 0 else "Relu",
                "time_ms": per_layer,
                "calls": 1,
            }
            for k in range(n)
        ]

    def info(self):
        return {
            "debug": __version__,
            "options": dict(self.options),
            "calls": self.calls,
            "profiled_runs": self.profiled_runs,
        }
