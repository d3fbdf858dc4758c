import pytest
from fake_boards import make_board

from agents.thermal import ThermalGate


class FakeTime:
    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def clock(self):
        return self.t

    def sleep(self, s):
        self.sleeps.append(s)
        self.t += s


def gate(readings, max_c=50.0, zones=(), wait_max_s=60.0, poll_s=1.0):
    ft = FakeTime()
    it = iter(readings)
    g = ThermalGate(max_c, zones, wait_max_s, poll_s, clock=ft.clock, sleep=ft.sleep, read=lambda: next(it))
    return g, ft


def test_disabled_when_max_c_is_none():
    g, ft = gate([], max_c=None)
    out = g.wait()
    assert out["enabled"] is False and out["gated"] is False and out["waited_s"] == 0.0 and ft.sleeps == []


def test_cool_board_passes_at_once():
    g, ft = gate([{"CPU-therm": 40.0, "GPU-therm": 45.0}])
    out = g.wait()
    assert out["gated"] is False and out["waited_s"] == 0.0 and out["zone"] == "GPU-therm" and ft.sleeps == []
    assert out["temps_before"] == {"CPU-therm": 40.0, "GPU-therm": 45.0}


def test_waits_until_cool():
    temps = [{"CPU": t} for t in (80.0, 70.0, 60.0, 45.0)]
    g, ft = gate(temps)
    out = g.wait()
    assert out["gated"] is True and out["timed_out"] is False
    assert out["waited_s"] == pytest.approx(3.0) and ft.sleeps == [1.0, 1.0, 1.0]
    assert out["temps_after"] == {"CPU": 45.0} and out["warning"] is None


def test_times_out_with_a_warning_not_an_error():
    g, ft = gate([{"CPU-therm": 90.0}] * 100, wait_max_s=5.0)
    out = g.wait()
    assert out["gated"] and out["timed_out"] and len(ft.sleeps) == 5
    assert out["waited_s"] >= 5.0
    assert "timed out" in out["warning"] and "CPU-therm" in out["warning"]


def test_named_zones_and_pmic_is_ignored():
    temps = {"CPU-therm": 40.0, "GPU-therm": 70.0, "PMIC-Die": 100.0}
    g, _ = gate([temps, {"CPU-therm": 40.0, "GPU-therm": 45.0}], zones=["CPU"])
    assert g.wait()["gated"] is False  # GPU is hot, but only CPU is watched
    g, _ = gate([temps, {"CPU-therm": 40.0, "GPU-therm": 45.0, "PMIC-Die": 100.0}])
    out = g.wait()
    assert out["gated"] is True and out["zone"] == "GPU-therm"  # hottest, PMIC excluded


def test_missing_zone_skips_with_warning():
    g, _ = gate([{"CPU-therm": 40.0}], zones=["SOC0"])
    out = g.wait()
    assert out["gated"] is False and "no readable thermal zone matches SOC0" in out["warning"]
    g, _ = gate([None])
    assert "no readable thermal zone" in g.wait()["warning"]


def test_reads_a_fake_board(tmp_path):
    root = make_board(tmp_path, "nano")  # PMIC-Die reads 100 C on a Nano and must not hold the gate
    ft = FakeTime()
    out = ThermalGate(40.0, [], 10.0, 1.0, root=root, clock=ft.clock, sleep=ft.sleep).wait()
    assert out["gated"] is False and out["zone"] == "AO-therm"
    out = ThermalGate(30.0, ["GPU-therm"], 3.0, 1.0, root=root, clock=ft.clock, sleep=ft.sleep).wait()
    assert out["timed_out"] is True
    proto = {
        "thermal_max_c": 35.0,
        "thermal_zones": ["CPU"],
        "thermal_wait_max_s": 1.0,
        "thermal_poll_s": 0.5,
    }
    assert ThermalGate.from_protocol(proto, root=root).wait()["gated"] is False
