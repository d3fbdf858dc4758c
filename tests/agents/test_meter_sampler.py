"""The sampler thread: schedule and achieved rate on a fake clock, and a short real run."""

import time

import numpy as np
import pytest

from agents.meters.sampler import Sampler, achieved_rate_hz


class FakeTime:
    def __init__(self, read_cost=0.0):
        self.now = 100.0
        self.read_cost = read_cost

    def clock(self):
        return self.now


def test_schedule_on_a_fake_clock():
    ft = FakeTime()
    reads = []

    def read():
        ft.now += 0.0002  # each read costs 0.2 ms
        reads.append(ft.now)
        return 1000.0 + len(reads)

    sampler = Sampler(read, rate_hz=100.0, clock=ft.clock)

    def wait(seconds):
        ft.now += seconds
        return len(sampler.t_s) >= 50  # True = stop

    sampler._wait = wait
    sampler.sample()
    sampler.run()
    t = sampler.t_s
    assert len(t) == 50
    gaps = np.diff(t)
    assert max(gaps) - min(gaps) < 1e-9 and gaps[0] == pytest.approx(0.01)  # on schedule, no drift
    assert achieved_rate_hz(t) == pytest.approx(100.0)
    assert sampler.values[:3] == [1001.0, 1002.0, 1003.0]


def test_late_reads_skip_slots_instead_of_bursting():
    ft = FakeTime()

    def slow_read():
        ft.now += 0.025  # 25 ms per read at a 100 Hz schedule
        return 1.0

    sampler = Sampler(slow_read, rate_hz=100.0, clock=ft.clock)

    def wait(seconds):
        ft.now += seconds
        return len(sampler.t_s) >= 20

    sampler._wait = wait
    sampler.sample()
    sampler.run()
    gaps = np.diff(sampler.t_s)
    assert min(gaps) >= 0.025 - 1e-9  # never two reads back to back to catch up
    assert achieved_rate_hz(sampler.t_s) == pytest.approx(1 / 0.03, rel=0.01)  # 25 ms + wait to the next slot


def test_errors_are_counted():
    calls = [0]

    def flaky():
        calls[0] += 1
        if calls[0] % 2 == 0:
            raise OSError(5, "Input/output error")
        return 1.0

    s = Sampler(flaky, rate_hz=1000.0)
    s.start()
    time.sleep(0.02)
    t, v = s.stop()
    assert s.errors >= 1 and "Input/output error" in s.last_error
    assert len(t) == len(v) >= 2


def test_real_run_rate_and_bracketing():
    s = Sampler(lambda: 5.0, rate_hz=200.0)
    t_before = time.perf_counter()
    s.start()
    t0 = time.perf_counter()
    time.sleep(0.2)
    t1 = time.perf_counter()
    t, values = s.stop()
    assert t_before <= t[0] <= t0 and t[-1] >= t1
    assert 50.0 < achieved_rate_hz(t) < 230.0  # a loaded CI machine may miss slots (exact: the fake clock)
    assert s.count_between(t0, t1) >= 20 and set(values) == {5.0}
    with pytest.raises(ValueError):
        Sampler(lambda: 1.0, rate_hz=0)
    assert achieved_rate_hz([1.0]) is None
