"""INA3221 discovery per board layout (board-formats.md 2), the total-rail choice, values and units."""

import os
import time

import pytest
from fake_boards import POWER, make_board, rail_mw

from agents.energy import energy_per_inference
from agents.meters import METERS
from agents.meters.base import MeterUnavailable, measure_idle
from agents.meters.ina3221 import Ina3221Meter, find_ina3221_channels

# board -> (layout, total rail or None = sum, INA3221 devices)
EXPECTED = {
    "nano": ("iio", "POM_5V_IN", {"6-0040"}),
    "tx2": ("iio", "VDD_IN", {"0-0040", "0-0041"}),
    "xavier": ("iio", None, {"1-0040", "1-0041"}),
    "xavier_jp5": ("hwmon", None, {"1-0040", "1-0041"}),
    "agx_orin": ("hwmon", None, {"1-0040", "1-0041"}),
    "orin": ("hwmon", "VDD_IN", {"1-0040"}),
}


@pytest.fixture
def board(tmp_path):
    return lambda name: make_board(tmp_path / name, name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_discovery_per_board(board, name):
    root = board(name)
    layout, total, devices = EXPECTED[name]
    channels, notes = find_ina3221_channels(root)
    assert [c["rail"] for c in channels] == list(POWER[name])  # each chip once, despite the symlinks
    assert {c["layout"] for c in channels} == {layout}
    assert {c["device"] for c in channels} == devices
    probe = Ina3221Meter.probe(root)
    assert probe["available"] is True and probe["reason"] is None and probe["found"] is True
    assert probe["total_rail"] == total
    for r in probe["rails"]:
        assert r["power_mw"] == pytest.approx(rail_mw(name, r["rail"]))
    if layout == "hwmon":  # in7 = sum of shunt voltages is never a rail
        assert any("sum of shunt voltages" in n for n in notes)
        assert all(r["channel"] in (1, 2, 3) for r in probe["rails"])


def test_units_jp4_iio(board):
    root = board("nano")
    rails = {r["rail"]: r for r in Ina3221Meter.probe(root)["rails"]}
    p = rails["POM_5V_IN"]
    assert (p["power_mw"], p["voltage_mv"], p["current_ma"]) == (4122.0, 5000.0, 824.0)  # mW, mV, mA
    assert p["channel"] == 0 and p["folder"].endswith("/6-0040/iio:device0")


def test_units_jp5_hwmon_power_is_mv_times_ma(board):
    root = board("orin")
    p = {r["rail"]: r for r in Ina3221Meter.probe(root)["rails"]}["VDD_IN"]
    assert (p["voltage_mv"], p["current_ma"]) == (5000.0, 1141.0)
    assert p["power_mw"] == pytest.approx(5705.0)  # no power file on hwmon: 5000 mV x 1141 mA / 1000


def test_tx2_iio_device_folder(board):
    root = board("tx2")
    vdd_in = next(c for c in find_ina3221_channels(root)[0] if c["rail"] == "VDD_IN")
    assert vdd_in["device"] == "0-0041" and vdd_in["channel"] == 0
    assert vdd_in["folder"].endswith("0-0041/iio_device")


def test_agx_orin_nc_channels_skipped_with_a_note(board):
    root = board("agx_orin")
    channels, notes = find_ina3221_channels(root)
    assert "NC" not in [c["rail"] for c in channels]
    assert sum("'NC': not connected" in n for n in notes) == 2
    probe = Ina3221Meter.probe(root)
    assert "jetson-stats #344" in probe["rule"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_meter_measures_the_total(board, name):
    root = board(name)
    m = METERS.get("ina3221")(rate_hz=500.0, root=root)
    _, total, _ = EXPECTED[name]
    expected = rail_mw(name, total) if total else sum(rail_mw(name, r) for r in POWER[name])
    m.start()
    t0 = time.perf_counter()
    time.sleep(0.03)
    t1 = time.perf_counter()
    trace = m.stop()
    m.close()
    assert trace.rail == (total or "+".join(POWER[name]))
    assert trace.rule and (total or "sum of") in trace.rule
    assert trace.t_s[0] <= t0 and trace.t_s[-1] >= t1
    e = energy_per_inference(trace, t0, t1, 3)
    assert e["mean_power_mw"] == pytest.approx(expected)
    assert e["gross_mj"] == pytest.approx(expected * (t1 - t0) / 3)
    assert m.describe()["achieved_rate_hz"] > 50


def test_named_rail_sum_and_unknown_rail(board):
    root = board("nano")
    m = Ina3221Meter(rail="POM_5V_GPU", root=root)
    assert m.trace_rail() == "POM_5V_GPU" and "not the board total (POM_5V_IN)" in m.rule
    assert m.read_raw() == 109.0
    assert Ina3221Meter(rail="pom_5v_in", root=root).trace_rail() == "POM_5V_IN"  # case-insensitive fallback
    s = Ina3221Meter(rail="sum", root=root)
    assert s.read_raw() == 4122.0 + 109.0 + 1167.0  # what jetson-stats #51 warns against, only when asked
    with pytest.raises(MeterUnavailable, match="rail 'VDD_IN' not found; INA3221 rails here: POM_5V_IN"):
        Ina3221Meter(rail="VDD_IN", root=root)
    assert Ina3221Meter(root=root).rails() == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]


def test_no_chip_and_unreadable_chip(board, tmp_path):
    for name in ("x86", "empty"):
        root = board(name)
        assert "no INA3221 power monitor found" in Ina3221Meter.available(root)
        with pytest.raises(MeterUnavailable):
            Ina3221Meter(root=root)
    root = board("nano")
    iio = os.path.join(root, "sys/devices/50000000.host1x/546c0000.i2c/i2c-6/6-0040/iio:device0")
    for n in range(3):  # every power file unreadable (a folder), and no voltage/current to fall back on
        for kind in ("power", "voltage", "current"):
            path = os.path.join(iio, f"in_{kind}{n}_input")
            os.unlink(path)
        os.mkdir(os.path.join(iio, f"in_power{n}_input"))
    reason = Ina3221Meter.available(root)
    assert reason.startswith("INA3221 found but no rail could be read")


def test_failed_reads_are_counted_not_fatal(board):
    root = board("orin")
    m = Ina3221Meter(root=root, rate_hz=500.0)
    m.start()
    volt = os.path.join(root, "sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040/hwmon/hwmon3/in1_input")
    os.unlink(volt)
    time.sleep(0.02)
    with open(volt, "w") as f:
        f.write("5000\n")
    trace = m.stop()
    assert len(trace) >= 2
    info = m.describe()
    assert info["failed_reads"] >= 1 and "failed reads" in info["notes"][-1]


def test_idle_measurement(board):
    root = board("xavier")
    out = measure_idle(Ina3221Meter(root=root, rate_hz=400.0), 0.05)
    assert out["power_mw"] == pytest.approx(463 + 618 + 2936 + 0 + 309 + 3306)
    assert out["rail"] == "GPU+CPU+SOC+CV+VDDRQ+SYS5V" and out["n_samples"] >= 5


def test_found_through_class_hwmon_alone(tmp_path):
    """A JP5+ board whose i2c folder is not under the usual paths: /sys/class/hwmon/*/name finds it."""
    real = tmp_path / "sys/devices/platform/bus@0/weird/1-0040/hwmon/hwmon7"
    real.mkdir(parents=True)
    (real / "name").write_text("ina3221\n")
    for k, (label, mv, ma) in enumerate([("VDD_IN", 5000, 1000), ("VDD_SOC", 5000, 300)], start=1):
        (real / f"in{k}_label").write_text(label + "\n")
        (real / f"in{k}_input").write_text(f"{mv}\n")
        (real / f"curr{k}_input").write_text(f"{ma}\n")
    link = tmp_path / "sys/class/hwmon/hwmon7"
    link.parent.mkdir(parents=True)
    link.symlink_to(os.path.relpath(str(real), str(link.parent)))
    channels, _ = find_ina3221_channels(str(tmp_path))
    assert [(c["rail"], c["device"]) for c in channels] == [("VDD_IN", "1-0040"), ("VDD_SOC", "1-0040")]
    assert Ina3221Meter(root=str(tmp_path)).read_raw() == 5000.0


def test_info_reports_what_each_meter_found(board):
    from agents.info import collect_info, format_info

    info = collect_info(board("agx_orin"))
    ina = info["meters"]["ina3221"]
    assert ina["available"] is True and ina["registered"] is True and ina["total_rail"] is None
    assert [r["rail"] for r in ina["rails"]] == list(POWER["agx_orin"])
    assert set(ina["devices"]) == {"1-0040", "1-0041"} and any("NC" in n for n in ina["notes"])
    assert info["meters"]["auto"]["chooses"] == "ina3221"
    nvml = info["meters"]["nvml"]
    assert nvml["available"] is False and "Jetson (L4T 35.3.1)" in nvml["reason"]
    assert info["environment"]["nvpmodel_reason"] == "commands are not run under a fake root"
    text = format_info(info)
    assert "rails: VDD_GPU_SOC 2400 mW" in text and "board total: sum of the rails" in text
    x86 = collect_info(board("x86"))
    assert x86["meters"]["rapl"]["available"] is True
    assert x86["meters"]["rapl"]["zones"]["intel-rapl:0"]["name"] == "package-0"
    assert x86["meters"]["auto"]["chooses"] in ("nvml", "rapl")
    assert "intel-rapl:0 package-0" in format_info(x86)
