import itertools

import pytest

from agents.protocol import DEFAULT_PROTOCOL
from agents.stats import relative_ci, two_sided_z
from agents.timing import STOP_MAX_RUNS, STOP_MAX_TIME, STOP_TARGET, measure, run_timed, warm_up


class FakeDevice:
    """A fake clock plus a run_once that advances it by the next synthetic latency (seconds)."""

    def __init__(self, latencies_s):
        self.t = 100.0
        self.latencies = iter(latencies_s)
        self.calls = 0

    def clock(self):
        return self.t

    def run_once(self):
        self.calls += 1
        self.t += next(self.latencies)


def proto(**kw):
    p = dict(DEFAULT_PROTOCOL)
    p.update(kw)
    return p


def test_warmup_needs_both_runs_and_seconds():
    dev = FakeDevice(itertools.repeat(0.25))
    assert len(warm_up(dev.run_once, proto(warmup_min_runs=10, warmup_min_s=1.0), dev.clock)) == 10
    dev = FakeDevice(itertools.repeat(0.25))
    w = warm_up(dev.run_once, proto(warmup_min_runs=2, warmup_min_s=1.0), dev.clock)
    assert w == [250.0] * 4
    dev = FakeDevice(itertools.repeat(0.25))
    assert warm_up(dev.run_once, proto(warmup_min_runs=0, warmup_min_s=0.0), dev.clock) == []


def test_constant_latency_converges_at_min_runs():
    dev = FakeDevice(itertools.repeat(0.002))
    warm, samples, converged = measure(
        dev.run_once, proto(warmup_min_runs=3, warmup_min_s=0.0, min_runs=20), dev.clock
    )
    assert len(warm) == 3 and len(samples) == 20 and converged
    assert samples == pytest.approx([2.0] * 20)


def test_noisy_latency_stops_at_max_runs():
    dev = FakeDevice(itertools.cycle([0.001, 0.002]))
    samples, converged, stopped_by, t0, t1 = run_timed(
        dev.run_once, proto(min_runs=5, max_runs=50), dev.clock
    )
    assert len(samples) == 50 and not converged and stopped_by == STOP_MAX_RUNS
    assert t1 - t0 == pytest.approx(sum(samples) / 1e3)


def test_time_cap_stops_but_never_before_min_runs():
    dev = FakeDevice(itertools.cycle([1.0, 2.0]))
    samples, converged, stopped_by, _, _ = run_timed(
        dev.run_once, proto(min_runs=5, max_time_s=10.0), dev.clock
    )
    assert not converged and stopped_by == STOP_MAX_TIME
    assert len(samples) == 7  # 1+2+1+2+1+2+1 = 10 s
    dev = FakeDevice(itertools.cycle([1.0, 2.0]))
    samples, _, stopped_by, _, _ = run_timed(dev.run_once, proto(min_runs=20, max_time_s=10.0), dev.clock)
    assert len(samples) == 20 and stopped_by == STOP_MAX_TIME


def test_stops_at_the_first_run_meeting_the_ci_target():
    lat = [0.001, 0.003] * 5 + [0.002] * 500
    dev = FakeDevice(lat)
    p = proto(min_runs=10, max_runs=200, target_rel_ci=0.01)
    samples, converged, stopped_by, _, _ = run_timed(dev.run_once, p, dev.clock)
    assert converged and stopped_by == STOP_TARGET
    z = two_sided_z(0.95)
    n = len(samples)
    assert relative_ci(sorted(samples), z) <= 0.01
    assert relative_ci(sorted(samples[:-1]), z) > 0.01
    assert 10 < n < 200


def test_samples_exclude_warmup_and_keep_run_order():
    lat = [0.050, 0.040, 0.030] + [0.001, 0.002, 0.003, 0.004, 0.005]
    dev = FakeDevice(lat)
    warm, samples, _ = measure(
        dev.run_once, proto(warmup_min_runs=3, warmup_min_s=0.0, min_runs=5, max_runs=5), dev.clock
    )
    assert warm == pytest.approx([50.0, 40.0, 30.0])
    assert samples == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])
    assert dev.calls == 8
