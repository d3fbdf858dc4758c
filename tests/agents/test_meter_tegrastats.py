"""tegrastats: the parser on every verbatim line of board-formats.md 1.2, and the meter with a fake binary."""

import os
import time

import pytest
from fake_boards import install_tools, make_board

from agents.energy import energy_per_inference
from agents.meters import METERS
from agents.meters.base import MeterUnavailable
from agents.meters.tegrastats import TegrastatsMeter, parse_tegrastats_line

# Copied exactly from board-formats.md 1.2 (sources there); the emulator lines keep their ".." placeholders.
NANO_JP4 = "RAM 1501/3956MB (lfb 332x4MB) IRAM 0/252kB(lfb 252kB) CPU [16%@1479,13%@1479,10%@1479,4%@1479] EMC_FREQ 4%@1600 GR3D_FREQ 28%@76 NVDEC 716 VIC_FREQ 0%@140 APE 25 PLL@39C CPU@44C PMIC@100C GPU@41.5C AO@47.5C thermal@42.5C POM_5V_IN 4122/3107 POM_5V_GPU 109/85 POM_5V_CPU 1167/748"

NANO_JP4_PR16 = "RAM 1462/3957MB (lfb 457x4MB) IRAM 0/252kB(lfb 252kB) CPU [43%@1036,44%@1036,36%@1036,34%@1036] EMC_FREQ 6%@1600 GR3D_FREQ 51%@307 NVDEC 192 APE 25 PLL@20.5C CPU@24.5C PMIC@100C GPU@22C AO@29.5C thermal@22.75C POM_5V_IN 3353/1616 POM_5V_GPU 450/61 POM_5V_CPU 613/2"

TX2_JP4 = "RAM 2020/7852MB (lfb 1164x4MB) CPU [9%@345,21%@345,25%@345,3%@345,1%@345,1%@345] EMC_FREQ 0% GR3D_FREQ 0% PLL@42.5C MCPU@42.5C PMIC@100C Tboard@40C GPU@41C BCPU@42.5C thermal@41.9C Tdiode@41.25C VDD_SYS_GPU 153/158 VDD_SYS_SOC 536/547 VDD_4V0_WIFI 633/527 VDD_IN 3140/3208 VDD_SYS_CPU 536/590 VDD_SYS_DDR 557/601"

TX2_JP4_EMULATOR = "RAM 696/7854MB (lfb 1675x4MB) CPU [..%@345,...] EMC_FREQ 1%@665 GR3D_FREQ ..%@140 APE 150 MTS fg 0% bg 0% BCPU@30C MCPU@30C GPU@28C PLL@30C Tboard@26C Tdiode@27C PMIC@100C thermal@29.2C VDD_IN 1383/1383 VDD_CPU 153/191 VDD_GPU 76/76 VDD_SOC 384/384 VDD_WIFI 364/335 VDD_DDR 192/201"

TX2NX_JP46_NONROOT = "RAM 1689/3825MB (lfb 339x4MB) SWAP 0/1913MB (cached 0MB) CPU [3%@345,off,off,0%@345,1%@345,1%@345] EMC_FREQ 0% GR3D_FREQ 0% PLL@50.5C MCPU@50.5C PMIC@50C GPU@50C BCPU@50.5C thermal@50.3C"

XAVIER_JP4 = "RAM 14700/15692MB (lfb 3x2MB) SWAP 898/8192MB (cached 23MB) CPU [0%@1190,0%@1190,0%@1190,0%@1190,0%@1190,0%@1190,0%@1190,0%@1190] EMC_FREQ 0% GR3D_FREQ 0% AO@30C GPU@30.5C Tboard@31C Tdiode@32C AUX@30.5C CPU@31.5C thermal@30.8C PMIC@100C GPU 463/463 CPU 618/618 SOC 2936/2936 CV 0/0 VDDRQ 309/309 SYS5V 3306/3306"

XAVIER_JP4_EMULATOR = "RAM 408/15823MB (lfb 3702x4MB) SWAP 0/7911MB (cached 0MB) CPU [..%@2265,...] EMC_FREQ 0%@2133 GR3D_FREQ ..%@1377 APE 150 MTS fg 0% bg 0% AO@26.5C GPU@28C iwlwifi@30C Tdiode@31.25C PMIC@100C AUX@27C CPU@28C thermal@27.45C Tboard@27C GPU 1155/1155 CPU 385/385 SOC 2502/2502 CV 0/0 VDDRQ 192/192 SYS5V 2692/2692"

XAVIER_JP5_FRAGMENT = "[0%@1190,1%@1190,0%@1190,0%@1189,0%@1190,0%@1191,0%@1190,0%@1190] EMC_FREQ 0%@1331 GR3D_FREQ 0%@114 VIC_FREQ 115 APE 150 AUX@36C CPU@36.5C thermal@35.7C Tboard@37C AO@35C GPU@35C Tdiode@38.75C PMIC@50C GPU 467mW/467mW CPU 467mW/467mW SOC 1245mW/1245mW CV 0mW/0mW VDDRQ 311mW/311mW SYS5V 2768mW/2768mW"

XAVIER_NX_JP5 = "RAM 2690/6854MB (lfb 6x1MB) SWAP 479/3427MB (cached 3MB) CPU [3%@1904,7%@1906,1%@1905,0%@1907,off,off] EMC_FREQ 0%@1600 GR3D_FREQ 0%@[510] VIC_FREQ 601 APE 150 AUX@39C CPU@39.5C AO@37.5C GPU@37.5C PMIC@50C VDD_IN 5079mW/5079mW VDD_CPU_GPU_CV 696mW/696mW VDD_SOC 1104mW/1104mW"

AGX_ORIN_JP5 = "04-24-2023 00:01:24 RAM 1282/62795MB (lfb 15152x4MB) SWAP 0/31398MB (cached 0MB) CPU [0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@0 GR3D2_FREQ 0%@0 VIC_FREQ 729 APE 174 CV0@-256C CPU@42.593C Tboard@32C SOC2@39.343C Tdiode@33.25C SOC0@39.375C CV1@-256C GPU@-256C tj@42.593C SOC1@40.468C CV2@-256C VDD_GPU_SOC 2399mW/2399mW VDD_CPU_CV 400mW/400mW VIN_SYS_5V0 4032mW/4032mW NC 0mW/0mW VDDQ_VDD2_1V8AO 301mW/301mW NC 0mW/0mW"

AGX_ORIN_JP5_2025 = "04-11-2025 10:36:27 RAM 4321/62801MB (lfb 1759x4MB) SWAP 19/31400MB (cached 0MB) CPU [0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] VIC_FREQ 729 APE 174 CV0@-256C CPU@44.562C Tboard@32C SOC2@40.093C Tdiode@33C SOC0@41.093C CV1@-256C GPU@-256C tj@44.343C SOC1@41.25C CV2@-256C VDD_GPU_SOC 2340mW/2340mW VDD_CPU_CV 390mW/390mW VIN_SYS_5V0 4025mW/4025mW NC 0mW/0mW VDDQ_VDD2_1V8AO 301mW/301mW NC 0mW/0mW"

ORIN_NANO_JP6 = "11-30-2025 13:26:01 RAM 2461/7620MB (lfb 3x2MB) SWAP 1243/3810MB (cached 5MB) CPU [19%@729,14%@729,22%@729,8%@729,15%@729,17%@729] EMC_FREQ 4%@2133 GR3D_FREQ 0%@[305] NVDEC off NVJPG off NVJPG1 off VIC off OFA off APE 200 cpu@46.531C soc2@47.312C soc0@46.593C gpu@48.218C tj@48.843C soc1@48.843C VDD_IN 5704mW/5704mW VDD_CPU_GPU_CV 831mW/831mW VDD_SOC 1624mW/1624mW"

AGX_ORIN_JP7 = "07-25-2026 09:08:28 RAM 20642/62817MB (lfb 1x2MB) CPU [23%@2201,10%@2201,4%@2201,14%@2201,30%@2201,18%@2201,10%@2201,10%@2201,33%@2201,7%@2201,5%@2201,27%@2201] EMC_FREQ 3%@3199 GR3D_FREQ 12%@[1300,1300] NVENC0 off NVDEC0 off NVJPG0 off NVJPG1 off VIC off OFA off NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 cpu@52.968C/52.968C soc2@48.406C/48.406C soc0@49.531C/49.531C gpu@47.625C/47.625C VDD_GPU_SOC 5139mW/5139mW/5139mW VDD_CPU_CV 3268mW/3268mW/3268mW VIN_SYS_5V0 5500mW/5500mW/5500mW"


def rails(line):
    return {name: (r["cur_mw"], r["avg_mw"]) for name, r in parse_tegrastats_line(line)["rails"].items()}


def test_nano_jp4():
    d = parse_tegrastats_line(NANO_JP4)
    assert d["timestamp"] is None
    assert d["ram"] == {
        "used": 1501,
        "total": 3956,
        "unit": "MB",
        "lfb_blocks": 332,
        "lfb_size": 4,
        "lfb_unit": "MB",
    }
    assert d["iram"] == {"used": 0, "total": 252, "unit": "kB", "lfb_size": 252, "lfb_unit": "kB"}
    assert d["swap"] is None
    assert [c["load_pct"] for c in d["cpu"]] == [16, 13, 10, 4]
    assert {c["freq_mhz"] for c in d["cpu"]} == {1479}
    assert d["emc"] == {"load_pct": 4, "freq_mhz": 1600, "freqs_mhz": [1600]}
    assert d["gr3d"] == {"load_pct": 28, "freq_mhz": 76, "freqs_mhz": [76]}
    assert d["freqs"]["VIC_FREQ"] == {"load_pct": 0, "freq_mhz": 140, "freqs_mhz": [140]}
    assert d["engines"] == {"NVDEC": 716, "APE": 25}
    assert d["temps_c"] == {"PLL": 39.0, "CPU": 44.0, "PMIC": 100.0, "GPU": 41.5, "AO": 47.5, "thermal": 42.5}
    assert rails(NANO_JP4) == {"POM_5V_IN": (4122, 3107), "POM_5V_GPU": (109, 85), "POM_5V_CPU": (1167, 748)}
    assert d["unparsed"] == []


def test_nano_jp4_engine_appears_and_cut_value():
    d = parse_tegrastats_line(NANO_JP4_PR16)
    assert d["engines"] == {"NVDEC": 192, "APE": 25}  # NVDEC only while the decoder runs (jtop PR #16)
    assert d["gr3d"]["freq_mhz"] == 307
    assert rails(NANO_JP4_PR16)["POM_5V_CPU"] == (613, 2)  # as the PR shows it
    assert d["unparsed"] == []


def test_tx2_jp4_non_root_fields_without_frequency():
    d = parse_tegrastats_line(TX2_JP4)
    assert d["emc"] == {"load_pct": 0, "freq_mhz": None, "freqs_mhz": None}
    assert d["gr3d"] == {"load_pct": 0, "freq_mhz": None, "freqs_mhz": None}
    assert len(d["cpu"]) == 6 and d["swap"] is None
    assert d["temps_c"]["Tdiode"] == 41.25 and d["temps_c"]["thermal"] == 41.9
    assert rails(TX2_JP4) == {
        "VDD_SYS_GPU": (153, 158),
        "VDD_SYS_SOC": (536, 547),
        "VDD_4V0_WIFI": (633, 527),
        "VDD_IN": (3140, 3208),
        "VDD_SYS_CPU": (536, 590),
        "VDD_SYS_DDR": (557, 601),
    }
    assert d["unparsed"] == []


def test_tx2_emulator_names_and_placeholders():
    d = parse_tegrastats_line(TX2_JP4_EMULATOR)
    assert d["mts"] == {"fg_pct": 0, "bg_pct": 0}
    assert d["emc"]["freq_mhz"] == 665 and d["engines"]["APE"] == 150
    assert list(rails(TX2_JP4_EMULATOR)) == ["VDD_IN", "VDD_CPU", "VDD_GPU", "VDD_SOC", "VDD_WIFI", "VDD_DDR"]
    assert rails(TX2_JP4_EMULATOR)["VDD_IN"] == (1383, 1383)
    assert d["cpu"][0]["freq_mhz"] is None and d["cpu"][0]["raw"] == "..%@345"  # kept, not guessed


def test_tx2_nx_without_rails_and_offline_cores():
    d = parse_tegrastats_line(TX2NX_JP46_NONROOT)
    assert d["rails"] == {}
    assert [c["online"] for c in d["cpu"]] == [True, False, False, True, True, True]
    assert d["swap"] == {"used": 0, "total": 1913, "unit": "MB", "cached": 0, "cached_unit": "MB"}
    assert d["unparsed"] == []


def test_xavier_jp4_rails_without_vdd_prefix():
    d = parse_tegrastats_line(XAVIER_JP4)
    assert rails(XAVIER_JP4) == {
        "GPU": (463, 463),
        "CPU": (618, 618),
        "SOC": (2936, 2936),
        "CV": (0, 0),
        "VDDRQ": (309, 309),
        "SYS5V": (3306, 3306),
    }
    assert d["temps_c"]["GPU"] == 30.5 and len(d["cpu"]) == 8
    assert d["swap"]["cached"] == 23
    assert d["unparsed"] == []
    e = parse_tegrastats_line(XAVIER_JP4_EMULATOR)
    assert e["emc"]["freq_mhz"] == 2133 and e["temps_c"]["iwlwifi"] == 30.0
    assert rails(XAVIER_JP4_EMULATOR)["SYS5V"] == (2692, 2692)


def test_xavier_jp5_fragment_with_mw_suffix():
    d = parse_tegrastats_line(XAVIER_JP5_FRAGMENT)
    assert len(d["cpu"]) == 8 and d["cpu"][3]["freq_mhz"] == 1189  # the line starts at the CPU list
    assert d["engines"] == {"VIC_FREQ": 115, "APE": 150}
    assert rails(XAVIER_JP5_FRAGMENT) == {
        "GPU": (467, 467),
        "CPU": (467, 467),
        "SOC": (1245, 1245),
        "CV": (0, 0),
        "VDDRQ": (311, 311),
        "SYS5V": (2768, 2768),
    }
    assert d["unparsed"] == []


def test_xavier_nx_jp5_bracketed_gpu():
    d = parse_tegrastats_line(XAVIER_NX_JP5)
    assert d["gr3d"] == {"load_pct": 0, "freq_mhz": 510, "freqs_mhz": [510]}
    assert rails(XAVIER_NX_JP5) == {
        "VDD_IN": (5079, 5079),
        "VDD_CPU_GPU_CV": (696, 696),
        "VDD_SOC": (1104, 1104),
    }
    assert d["unparsed"] == []


def test_agx_orin_jp5_timestamp_offline_zones_and_nc():
    d = parse_tegrastats_line(AGX_ORIN_JP5)
    assert d["timestamp"] == "04-24-2023 00:01:24"
    assert d["ram"]["total"] == 62795 and len(d["cpu"]) == 12
    assert d["gr3d"]["freq_mhz"] == 0 and d["freqs"]["GR3D2_FREQ"]["load_pct"] == 0  # same load twice (#362)
    assert d["temps_c"]["GPU"] is None and d["temps_c"]["CV0"] is None  # -256C: powered off
    assert d["temps_c"]["tj"] == 42.593
    assert rails(AGX_ORIN_JP5) == {
        "VDD_GPU_SOC": (2399, 2399),
        "VDD_CPU_CV": (400, 400),
        "VIN_SYS_5V0": (4032, 4032),
        "VDDQ_VDD2_1V8AO": (301, 301),
    }
    assert d["skipped_rails"] == ["NC", "NC"]
    assert d["unparsed"] == []


def test_agx_orin_jp5_gpc_array():
    d = parse_tegrastats_line(AGX_ORIN_JP5_2025)
    assert d["gr3d"] == {"load_pct": 0, "freq_mhz": 0, "freqs_mhz": [0, 0]}  # not half-matched as "0"
    assert d["engines"] == {"VIC_FREQ": 729, "APE": 174}
    assert rails(AGX_ORIN_JP5_2025)["VIN_SYS_5V0"] == (4025, 4025)
    assert d["unparsed"] == []


def test_orin_nano_jp6_lowercase_temps_and_off_engines():
    d = parse_tegrastats_line(ORIN_NANO_JP6)
    assert d["timestamp"] == "11-30-2025 13:26:01"
    assert d["gr3d"]["freqs_mhz"] == [305]
    assert d["engines"] == {
        "NVDEC": "off",
        "NVJPG": "off",
        "NVJPG1": "off",
        "VIC": "off",
        "OFA": "off",
        "APE": 200,
    }
    assert d["temps_c"] == {
        "cpu": 46.531,
        "soc2": 47.312,
        "soc0": 46.593,
        "gpu": 48.218,
        "tj": 48.843,
        "soc1": 48.843,
    }
    assert rails(ORIN_NANO_JP6) == {
        "VDD_IN": (5704, 5704),
        "VDD_CPU_GPU_CV": (831, 831),
        "VDD_SOC": (1624, 1624),
    }
    assert d["unparsed"] == []


def test_agx_orin_jp7_two_value_temps_three_value_rails():
    d = parse_tegrastats_line(AGX_ORIN_JP7)
    assert d["gr3d"] == {"load_pct": 12, "freq_mhz": 1300, "freqs_mhz": [1300, 1300]}
    assert d["temps_c"]["cpu"] == 52.968
    r = d["rails"]["VDD_GPU_SOC"]
    assert (r["cur_mw"], r["avg_mw"], r["values_mw"]) == (5139, 5139, [5139, 5139, 5139])
    assert set(d["rails"]) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"}
    assert d["engines"]["NVDLA1"] == "off" and d["engines"]["PVA0_FREQ"] == "off"
    assert d["unparsed"] == []


def test_odd_fragments_never_raise():
    assert parse_tegrastats_line("GR3D_FREQ @[1000,1000,1000]")["gr3d"] == {
        "load_pct": None,
        "freq_mhz": 1000,
        "freqs_mhz": [1000, 1000, 1000],
    }  # Thor: per-GPC frequencies, no load
    old = parse_tegrastats_line("cpu [17%,13%,29%,5%]@408")  # TX1, L4T R28
    assert [c["freq_mhz"] for c in old["cpu"]] == [408] * 4
    assert parse_tegrastats_line("EMC_FREQ 0%@2133 CPU [3%@345")["unparsed"] == ["CPU", "[3%@345"]
    for junk in ("", None, "\x00", "RAM", "VDD_IN 12mW/", "@@@ 1/2/3 %%"):
        parse_tegrastats_line(junk)


# ---------------------------------------------------------------------------------------------------------
# the meter


@pytest.fixture
def fake_tegrastats(tmp_path, monkeypatch):
    monkeypatch.setattr("agents.meters.tegrastats.TEGRASTATS_MIN_INTERVAL_MS", 10)  # fast fake, fast test

    def install(lines):
        bin_dir = install_tools(tmp_path / "bin", tegrastats_lines=lines)
        monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ.get("PATH", ""))
        return bin_dir

    return install


def test_meter_reads_lines_as_they_arrive(tmp_path, fake_tegrastats):
    fake_tegrastats([NANO_JP4])
    root = make_board(tmp_path / "nano", "nano")
    assert METERS.get("tegrastats") is TegrastatsMeter
    assert TegrastatsMeter.available(root) is None
    m = TegrastatsMeter(rate_hz=50.0, root=root)
    assert m.interval_ms == 20
    t_before = time.perf_counter()
    m.start()
    t0 = time.perf_counter()
    time.sleep(0.25)
    t1 = time.perf_counter()
    assert m.samples_in(t0, t1) >= 5
    trace = m.stop()
    m.close()
    assert trace.rail == "POM_5V_IN" and "jetson-stats #51" in trace.rule
    assert set(trace.power_mw) == {4122.0}
    assert t_before <= trace.t_s[0] <= t0 and trace.t_s[-1] >= t1  # brackets the window
    e = energy_per_inference(trace, t0, t1, 10)
    assert e["mean_power_mw"] == pytest.approx(4122.0)
    assert 20.0 < e["sample_rate_hz"] < 60.0
    assert m.describe()["rails_seen"] == ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]


def test_meter_sums_rails_on_agx_xavier(tmp_path, fake_tegrastats):
    fake_tegrastats([XAVIER_JP5_FRAGMENT])
    m = TegrastatsMeter(
        rate_hz=50.0, root=str(tmp_path), board_model="NVIDIA Jetson AGX Xavier Developer Kit"
    )
    m.start()
    trace = m.stop()
    assert trace.rail == "GPU+CPU+SOC+CV+VDDRQ+SYS5V"
    assert set(trace.power_mw) == {467.0 + 467 + 1245 + 0 + 311 + 2768}
    assert "sum of" in trace.rule and "SYS5V alone is not the total" in trace.rule


def test_meter_named_rail_and_errors(tmp_path, fake_tegrastats):
    fake_tegrastats([ORIN_NANO_JP6])
    m = TegrastatsMeter(rail="VDD_SOC", rate_hz=50.0, root=str(tmp_path))
    m.start()
    trace = m.stop()
    assert trace.rail == "VDD_SOC" and set(trace.power_mw) == {1624.0} and "not the board total" in trace.rule
    with pytest.raises(MeterUnavailable, match="rail 'POM_5V_IN' not in tegrastats' rails"):
        TegrastatsMeter(rail="POM_5V_IN", rate_hz=50.0, root=str(tmp_path)).start()


def test_meter_without_rails_says_why(tmp_path, fake_tegrastats):
    fake_tegrastats([TX2NX_JP46_NONROOT])
    m = TegrastatsMeter(rate_hz=50.0, root=str(tmp_path))
    with pytest.raises(MeterUnavailable, match="no power rails"):
        m.start()


def test_interval_floor(tmp_path, fake_tegrastats, monkeypatch):
    fake_tegrastats([NANO_JP4])
    monkeypatch.setattr("agents.meters.tegrastats.TEGRASTATS_MIN_INTERVAL_MS", 100)  # the real floor
    assert TegrastatsMeter(rate_hz=200.0, root=str(tmp_path)).interval_ms == 100
    assert TegrastatsMeter(rate_hz=1.0, root=str(tmp_path)).interval_ms == 1000


def test_meter_without_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert "tegrastats not found" in TegrastatsMeter.available(str(tmp_path))
    with pytest.raises(MeterUnavailable):
        TegrastatsMeter(root=str(tmp_path))
