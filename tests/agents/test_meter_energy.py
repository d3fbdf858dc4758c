"""Energy over synthetic traces with known integrals, the energy-window extension rule, meter failures."""

import time

import numpy as np
import pytest
from agent_helpers import task, write_job
from fake_boards import make_board

from agents.energy import counter_to_power, energy_per_inference, integrate_energy, window_sample_count
from agents.meters import METERS
from agents.meters.base import MeterError, PowerMeter, PowerTrace
from agents.meters.sampler import SampledMeter
from agents.protocol import ENERGY_KEYS, load_job
from agents.worker import ENERGY_MIN_SAMPLES, extend_energy_window, measure_job_idle, prepare_job, run_task


def test_counter_steps_integrate_to_the_counter():
    t = [0.0, 0.1, 0.3, 0.35, 1.0]
    e = [0.0, 10.0, 10.0, 40.0, 105.0]  # mJ
    tt, p = counter_to_power(t, e)
    assert integrate_energy(tt, p, 0.0, 1.0) == pytest.approx(105.0)
    assert integrate_energy(tt, p, 0.1, 0.35) == pytest.approx(30.0)
    assert integrate_energy(tt, p, 0.05, 0.2) == pytest.approx(5.0)  # half of the first step, none of the 2nd
    assert p[:2] == [100.0, 100.0]  # 10 mJ over 0.1 s = 100 mW
    assert window_sample_count(tt, 0.0, 1.0) == 5  # shared edge times count once
    assert counter_to_power([0.0], [1.0]) == ([], [])


def test_sine_power_known_integral():
    t = np.linspace(0.0, 2.0, 20001)
    p = 1000.0 + 500.0 * np.sin(2 * np.pi * t)  # mW
    exact = 1000.0 * 1.5 + 500.0 * (np.cos(2 * np.pi * 0.25) - np.cos(2 * np.pi * 1.75)) / (2 * np.pi)
    assert integrate_energy(t, p, 0.25, 1.75) == pytest.approx(exact, rel=1e-6)


def test_energy_record_keys():
    t = np.arange(0, 3.0001, 0.01)
    trace = PowerTrace(t.tolist(), [2000.0] * len(t), rail="VDD_IN", rule="VDD_IN: the module input")
    e = energy_per_inference(trace, 1.0, 2.0, 100, idle_power_mw=500.0, extended=True)
    assert tuple(e) == ENERGY_KEYS
    assert (e["rail"], e["rule"], e["extended"], e["n_runs"]) == (
        "VDD_IN",
        "VDD_IN: the module input",
        True,
        100,
    )
    assert e["window_s"] == pytest.approx(1.0) and e["net_mj"] == pytest.approx(15.0)
    # one sample inside a short window: the rate comes from the whole trace
    short = energy_per_inference(trace, 1.0001, 1.0102, 1)
    assert short["n_samples"] == 1 and short["sample_rate_hz"] == pytest.approx(100.0)


class ClockMeter(PowerMeter):
    """A meter that 'samples' at rate_hz on a fake clock; samples_in counts those sample times."""

    name = "clockmeter"

    def __init__(self, clock, rate_hz=10.0, know_count=True):
        PowerMeter.__init__(self, rate_hz=rate_hz)
        self.clock = clock
        self.know_count = know_count

    def samples_in(self, t0, t1):
        if not self.know_count:
            return None
        k = np.arange(np.ceil(t0 * self.rate_hz), np.floor(t1 * self.rate_hz) + 1)
        return int(k.size)


def fake_model(ft, latency_s):
    def run_once():
        ft[0] += latency_s

    return run_once


def test_short_window_is_extended_until_enough_samples():
    ft = [0.0]
    meter = ClockMeter(lambda: ft[0], rate_hz=10.0)
    ft[0] = 1.02
    end, runs, extended = extend_energy_window(
        fake_model(ft, 0.005), meter, 1.0, 1.02, 4, clock=lambda: ft[0]
    )
    assert extended is True
    assert meter.samples_in(1.0, end) == ENERGY_MIN_SAMPLES  # stops as soon as the window holds 5
    assert end == pytest.approx(1.4, abs=0.006) and runs == 4 + round((end - 1.02) / 0.005)


def test_long_window_is_not_extended():
    ft = [3.0]
    meter = ClockMeter(lambda: ft[0], rate_hz=100.0)
    assert extend_energy_window(fake_model(ft, 0.005), meter, 2.0, 3.0, 7, clock=lambda: ft[0]) == (
        3.0,
        7,
        False,
    )


def test_extension_is_capped_and_estimates_unknown_counts():
    ft = [0.01]
    silent = ClockMeter(lambda: ft[0], rate_hz=100.0)
    silent.samples_in = lambda t0, t1: 0  # a meter that never delivers
    end, _, extended = extend_energy_window(fake_model(ft, 0.01), silent, 0.0, 0.01, 1, clock=lambda: ft[0])
    assert extended and 0.5 <= end - 0.01 < 0.52  # max(0.5 s, 2 x 6 samples / 100 Hz)
    ft[0] = 0.01
    blind = ClockMeter(lambda: ft[0], rate_hz=100.0, know_count=False)  # counts estimated from rate_hz
    end, _, extended = extend_energy_window(fake_model(ft, 0.01), blind, 0.0, 0.01, 1, clock=lambda: ft[0])
    assert extended and end == pytest.approx(0.05)


# ---------------------------------------------------------------------------------------------------------
# through the worker


class SlowMeter(SampledMeter):
    """3 W sampled at rate_hz by the real sampler."""

    name = "slow"

    def read_raw(self):
        return 3000.0


class StartFails(PowerMeter):
    name = "startfails"

    def start(self):
        raise MeterError("tegrastats gave no line within 5.0 s")


class StopFails(SlowMeter):
    name = "stopfails"

    def stop(self):
        SlowMeter.stop(self)
        raise MeterError("lost the sensor")


def one_task(tmp_path, kind, rate_hz, latency_ms=1.0):
    (tmp_path / "m.bin").write_bytes(b"x")
    path = write_job(
        tmp_path,
        [task("t1", "m.bin", {"x": [1]}, backend="debug", options={"latency_ms": latency_ms})],
        protocol={"min_runs": 5, "max_runs": 5, "warmup_min_runs": 1, "warmup_min_s": 0.0},
        meter={"kind": kind, "rate_hz": rate_hz, "idle_s": 0.05},
    )
    return load_job(str(path)), str(path)


def test_worker_extends_a_short_window(tmp_path, monkeypatch):
    monkeypatch.setitem(METERS._entries, "slow", SlowMeter)
    job, path = one_task(tmp_path, "slow", rate_hz=50.0)  # 5 runs x 1 ms = 5 ms: under 1 sample
    r = run_task(job, "t1", path, idle_power_mw=1000.0)
    e = r["energy"]
    assert r["latency_ms"]["n"] == 5 and len(r["samples_ms"]) == 5  # latency as measured
    assert e["extended"] is True and e["n_samples"] >= ENERGY_MIN_SAMPLES and e["n_runs"] > 5
    assert e["window_s"] >= 4 / 50.0
    assert e["mean_power_mw"] == pytest.approx(3000.0)
    assert e["net_mj"] == pytest.approx(e["gross_mj"] * 2 / 3)
    assert r["environment"]["power_meter"]["kind"] == "slow"
    assert r["environment"]["power_meter"]["achieved_rate_hz"] > 20


def test_worker_does_not_extend_a_long_window(tmp_path, monkeypatch):
    monkeypatch.setitem(METERS._entries, "slow", SlowMeter)
    job, path = one_task(tmp_path, "slow", rate_hz=1000.0, latency_ms=5.0)  # 25 ms at 1 kHz
    e = run_task(job, "t1", path, idle_power_mw=None)
    assert e["energy"]["extended"] is False and e["energy"]["n_runs"] == 5
    assert e["energy"]["net_mj"] is None
    assert any("idle power unknown" in w for w in e["warnings"])


@pytest.mark.parametrize(
    "kind, cls, text", [("startfails", StartFails, "no line"), ("stopfails", StopFails, "lost")]
)
def test_failing_meter_keeps_latency(tmp_path, monkeypatch, kind, cls, text):
    monkeypatch.setitem(METERS._entries, kind, cls)
    job, path = one_task(tmp_path, kind, rate_hz=100.0)
    r = run_task(job, "t1", path)
    assert r["status"] == "ok" and r["latency_ms"]["n"] == 5
    assert r["energy"] is None
    assert any(text in w and "energy not measured" in w for w in r["warnings"])


def test_idle_and_prepare_job(tmp_path, monkeypatch):
    monkeypatch.setitem(METERS._entries, "slow", SlowMeter)
    job, _ = one_task(tmp_path, "slow", rate_hz=200.0)
    idle = measure_job_idle(job)
    assert idle["power_mw"] == pytest.approx(3000.0) and idle["n_samples"] >= 5 and idle["reason"] is None
    state = prepare_job(job)
    assert state["setup"]["skipped_reason"] == "not requested" and state["warnings"] == []
    assert state["idle"]["power_mw"] == pytest.approx(3000.0)
    job["meter"]["kind"] = "none"
    assert measure_job_idle(job)["reason"] == "no power meter"
    job["meter"]["kind"] = "ina3221"
    why = measure_job_idle(job, make_board(tmp_path / "x86", "x86"))["reason"]
    assert "no INA3221 power monitor found" in why


def test_real_ina3221_meter_in_the_worker(tmp_path):
    root = make_board(tmp_path / "board", "orin")
    job, path = one_task(tmp_path, "ina3221", rate_hz=200.0, latency_ms=2.0)
    t = time.perf_counter()
    r = run_task(job, "t1", path, idle_power_mw=5000.0, root=root)
    assert time.perf_counter() - t < 5
    e = r["energy"]
    assert e["rail"] == "VDD_IN" and e["mean_power_mw"] == pytest.approx(5705.0)
    assert "VDD_IN" in e["rule"] and e["n_samples"] >= ENERGY_MIN_SAMPLES
    assert r["environment"]["power_meter"]["channels"][0]["layout"] == "hwmon"
    assert r["environment"]["igpu"]["17000000.gpu"]["load_permille"] == 0
