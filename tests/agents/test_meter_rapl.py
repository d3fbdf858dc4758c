"""RAPL: zone discovery, wrap-around, the permission reason, and counter sampling turned into power."""

import os
import time

import numpy as np
import pytest
from fake_boards import make_board

from agents.energy import counter_to_power, energy_per_inference, integrate_energy
from agents.meters import METERS
from agents.meters import rapl as rapl_mod
from agents.meters.base import MeterUnavailable
from agents.meters.rapl import (
    PERMISSION_FIX,
    RaplMeter,
    find_rapl_zones,
    rapl_delta_uj,
    read_error_reason,
    select_zones,
    unwrap_counter,
)

HASWELL_RANGE = 262143999938  # max_energy_range_uj of a Haswell package (thermal_daemon #45)


def test_delta_and_wrap_around():
    assert rapl_delta_uj(100, 250, HASWELL_RANGE) == 150
    assert rapl_delta_uj(HASWELL_RANGE - 100, 50, HASWELL_RANGE) == 150  # wrapped once
    assert rapl_delta_uj(500, 400, None) is None  # a lower reading without a known range
    assert unwrap_counter([10, 20, 5, 15], 30) == [0.0, 10.0, 25.0, 35.0]
    assert unwrap_counter([], 30) == []


def test_energy_through_a_wrap_has_the_known_integral():
    # 20 W for 2 s sampled every 10 ms, counter starting 0.5 J before its wrap point
    max_range = 10_000_000  # uJ
    t = np.arange(0.0, 2.0001, 0.01)
    true_uj = 20_000.0 * t * 1e3  # 20 W = 20000 mW -> mJ = 20000 * t -> uJ = 1000 x that
    raw = ((max_range - 500_000) + true_uj) % max_range
    assert np.any(np.diff(raw) < 0)  # the counter did wrap
    energy_mj = [uj / 1000.0 for uj in unwrap_counter([round(v) for v in raw], max_range)]
    tt, p = counter_to_power(t, energy_mj)
    assert np.allclose(p, 20_000.0, rtol=1e-6)
    assert integrate_energy(tt, p, 0.0, 2.0) == pytest.approx(40_000.0, rel=1e-6)  # 20 W x 2 s = 40 J
    assert integrate_energy(tt, p, 0.333, 1.777) == pytest.approx(20_000.0 * 1.444, rel=1e-6)


def test_zones_of_the_x86_board(tmp_path):
    root = make_board(tmp_path / "x86", "x86")
    zones = find_rapl_zones(root)
    assert [(z["id"], z["name"]) for z in zones] == [
        ("intel-rapl:0", "package-0"),
        ("intel-rapl:0:0", "core"),
        ("intel-rapl:0:2", "dram"),
    ]
    assert zones[0]["max_range_uj"] == HASWELL_RANGE and all(z["readable"] for z in zones)
    assert [z["name"] for z in select_zones(zones)] == ["package-0"]
    assert [z["id"] for z in select_zones(zones, "dram")] == ["intel-rapl:0:2"]
    assert [z["name"] for z in select_zones(zones, "intel-rapl:0:0")] == ["core"]
    assert RaplMeter.available(root) is None
    probe = RaplMeter.probe(root)
    assert probe["available"] and probe["zones"]["intel-rapl:0:2"]["name"] == "dram"
    with pytest.raises(MeterUnavailable, match="no domain 'psys'; domains here: package-0"):
        RaplMeter(rail="psys", root=root)


def test_nested_layout_and_two_sockets(tmp_path):
    base = tmp_path / "sys/class/powercap/intel-rapl"
    for zid, name in (("intel-rapl:0", "package-0"), ("intel-rapl:1", "package-1")):
        z = base / zid
        z.mkdir(parents=True)
        (z / "name").write_text(name + "\n")
        (z / "energy_uj").write_text("1000\n")
        (z / "max_energy_range_uj").write_text("262143328850\n")
    m = RaplMeter(root=str(tmp_path))
    assert m.trace_rail() == "package-0+package-1" and "counters package-0 + package-1" in m.rule
    assert m.read_raw() == (1000, 1000)


def test_no_zones(tmp_path):
    assert "no RAPL zones" in RaplMeter.available(str(tmp_path))
    assert "no RAPL zones" in METERS.get("rapl").available(make_board(tmp_path / "nano", "nano"))


def test_permission_reason_says_how_to_fix(tmp_path, monkeypatch):
    reason = read_error_reason(
        PermissionError(13, "Permission denied"), "/sys/class/powercap/intel-rapl:0/energy_uj"
    )
    for words in ("permission denied", "Linux 5.10", "CVE-2020-8694", "udev rule", "chmod o+r", "sysfs.conf"):
        assert words in reason
    root = make_board(tmp_path / "x86", "x86")

    def denied(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(rapl_mod, "_read_uj", denied)  # as a non-root user on Linux >= 5.10
    reason = RaplMeter.available(root)
    assert reason.startswith("cannot read /sys/class/powercap/intel-rapl:0/energy_uj: permission denied")
    assert PERMISSION_FIX in reason
    assert RaplMeter.probe(root)["zones"]["intel-rapl:0"]["readable"] is False
    with pytest.raises(MeterUnavailable, match="CVE-2020-8694"):
        RaplMeter(root=root)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_permission_reason_with_a_real_mode_000(tmp_path):
    root = make_board(tmp_path / "x86", "x86")
    os.chmod(os.path.join(root, "sys/class/powercap/intel-rapl:0/energy_uj"), 0)
    assert "CVE-2020-8694" in RaplMeter.available(root)


def test_meter_samples_a_wrapping_counter(tmp_path, monkeypatch):
    root = make_board(tmp_path / "x86", "x86")
    start = time.perf_counter()
    max_range = 262143999938

    def counter(path):  # 35 W package, starting 10 mJ before the wrap
        uj = (max_range - 10_000) + 35_000.0 * (time.perf_counter() - start) * 1e3
        return int(uj) % max_range

    monkeypatch.setattr(rapl_mod, "_read_uj", counter)
    m = RaplMeter(rate_hz=500.0, root=root)
    m.start()
    t0 = time.perf_counter()
    time.sleep(0.05)
    t1 = time.perf_counter()
    trace = m.stop()
    assert trace.rail == "package-0"
    e = energy_per_inference(trace, t0, t1, 5)
    assert e["mean_power_mw"] == pytest.approx(35_000.0, rel=0.01)
    assert min(trace.power_mw) > 0  # the wrap did not show up as a negative step
