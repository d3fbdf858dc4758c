"""Board state: nvpmodel and jetson_clocks output (verbatim, board-formats.md 3.3/3.4), GPU, EMC, merge."""

import os

import pytest
from fake_boards import BOARDS, NANO_JETSON_CLOCKS_SHOW, install_tools, make_board

from agents import jetson_sysfs
from agents.board import (
    collect_board_state,
    parse_jetson_clocks_show,
    parse_nvpmodel_query,
    query_jetson_clocks,
    query_nvpmodel,
    read_jetson_clocks,
    read_nvpmodel,
    run_command,
)
from agents.environment import BOARD_KEYS, collect_environment
from agents.jetson_sysfs import DEBUGFS_ROOT_ONLY, read_emc, read_igpu, read_soc

# nvpmodel -q, verbatim (AGX Xavier report; AGX Xavier setup notes; jtop's Nano emulator)
XAVIER_NVPMODEL_NONROOT = """NV Fan Mode:quiet
NV Power Mode: MODE_15W_DESKTOP
7
NVPM ERROR: Error opening /sys/kernel/nvpmodel_emc_cap/emc_iso_cap: 13
"""
XAVIER_NVPMODEL = "NV Fan Mode:cool\nNV Power Mode: MAXN\n0\n"
NANO_NVPMODEL = "NVPM WARN: fan mode is not set!\nNV Power Mode: MAXN\n0\n"

# jetson_clocks --show, verbatim (board-formats.md 3.4); `\x20` is the trailing space the tool prints
ORIN_JP50_SHOW = """SOC family:tegra234  Machine:NVIDIA Orin Jetson-Small Developer Kit
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=115200 MaxFreq=2201600 CurrentFreq=2112000 IdleStates: WFI=1 c7=1\x20
"""
ORIN_JP51_TAIL = """GPU MinFreq=306000000 MaxFreq=1300500000 CurrentFreq=306000000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=2133000000 FreqOverride=0
DLA0_CORE:   Online=1 MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
DLA0_FALCON: Online=1 MinFreq=0 MaxFreq=844800000 CurrentFreq=844800000
PVA0_VPS0: Online=1 MinFreq=0 MaxFreq=1152000000 CurrentFreq=1152000000
FAN Dynamic Speed control=active hwmon2_pwm1=55
NV Power Mode: MAXN
"""
ORIN_NX_SHOW = """SOC family:tegra234  Machine:NVIDIA Jetson Orin NX Engineering Reference Developer Kit
Online CPUs: 0-7
cpu0:  Online=1 Governor=schedutil MinFreq=729600 MaxFreq=1984000 CurrentFreq=1728000 IdleStates: WFI=1 c7=1\x20
"""
# Orin Nano JP6 lines quoted in 3.4; the TX1 R28 line is built from its description (typo included)
ORIN_NANO_JP6_LINES = "Active GPU TPCs: 4\nFAN Dynamic Speed Control=nvfancontrol hwmon0_pwm1=69\n"
TX1_R28_CPU = "cpu0: Gonvernor=interactive MinFreq=102000 MaxFreq=1734000 CurrentFreq=1734000\n"


def test_nvpmodel_query():
    q = parse_nvpmodel_query(XAVIER_NVPMODEL_NONROOT)
    assert (q["mode"], q["id"], q["fan_mode"]) == ("MODE_15W_DESKTOP", 7, "quiet")
    assert q["messages"] == ["NVPM ERROR: Error opening /sys/kernel/nvpmodel_emc_cap/emc_iso_cap: 13"]
    assert parse_nvpmodel_query(XAVIER_NVPMODEL) == {
        "mode": "MAXN",
        "id": 0,
        "fan_mode": "cool",
        "messages": [],
    }
    nano = parse_nvpmodel_query(NANO_NVPMODEL)
    assert (nano["mode"], nano["id"], nano["fan_mode"]) == ("MAXN", 0, None)
    assert nano["messages"] == ["NVPM WARN: fan mode is not set!"]
    verbose = parse_nvpmodel_query(
        "NVPM VERB: Config file: /etc/nvpmodel.conf\n"
        "NVPM VERB: POWER_MODEL: ID=0 NAME=MAXN\n"
        "NVPM VERB: POWER_MODEL: ID=1 NAME=5W\n"
        "NVPM VERB: PM_CONFIG: DEFAULT=MAXN(0)\n"
        "NV Power Mode: 5W\n1\n"
    )
    assert verbose["modes"] == {"0": "MAXN", "1": "5W"} and verbose["default"] == {"mode": "MAXN", "id": 0}
    assert verbose["id"] == 1
    assert parse_nvpmodel_query("NV Power Mode: MAXN_SUPER\n2\n")["id"] == 2
    assert parse_nvpmodel_query("NVPM ERROR: cannot open conf\n") is None
    assert parse_nvpmodel_query("") is None and parse_nvpmodel_query(None) is None


def test_jetson_clocks_nano():
    s = parse_jetson_clocks_show(NANO_JETSON_CLOCKS_SHOW.format(locked=0, mode="MAXN"))
    assert (s["soc_family"], s["machine"]) == ("tegra210", "jetson-nano")
    assert s["online_cpus"] == "0-3" and s["cluster_switching"] == "Disabled"
    assert s["cpus"]["cpu0"] == {
        "online": True,
        "governor": "schedutil",
        "min_khz": 102000,
        "max_khz": 1428000,
        "cur_khz": 1428000,
        "idle_states": {"WFI": 1, "c7": 1},
    }
    assert s["gpu"] == {"min_hz": 76800000, "max_hz": 921600000, "cur_hz": 153600000}
    assert s["emc"] == {
        "min_hz": 204000000,
        "max_hz": 1600000000,
        "cur_hz": 1600000000,
        "freq_override": False,
    }
    assert s["fan"] == {"raw": "Fan: speed=0", "speed": 0}
    assert s["nvpmodel"] == "MAXN" and s["clocks_locked"] is False and s["other"] == []
    locked = parse_jetson_clocks_show(NANO_JETSON_CLOCKS_SHOW.format(locked=1, mode="MAXN"))
    assert locked["clocks_locked"] is True


def test_jetson_clocks_orin_variants():
    s = parse_jetson_clocks_show(ORIN_JP50_SHOW + ORIN_JP51_TAIL)
    assert s["machine"] == "NVIDIA Orin Jetson-Small Developer Kit"
    assert s["cpus"]["cpu0"]["cur_khz"] == 2112000 and s["cpus"]["cpu0"]["idle_states"] == {"WFI": 1, "c7": 1}
    assert s["gpu"]["max_hz"] == 1300500000 and s["emc"]["cur_hz"] == 2133000000
    assert set(s["engines"]) == {"DLA0_CORE", "DLA0_FALCON", "PVA0_VPS0"}
    assert s["engines"]["DLA0_FALCON"] == {
        "online": True,
        "min_hz": 0,
        "max_hz": 844800000,
        "cur_hz": 844800000,
    }
    assert s["fan"]["hwmon2_pwm1"] == 55 and s["other"] == []
    nx = parse_jetson_clocks_show(ORIN_NX_SHOW)  # two spaces after "cpu0:", trailing spaces
    assert nx["cpus"]["cpu0"]["min_khz"] == 729600 and nx["cpus"]["cpu0"]["governor"] == "schedutil"
    assert nx["gpu"] is None and nx["clocks_locked"] is None
    jp6 = parse_jetson_clocks_show(ORIN_NANO_JP6_LINES)
    assert jp6["active_gpu_tpcs"] == 4 and jp6["fan"]["hwmon0_pwm1"] == 69
    tx1 = parse_jetson_clocks_show(TX1_R28_CPU)
    assert tx1["cpus"]["cpu0"]["governor"] == "interactive" and tx1["cpus"]["cpu0"]["online"] is None


def test_jetson_clocks_cpus_in_natural_order():
    text = "".join(
        f"cpu{i}: Online=1 Governor=schedutil MinFreq=1 MaxFreq=2 CurrentFreq=2\n" for i in (0, 1, 10, 11, 2)
    )
    assert list(parse_jetson_clocks_show(text)["cpus"]) == ["cpu0", "cpu1", "cpu2", "cpu10", "cpu11"]
    assert parse_jetson_clocks_show("garbage\n")["other"] == ["garbage"]
    assert parse_jetson_clocks_show(None)["cpus"] == {}


def test_igpu(tmp_path):
    nano = make_board(tmp_path / "nano", "nano")
    gpu, why = read_igpu(nano)
    g = gpu["57000000.gpu"]
    assert why is None and g["of_node"] == "gpu" and g["load_permille"] == 150 and g["load_pct"] == 15.0
    assert g["available_hz"] == [76800000, 153600000, 230400000, 921600000] and g["railgate_enable"] == 1
    orin = make_board(tmp_path / "orin", "orin")
    gpu, _ = read_igpu(orin)  # load through realpath(device): /sys/devices/platform/bus@0/17000000.gpu/load
    assert gpu["17000000.gpu"]["load_permille"] == 0 and gpu["17000000.gpu"]["max_hz"] == 1020000000
    xavier = make_board(tmp_path / "xavier", "xavier")
    assert read_igpu(xavier)[0]["17000000.gv11b"]["of_node"] == "gv11b"
    gpu, why = read_igpu(make_board(tmp_path / "x86", "x86"))
    assert gpu is None and "gv11b" in why


def test_emc(tmp_path, monkeypatch):
    nano = make_board(tmp_path / "nano", "nano")
    emc, why = read_emc(nano)
    assert why is None and emc["source"] == "debugfs tegra210"
    assert (emc["cur_hz"], emc["min_hz"], emc["max_hz"], emc["locked"]) == (
        1600000000,
        204000000,
        1600000000,
        False,
    )
    orin = make_board(tmp_path / "orin", "orin")
    assert read_emc(orin)[0]["source"] == "debugfs bpmp" and read_emc(orin)[0]["max_hz"] == 3199000000
    emc, why = read_emc(make_board(tmp_path / "x86", "x86"))
    assert emc is None and "not mounted" in why
    thor = tmp_path / "thor/sys/class/devfreq/bwmgr"
    thor.mkdir(parents=True)
    (thor / "cur_freq").write_text("3199000000\n")
    assert read_emc(str(tmp_path / "thor"))[0]["cur_hz"] == 3199000000

    def denied(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(jetson_sysfs, "_read_strict", denied)  # not root: debugfs is mode 700
    assert read_emc(nano) == (None, DEBUGFS_ROOT_ONLY)


def test_soc(tmp_path):
    assert read_soc(make_board(tmp_path / "nano", "nano")) == "tegra210"
    assert read_soc(make_board(tmp_path / "orin", "orin")) == "tegra234"
    assert read_soc(make_board(tmp_path / "x86", "x86")) is None


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_collect_board_state_never_crashes(tmp_path, name):
    root = make_board(tmp_path / name, name)
    state = collect_board_state(root)
    assert set(state) == set(BOARD_KEYS)
    assert state["nvpmodel"] is None and state["jetson_clocks"] is None  # never run under a fake root
    reasons = state["board_reasons"]
    if state["l4t"]:
        assert reasons["nvpmodel"] == "commands are not run under a fake root"
    else:
        assert reasons["igpu"].startswith("not a Jetson") and reasons["emc"].startswith("not a Jetson")
    env = collect_environment(root, environ={})
    assert all(key in env for key in BOARD_KEYS)


def test_nano_environment_has_board_state(tmp_path):
    env = collect_environment(make_board(tmp_path / "nano", "nano"), environ={})
    assert env["soc"] == "tegra210" and env["emc"]["cur_hz"] == 1600000000
    assert env["igpu"]["57000000.gpu"]["load_pct"] == 15.0 and env["l4t"] == "32.7.1"
    assert "igpu" not in env["board_reasons"]


def test_commands_with_fake_binaries(tmp_path):
    bin_dir = install_tools(tmp_path / "bin", nvpmodel=True, jetson_clocks=True, sudo="ok")
    state, why = query_nvpmodel(os.path.join(bin_dir, "nvpmodel"))
    assert why is None and (state["mode"], state["id"]) == ("5W", 1)
    state, why = query_jetson_clocks(os.path.join(bin_dir, "jetson_clocks"), os.path.join(bin_dir, "sudo"))
    assert why is None and state["soc_family"] == "tegra210" and state["clocks_locked"] is False
    refuse = install_tools(tmp_path / "bin2", jetson_clocks=True, sudo="refuse")
    state, why = query_jetson_clocks(os.path.join(refuse, "jetson_clocks"), os.path.join(refuse, "sudo"))
    assert state is None and "a password is required" in why
    assert read_nvpmodel(str(tmp_path)) == (None, "commands are not run under a fake root")
    assert read_jetson_clocks(str(tmp_path))[0] is None


def test_run_command_timeout_and_missing(tmp_path):
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nexec sleep 30\n")
    hang.chmod(0o755)
    rc, _, why = run_command([str(hang)], timeout_s=0.3)
    assert rc is None and "did not finish within 0.3 s" in why
    rc, _, why = run_command([str(tmp_path / "none")])
    assert rc is None and why.startswith("cannot run")
