"""The measurement loop: a fixed warm-up, then timed runs until the median is known well enough.

Only run_once() sits between the two clock reads; the stop rule is evaluated outside the timed region.
The clock is injected so tests can drive the loop with synthetic latencies and a fake clock.
"""

import bisect
import time

from .stats import relative_ci, two_sided_z

STOP_TARGET = "target_rel_ci"
STOP_MAX_RUNS = "max_runs"
STOP_MAX_TIME = "max_time_s"


def warm_up(run_once, protocol, clock=time.perf_counter):
    """Run until at least warmup_min_runs runs AND warmup_min_s seconds; returns the warm-up times in ms.

    A fixed rule rather than "until stable": two results with different warm-up counts would not be
    comparable (pyperf's reasoning).
    """
    min_runs = protocol["warmup_min_runs"]
    min_s = protocol["warmup_min_s"]
    warmup_ms = []
    start = clock()
    while len(warmup_ms) < min_runs or clock() - start < min_s:
        t0 = clock()
        run_once()
        t1 = clock()
        warmup_ms.append((t1 - t0) * 1e3)
    return warmup_ms


def run_timed(run_once, protocol, clock=time.perf_counter, after_run=None):
    """The timed phase. Returns (samples_ms, converged, stopped_by, t_start, t_end).

    Stops, never before min_runs, at the first of: the CI target met (converged), max_runs, or the phase
    lasting max_time_s. t_start/t_end bound the phase on `clock`, for energy integration.
    """
    min_runs = protocol["min_runs"]
    max_runs = protocol["max_runs"]
    max_time_s = protocol["max_time_s"]
    target = protocol["target_rel_ci"]
    z = two_sided_z(protocol["confidence"])
    samples_ms = []
    ordered = []  # kept sorted so the CI check is O(n) per run, not O(n log n)
    t_start = clock()
    while True:
        t0 = clock()
        run_once()
        t1 = clock()
        if after_run is not None:
            after_run()  # outside the timed window (e.g. read the run's device time)
        ms = (t1 - t0) * 1e3
        samples_ms.append(ms)
        bisect.insort(ordered, ms)
        n = len(samples_ms)
        if n < min_runs:
            continue
        if relative_ci(ordered, z) <= target:
            return samples_ms, True, STOP_TARGET, t_start, t1
        if n >= max_runs:
            return samples_ms, False, STOP_MAX_RUNS, t_start, t1
        if t1 - t_start >= max_time_s:
            return samples_ms, False, STOP_MAX_TIME, t_start, t1


def measure(run_once, protocol, clock=time.perf_counter):
    """Warm-up then timed phase: (warmup_ms, samples_ms, converged)."""
    warmup_ms = warm_up(run_once, protocol, clock)
    samples_ms, converged, _, _, _ = run_timed(run_once, protocol, clock)
    return warmup_ms, samples_ms, converged
