"""A fake runtime for pipeline tests and CI machines without any real runtime.

Its latency is configured and deterministic (a fixed jitter pattern), and it can fail on purpose at
load or run, or make the worker process die, to exercise every error path of the runner.
"""

import math
import os
import time
from typing import ClassVar

from .. import __version__
from .base import Backend, BackendOptionError, InferenceError, ModelLoadError

FAIL_POINTS = (None, "load", "run", "exit")


class DebugBackend(Backend):
    """Sleeps (or spins) latency_ms per run, times 1 +- jitter following a fixed pattern."""

    name = "debug"
    OPTIONS: ClassVar[dict] = {
        "latency_ms": 1.0,
        "jitter": 0.02,
        "spin": False,
        "fail_on": None,
        "fail_after": 0,
    }

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
        self.calls = 0
        self.loaded = False

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

    def info(self):
        return {"debug": __version__, "options": dict(self.options), "calls": self.calls}
