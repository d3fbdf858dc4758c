import os

import pytest
from fake_boards import BOARDS, make_board

from agents import __version__
from agents.environment import collect_dynamic_state, collect_environment, read_env_vars
from agents.jetson_sysfs import jetpack_for_l4t, read_gpu_devfreq, read_l4t_release
from agents.sysfs import read_board_model, read_cpu_info, read_cpufreq, read_loadavg, read_thermal_zones


@pytest.fixture
def board(tmp_path):
    return lambda name: make_board(tmp_path / name, name)


def test_x86(board):
    root = board("x86")
    cpu = read_cpu_info(root)
    assert cpu["model"] == "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"
    assert cpu["count"] == os.cpu_count()
    assert cpu["online"] == "0-11"
    if hasattr(os, "sched_getaffinity"):
        assert cpu["affinity"] == sorted(os.sched_getaffinity(0))
    freq = read_cpufreq(root)
    assert list(freq) == ["policy0", "policy1"]
    assert freq["policy0"] == {
        "governor": "powersave",
        "cur_khz": 800000,
        "min_khz": 800000,
        "max_khz": 4600000,
        "hw_max_khz": 4600000,
        "cpus": "0",
    }
    assert read_thermal_zones(root) == {"acpitz": 27.8, "x86_pkg_temp": 45.0}
    assert read_board_model(root) == "Dell Inc. OptiPlex 7070"
    assert read_l4t_release(root) is None
    assert read_loadavg(root) == [0.52, 0.58, 0.59]
    assert read_gpu_devfreq(root) is None


def test_jetson_nano(board):
    root = board("nano")
    assert read_l4t_release(root) == "32.7.1"
    assert read_board_model(root) == "NVIDIA Jetson Nano Developer Kit"  # trailing NUL stripped
    cpu = read_cpu_info(root)
    assert cpu["model"] == "Cortex-A57"  # decoded from CPU part, not "ARMv8 Processor rev 1 (v8l)"
    freq = read_cpufreq(root)
    assert list(freq) == ["cpu0", "cpu1", "cpu2", "cpu3"]  # no policy* folders on this kernel
    assert freq["cpu2"]["governor"] == "schedutil" and freq["cpu2"]["max_khz"] == 1428000
    temps = read_thermal_zones(root)
    assert temps == {
        "AO-therm": 36.5,
        "CPU-therm": 31.0,
        "GPU-therm": 30.5,
        "PLL-therm": 29.5,
        "PMIC-Die": 100.0,
        "thermal-fan-est": None,
    }
    gpu = read_gpu_devfreq(root)
    assert gpu == {
        "57000000.gpu": {
            "governor": "nvhost_podgov",
            "cur_hz": 76800000,
            "min_hz": 76800000,
            "max_hz": 921600000,
        }
    }


def test_jetson_xavier(board):
    root = board("xavier")
    assert read_l4t_release(root) == "32.6.1"
    assert jetpack_for_l4t("32.6.1") == "4.6"
    assert read_board_model(root) == "NVIDIA Jetson AGX Xavier Developer Kit"
    cpu = read_cpu_info(root)
    assert cpu["model"] == "Carmel" and cpu["hardware"] == "NVIDIA Tegra Xavier"
    temps = read_thermal_zones(root)
    assert temps["CPU-therm"] == 42.5 and temps["CPU-therm_1"] == 43.0  # duplicate type suffixed
    assert temps["PMIC-Die"] is None  # unreadable
    assert list(read_cpufreq(root)) == ["policy0", "policy2"]
    assert list(read_gpu_devfreq(root)) == ["17000000.gv11b"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_collect_environment_never_crashes(board, name):
    env = collect_environment(board(name), backend_versions={"onnxruntime": "1.x"}, environ={})
    for key in (
        "agent_version",
        "hostname",
        "platform",
        "kernel",
        "machine",
        "python",
        "numpy",
        "timer",
        "cpu",
        "cpufreq",
        "gpu_devfreq",
        "thermal_c",
        "l4t",
        "jetpack",
        "board_model",
        "nvpmodel",
        "loadavg",
        "libraries",
        "env",
    ):
        assert key in env
    assert env["agent_version"] == __version__
    assert env["libraries"] == {"onnxruntime": "1.x"}
    assert env["python"]["executable"]
    assert env["nvpmodel"] is None  # never run under a fake root
    dyn = collect_dynamic_state(board(name))
    assert set(dyn) == {"thermal_c", "cpufreq", "gpu_devfreq", "loadavg"}


def test_empty_tree_gives_none(board):
    root = board("empty")
    assert read_cpufreq(root) is None
    assert read_thermal_zones(root) is None
    assert read_l4t_release(root) is None
    assert read_board_model(root) is None
    assert read_loadavg(root) is None
    assert read_cpu_info(root)["model"] is None
    env = collect_environment(root, environ={})
    assert env["l4t"] is None and env["jetpack"] is None and env["thermal_c"] is None


def test_orin_jetpack(board):
    root = board("orin")
    assert read_l4t_release(root) == "36.4.3"
    assert collect_environment(root, environ={})["jetpack"] == "6.2"


@pytest.mark.parametrize(
    "l4t, jp",
    [
        ("32.6.1", "4.6"),
        ("32.7.1", "4.6.1"),
        ("32.7.6", "4.6.6"),
        ("35.3.1", "5.1.1"),
        ("35.6.2", "5.1.5"),
        ("36.3.0", "6.0"),
        ("36.4.0", "6.1"),
        ("36.4.3", "6.2"),
        ("36.4.7", "6.2.1"),
        ("38.2.1", "7.0"),
        ("39.2.0", "7.2 GA"),
        ("31.0.0", None),
        (None, None),
    ],
)
def test_l4t_to_jetpack(l4t, jp):
    assert jetpack_for_l4t(l4t) == jp


def test_l4t_release_variants(tmp_path):
    rel = tmp_path / "etc" / "nv_tegra_release"
    rel.parent.mkdir()
    rel.write_text("# R35 (release), REVISION: 3.1, GCID: 32790763, BOARD: t186ref, EABI: aarch64, DATE: x\n")
    assert read_l4t_release(str(tmp_path)) == "35.3.1"
    rel.write_text("garbage\n")
    assert read_l4t_release(str(tmp_path)) is None
    rel.write_text("")
    assert read_l4t_release(str(tmp_path)) is None


def test_env_vars_that_matter():
    environ = {
        "OMP_NUM_THREADS": "4",
        "CUDA_VISIBLE_DEVICES": "0",
        "HOME": "/root",
        "ORT_X": "1",
        "LD_LIBRARY_PATH": "/usr/local/cuda/lib64",
        "SECRET_TOKEN": "x",
    }
    assert read_env_vars(environ) == {
        "CUDA_VISIBLE_DEVICES": "0",
        "LD_LIBRARY_PATH": "/usr/local/cuda/lib64",
        "OMP_NUM_THREADS": "4",
        "ORT_X": "1",
    }
