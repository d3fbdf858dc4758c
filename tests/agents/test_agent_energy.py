import numpy as np
import pytest

from agents.energy import energy_per_inference, integrate_energy
from agents.meters.base import PowerMeter, PowerTrace, measure_idle_power
from agents.meters.null import NullMeter


def test_constant_power():
    t = np.arange(0, 2.0001, 0.1)
    assert integrate_energy(t, [1000.0] * len(t), 0.5, 1.5) == pytest.approx(1000.0)


def test_ramp_window_between_samples():
    t = np.arange(0, 11, 1.0)
    p = 1000.0 * t  # mW
    # exact integral of 1000 t over [2.5, 7.5] = 500 (7.5^2 - 2.5^2); trapezoids are exact on a line
    assert integrate_energy(t, p, 2.5, 7.5) == pytest.approx(25000.0)


def test_window_inside_one_sample_interval():
    assert integrate_energy([0.0, 1.0], [0.0, 1000.0], 0.2, 0.4) == pytest.approx(500.0 * (0.16 - 0.04))


def test_uneven_samples_and_edges():
    t = [0.0, 0.05, 0.3, 0.31, 1.0]
    p = [100.0, 200.0, 200.0, 400.0, 400.0]
    tt = np.linspace(0.0, 1.0, 200001)
    dense = np.interp(tt, t, p)
    ref = float(np.sum((dense[1:] + dense[:-1]) / 2 * np.diff(tt)))
    assert integrate_energy(t, p, 0.0, 1.0) == pytest.approx(ref, rel=1e-6)
    assert integrate_energy(t, p, 0.3, 0.3) == 0.0


def test_bad_traces():
    with pytest.raises(ValueError, match="does not cover"):
        integrate_energy([0.0, 1.0], [1.0, 1.0], -0.1, 0.5)
    with pytest.raises(ValueError, match="does not cover"):
        integrate_energy([0.0, 1.0], [1.0, 1.0], 0.5, 1.1)
    with pytest.raises(ValueError, match="before its start"):
        integrate_energy([0.0, 1.0], [1.0, 1.0], 0.6, 0.5)
    with pytest.raises(ValueError, match="at least 2"):
        integrate_energy([0.0], [1.0], 0.0, 0.0)
    with pytest.raises(ValueError, match="not in order"):
        integrate_energy([0.0, 2.0, 1.0], [1.0, 1.0, 1.0], 0.0, 1.0)
    with pytest.raises(ValueError, match="differ in length"):
        integrate_energy([0.0, 1.0], [1.0], 0.0, 1.0)


def test_energy_per_inference():
    t = np.arange(0, 3.0001, 0.01)
    trace = PowerTrace(t.tolist(), [2000.0] * len(t), rail="VDD_IN")
    e = energy_per_inference(trace, 1.0, 2.0, 100, idle_power_mw=500.0)
    assert e["gross_mj"] == pytest.approx(20.0)
    assert e["net_mj"] == pytest.approx(15.0)
    assert e["mean_power_mw"] == pytest.approx(2000.0)
    assert e["idle_power_mw"] == 500.0
    assert e["rail"] == "VDD_IN"
    assert e["sample_rate_hz"] == pytest.approx(100.0)
    assert e["n_samples"] in (100, 101)
    assert energy_per_inference(trace, 1.0, 2.0, 100)["net_mj"] is None
    with pytest.raises(ValueError):
        energy_per_inference(trace, 1.0, 2.0, 0)


class ConstantMeter(PowerMeter):
    def __init__(self, clock):
        PowerMeter.__init__(self, rail="VDD_IN")
        self.clock = clock

    def start(self):
        self.t0 = self.clock()

    def stop(self):
        t1 = self.clock()
        t = list(np.linspace(self.t0, t1, 11))
        return PowerTrace(t, [750.0] * 11, self.rail)


def test_idle_power_and_null_meter():
    now = [0.0]

    def clock():
        return now[0]

    def sleep(s):
        now[0] += s

    assert measure_idle_power(ConstantMeter(clock), 2.0, sleep=sleep, clock=clock) == pytest.approx(750.0)
    assert NullMeter.available() is None
    m = NullMeter()
    m.start()
    assert len(m.stop()) == 0
    assert measure_idle_power(NullMeter(), 0.0) is None
    with pytest.raises(ValueError):
        PowerTrace([0.0, 1.0], [1.0])
