"""Declarative fake board trees (jtop's emulation idea, but under tmp_path and without root).

COMPONENTS maps a component to the files it writes; BOARDS maps a board to its components. File contents
follow board-formats.md (sections 2 and 3) and real /proc and /sys layouts: the i2c devices live under
/sys/devices and /sys/bus/i2c/devices/*, the driver folders and /sys/class/hwmon/* are relative symlinks
to them, as on a board. POWER maps each board to its INA3221 rails {label: (mW)} (JP4 iio power files)
or {label: (mV, mA)} (JP5+ hwmon, P = mV * mA / 1000), taken from the tegrastats lines of
board-formats.md 1.2. install_tools writes fake `tegrastats`, `nvpmodel`, `jetson_clocks` and `sudo`.
"""

import os
import sys
from pathlib import Path

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz
cpu MHz\t\t: 3192.002

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz
"""

NANO_CPUINFO = "".join(
    f"processor\t: {i}\nmodel name\t: ARMv8 Processor rev 1 (v8l)\nBogoMIPS\t: 38.40\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd07\nCPU revision\t: 1\n\n"
    for i in range(4)
)

XAVIER_CPUINFO = (
    "".join(
        f"processor\t: {i}\nBogoMIPS\t: 62.50\nCPU implementer\t: 0x4e\nCPU architecture: 8\n"
        "CPU variant\t: 0x0\nCPU part\t: 0x004\nCPU revision\t: 0\n\n"
        for i in range(8)
    )
    + "Hardware\t: NVIDIA Tegra Xavier\n"
)


def _files(mapping):
    def install(root):
        for rel, content in mapping.items():
            path = Path(root) / rel.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            if content is None:  # a folder where a file should be: reading it fails
                path.mkdir(parents=True, exist_ok=True)
            elif isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)

    return install


def _links(mapping):
    """{link: target} (both absolute on the board) as relative symlinks under root."""

    def install(root):
        for link, target in mapping.items():
            lpath = Path(root) / link.lstrip("/")
            tpath = Path(root) / target.lstrip("/")
            lpath.parent.mkdir(parents=True, exist_ok=True)
            tpath.mkdir(parents=True, exist_ok=True)
            if not lpath.is_symlink():
                lpath.symlink_to(os.path.relpath(str(tpath), str(lpath.parent)))

    return install


def _all(*installers):
    def install(root):
        for fn in installers:
            fn(root)

    return install


def _iio_chip(real, iio, rails, aliases=(), limits=True):
    """A JP4 `ina3221x` chip: real device folder, its IIO folder name, rails [(label, mW, mV, mA)]."""
    files = {real + "/name": "ina3221x\n", f"{real}/{iio}/name": "ina3221x\n"}
    for n, (label, mw, mv, ma) in enumerate(rails):
        base = f"{real}/{iio}"
        files[f"{base}/rail_name_{n}"] = label + "\n"
        files[f"{base}/in_power{n}_input"] = f"{mw}\n"
        files[f"{base}/in_voltage{n}_input"] = f"{mv}\n"
        files[f"{base}/in_current{n}_input"] = f"{ma}\n"
        if limits:
            files[f"{base}/warn_current_limit_{n}"] = "32760 ma\n"
            files[f"{base}/crit_current_limit_{n}"] = "32760 ma\n"
    return _all(_files(files), _links(dict.fromkeys(aliases, real)))


def _hwmon_chip(real, hwmon, rails, aliases=()):
    """A JP5+ `ina3221` hwmon chip: rails [(label, mV, mA)] on in1..in3, plus in4-7 and curr4."""
    base = f"{real}/hwmon/{hwmon}"
    files = {real + "/name": "ina3221\n", base + "/name": "ina3221\n"}
    for k, (label, mv, ma) in enumerate(rails, start=1):
        files[f"{base}/in{k}_label"] = label + "\n"
        files[f"{base}/in{k}_input"] = f"{mv}\n"
        files[f"{base}/curr{k}_input"] = f"{ma}\n"
        files[f"{base}/in{k}_enable"] = "1\n"
        files[f"{base}/curr{k}_max"] = "7784\n"
        files[f"{base}/curr{k}_crit"] = "7784\n"
        files[f"{base}/shunt{k}_resistor"] = "5000\n"
        files[f"{base}/in{k + 3}_input"] = f"{ma * 5}\n"  # shunt voltage, uV
    files[base + "/in7_label"] = "sum of shunt voltages\n"
    files[base + "/in7_input"] = "0\n"
    files[base + "/curr4_input"] = "0\n"
    links = dict.fromkeys(aliases, real)
    links["/sys/class/hwmon/" + hwmon] = base
    return _all(_files(files), _links(links))


def _zones(types_temps):
    files = {}
    for i, (ztype, temp) in enumerate(types_temps):
        base = f"/sys/class/thermal/thermal_zone{i}"
        files[base + "/type"] = ztype + "\n"
        files[base + "/temp"] = temp
    return files


def _cpufreq_policies(policies):
    files = {}
    for name, (gov, cur, lo, hi, cpus) in policies.items():
        base = f"/sys/devices/system/cpu/cpufreq/{name}"
        files.update(
            {
                base + "/scaling_governor": gov + "\n",
                base + "/scaling_cur_freq": f"{cur}\n",
                base + "/scaling_min_freq": f"{lo}\n",
                base + "/scaling_max_freq": f"{hi}\n",
                base + "/cpuinfo_max_freq": f"{hi}\n",
                base + "/related_cpus": cpus + "\n",
            }
        )
    return files


def _cpufreq_per_cpu(n, gov, cur, lo, hi):
    files = {}
    for i in range(n):
        base = f"/sys/devices/system/cpu/cpu{i}/cpufreq"
        files.update(
            {
                base + "/scaling_governor": gov + "\n",
                base + "/scaling_cur_freq": f"{cur}\n",
                base + "/scaling_min_freq": f"{lo}\n",
                base + "/scaling_max_freq": f"{hi}\n",
                base + "/affected_cpus": f"{i}\n",
            }
        )
    return files


NANO_I2C = "/sys/devices/50000000.host1x/546c0000.i2c/i2c-6/6-0040"
XAVIER_I2C = "/sys/devices/c240000.i2c/i2c-1"  # the Xavier folder is not in board-formats.md: assumed

COMPONENTS = {
    "x86_cpu": _files({"/proc/cpuinfo": X86_CPUINFO, "/sys/devices/system/cpu/online": "0-11\n"}),
    "x86_cpufreq": _files(
        _cpufreq_policies(
            {
                "policy0": ("powersave", 800000, 800000, 4600000, "0"),
                "policy1": ("performance", 4500000, 800000, 4600000, "1"),
            }
        )
    ),
    "x86_thermal": _files(_zones([("acpitz", "27800\n"), ("x86_pkg_temp", "45000\n")])),
    "x86_dmi": _files(
        {
            "/sys/devices/virtual/dmi/id/sys_vendor": "Dell Inc.\n",
            "/sys/devices/virtual/dmi/id/product_name": "OptiPlex 7070\n",
        }
    ),
    "x86_loadavg": _files({"/proc/loadavg": "0.52 0.58 0.59 1/467 12345\n"}),
    "rapl": _files(
        {
            "/sys/class/powercap/intel-rapl:0/name": "package-0\n",
            "/sys/class/powercap/intel-rapl:0/energy_uj": "123456789\n",
            "/sys/class/powercap/intel-rapl:0/max_energy_range_uj": "262143999938\n",
            "/sys/class/powercap/intel-rapl:0:0/name": "core\n",
            "/sys/class/powercap/intel-rapl:0:0/energy_uj": "23456789\n",
            "/sys/class/powercap/intel-rapl:0:0/max_energy_range_uj": "262143999938\n",
            "/sys/class/powercap/intel-rapl:0:2/name": "dram\n",
            "/sys/class/powercap/intel-rapl:0:2/energy_uj": "3456789\n",
            "/sys/class/powercap/intel-rapl:0:2/max_energy_range_uj": "65712999613\n",
        }
    ),
    "nano_cpu": _files({"/proc/cpuinfo": NANO_CPUINFO, "/sys/devices/system/cpu/online": "0-3\n"}),
    "nano_cpufreq": _files(_cpufreq_per_cpu(4, "schedutil", 1428000, 102000, 1428000)),
    "nano_release": _files(
        {
            "/etc/nv_tegra_release": "# R32 (release), REVISION: 7.1, GCID: 29689809, BOARD: t210ref, EABI: aarch64, "
            "DATE: Wed Feb  2 21:33:23 UTC 2022\n# KERNEL_VARIANT: oot\n",
            "/proc/device-tree/model": b"NVIDIA Jetson Nano Developer Kit\x00",
        }
    ),
    "nano_thermal": _files(
        _zones(
            [
                ("AO-therm", "36500\n"),
                ("CPU-therm", "31000\n"),
                ("GPU-therm", "30500\n"),
                ("PLL-therm", "29500\n"),
                ("PMIC-Die", "100000\n"),
                ("thermal-fan-est", ""),  # last one unreadable
            ]
        )
    ),
    "nano_gpu": _files(
        {
            "/sys/class/devfreq/57000000.gpu/device/of_node/name": b"gpu\x00",
            "/sys/class/devfreq/57000000.gpu/governor": "nvhost_podgov\n",
            "/sys/class/devfreq/57000000.gpu/cur_freq": "76800000\n",
            "/sys/class/devfreq/57000000.gpu/min_freq": "76800000\n",
            "/sys/class/devfreq/57000000.gpu/max_freq": "921600000\n",
            "/sys/class/devfreq/6000000.emc/device/of_node/name": b"emc\x00",
        }
    ),
    "nano_ina3221": _iio_chip(
        NANO_I2C,
        "iio:device0",
        [("POM_5V_IN", 4122, 5000, 824), ("POM_5V_GPU", 109, 5000, 21), ("POM_5V_CPU", 1167, 5000, 233)],
        aliases=("/sys/bus/i2c/devices/6-0040", "/sys/bus/i2c/drivers/ina3221x/6-0040"),
    ),
    "nano_extra": _files(
        {
            "/proc/device-tree/compatible": b"nvidia,p3450-0000\x00nvidia,jetson-nano\x00nvidia,tegra210\x00",
            "/sys/class/devfreq/57000000.gpu/device/load": "150\n",
            "/sys/class/devfreq/57000000.gpu/device/railgate_enable": "1\n",
            "/sys/class/devfreq/57000000.gpu/available_frequencies": "76800000 153600000 230400000 921600000\n",
            "/sys/kernel/debug/clk/override.emc/clk_rate": "1600000000\n",
            "/sys/kernel/debug/clk/override.emc/clk_state": "0\n",
            "/sys/kernel/debug/tegra_bwmgr/emc_min_rate": "204000000\n",
            "/sys/kernel/debug/tegra_bwmgr/emc_max_rate": "1600000000\n",
        }
    ),
    "xavier_cpu": _files({"/proc/cpuinfo": XAVIER_CPUINFO, "/sys/devices/system/cpu/online": "0-7\n"}),
    "xavier_cpufreq": _files(
        _cpufreq_policies(
            {
                "policy0": ("schedutil", 2265600, 115200, 2265600, "0 1"),
                "policy2": ("schedutil", 1190400, 115200, 2265600, "2 3"),
            }
        )
    ),
    "xavier_release": _files(
        {
            "/etc/nv_tegra_release": "# R32 (release), REVISION: 6.1, GCID: 27863751, BOARD: t186ref, EABI: aarch64, "
            "DATE: Mon Jul 26 19:36:31 UTC 2021\n",
            "/proc/device-tree/model": b"NVIDIA Jetson AGX Xavier Developer Kit\x00",
        }
    ),
    "xavier_thermal": _files(
        _zones(
            [
                ("CPU-therm", "42500\n"),
                ("GPU-therm", "41000\n"),
                ("CPU-therm", "43000\n"),
                ("Tboard_tegra", "36000\n"),
                ("PMIC-Die", None),  # a folder as temp: unreadable
            ]
        )
    ),
    "xavier_gpu": _files(
        {
            "/sys/class/devfreq/17000000.gv11b/device/of_node/name": b"gv11b\x00",
            "/sys/class/devfreq/17000000.gv11b/governor": "nvhost_podgov\n",
            "/sys/class/devfreq/17000000.gv11b/cur_freq": "1377000000\n",
            "/sys/class/devfreq/17000000.gv11b/min_freq": "114750000\n",
            "/sys/class/devfreq/17000000.gv11b/max_freq": "1377000000\n",
        }
    ),
    "orin_release": _files(
        {
            "/etc/nv_tegra_release": "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
            "DATE: Wed Jan  8 01:49:37 UTC 2025\n",
            "/proc/device-tree/model": b"NVIDIA Jetson Orin Nano Developer Kit\x00",
        }
    ),
    "orin_ina3221": _hwmon_chip(
        "/sys/devices/platform/bus@0/c240000.i2c/i2c-1/1-0040",
        "hwmon3",
        [("VDD_IN", 5000, 1141), ("VDD_CPU_GPU_CV", 5000, 166), ("VDD_SOC", 5000, 325)],
        aliases=("/sys/bus/i2c/devices/1-0040", "/sys/bus/i2c/drivers/ina3221/1-0040"),
    ),
    "orin_extra": _all(
        _links({"/sys/class/devfreq/17000000.gpu/device": "/sys/devices/platform/bus@0/17000000.gpu"}),
        _files(
            {
                "/proc/device-tree/compatible": b"nvidia,p3768-0000+p3767-0005\x00nvidia,tegra234\x00",
                "/sys/devices/platform/bus@0/17000000.gpu/of_node/name": b"gpu\x00",
                "/sys/devices/platform/bus@0/17000000.gpu/load": "0\n",
                "/sys/class/devfreq/17000000.gpu/governor": "nvhost_podgov\n",
                "/sys/class/devfreq/17000000.gpu/cur_freq": "306000000\n",
                "/sys/class/devfreq/17000000.gpu/min_freq": "306000000\n",
                "/sys/class/devfreq/17000000.gpu/max_freq": "1020000000\n",
                "/sys/kernel/debug/bpmp/debug/clk/emc/rate": "2133000000\n",
                "/sys/kernel/debug/bpmp/debug/clk/emc/min_rate": "204000000\n",
                "/sys/kernel/debug/bpmp/debug/clk/emc/max_rate": "3199000000\n",
                "/sys/kernel/debug/bpmp/debug/clk/emc/mrq_rate_locked": "0\n",
            }
        ),
    ),
    "tx2_release": _files(
        {
            "/etc/nv_tegra_release": "# R32 (release), REVISION: 7.1, GCID: 29689809, BOARD: t186ref, EABI: aarch64, "
            "DATE: Wed Feb  2 21:33:23 UTC 2022\n",
            "/proc/device-tree/model": b"NVIDIA Jetson TX2 Developer Kit\x00",
        }
    ),
    # TX2: /sys/devices/3160000.i2c/i2c-0/0-0040 and 0-0041, IIO folder named iio_device (board-formats 2.2)
    "tx2_ina3221": _all(
        _iio_chip(
            "/sys/devices/3160000.i2c/i2c-0/0-0040",
            "iio_device",
            [
                ("VDD_SYS_GPU", 153, 19000, 8),
                ("VDD_SYS_SOC", 536, 19000, 28),
                ("VDD_4V0_WIFI", 633, 4000, 158),
            ],
            aliases=("/sys/bus/i2c/devices/0-0040", "/sys/bus/i2c/drivers/ina3221x/0-0040"),
        ),
        _iio_chip(
            "/sys/devices/3160000.i2c/i2c-0/0-0041",
            "iio_device",
            [("VDD_IN", 3140, 19000, 165), ("VDD_SYS_CPU", 536, 19000, 28), ("VDD_SYS_DDR", 557, 19000, 29)],
            aliases=("/sys/bus/i2c/devices/0-0041", "/sys/bus/i2c/drivers/ina3221x/0-0041"),
        ),
    ),
    # AGX Xavier JP4: 1-0040/iio:device0 GPU CPU SOC, 1-0041/iio:device1 CV VDDRQ SYS5V (no total rail)
    "xavier_ina3221": _all(
        _iio_chip(
            XAVIER_I2C + "/1-0040",
            "iio:device0",
            [("GPU", 463, 19000, 24), ("CPU", 618, 19000, 32), ("SOC", 2936, 19000, 154)],
            aliases=("/sys/bus/i2c/devices/1-0040", "/sys/bus/i2c/drivers/ina3221x/1-0040"),
        ),
        _iio_chip(
            XAVIER_I2C + "/1-0041",
            "iio:device1",
            [("CV", 0, 19000, 0), ("VDDRQ", 309, 19000, 16), ("SYS5V", 3306, 5000, 661)],
            aliases=("/sys/bus/i2c/devices/1-0041", "/sys/bus/i2c/drivers/ina3221x/1-0041"),
        ),
    ),
    "xavier_jp5_release": _files(
        {
            "/etc/nv_tegra_release": "# R35 (release), REVISION: 3.1, GCID: 32790763, BOARD: t186ref, EABI: aarch64, "
            "DATE: Wed Mar 15 07:54:12 UTC 2023\n",
            "/proc/device-tree/model": b"NVIDIA Jetson AGX Xavier Developer Kit\x00",
        }
    ),
    "xavier_jp5_ina3221": _all(
        _hwmon_chip(
            XAVIER_I2C + "/1-0040",
            "hwmon2",
            [("GPU", 19000, 24), ("CPU", 19000, 24), ("SOC", 19000, 65)],
            aliases=("/sys/bus/i2c/devices/1-0040", "/sys/bus/i2c/drivers/ina3221/1-0040"),
        ),
        _hwmon_chip(
            XAVIER_I2C + "/1-0041",
            "hwmon3",
            [("CV", 19000, 0), ("VDDRQ", 19000, 16), ("SYS5V", 5000, 553)],
            aliases=("/sys/bus/i2c/devices/1-0041", "/sys/bus/i2c/drivers/ina3221/1-0041"),
        ),
    ),
    "agx_orin_release": _files(
        {
            "/etc/nv_tegra_release": "# R35 (release), REVISION: 3.1, GCID: 32790763, BOARD: t186ref, EABI: aarch64, "
            "DATE: Wed Mar 15 07:54:12 UTC 2023\n",
            "/proc/device-tree/model": b"NVIDIA Jetson AGX Orin Developer Kit\x00",
        }
    ),
    # AGX Orin: 1-0040 VDD_GPU_SOC VDD_CPU_CV VIN_SYS_5V0; 1-0041 NC VDDQ_VDD2_1V8AO NC (no VDD_IN)
    "agx_orin_ina3221": _all(
        _hwmon_chip(
            "/sys/devices/platform/c240000.i2c/i2c-1/1-0040",
            "hwmon1",
            [("VDD_GPU_SOC", 5000, 480), ("VDD_CPU_CV", 5000, 80), ("VIN_SYS_5V0", 5000, 806)],
            aliases=("/sys/bus/i2c/devices/1-0040", "/sys/bus/i2c/drivers/ina3221/1-0040"),
        ),
        _hwmon_chip(
            "/sys/devices/platform/c240000.i2c/i2c-1/1-0041",
            "hwmon2",
            [("NC", 0, 0), ("VDDQ_VDD2_1V8AO", 1800, 167), ("NC", 0, 0)],
            aliases=("/sys/bus/i2c/devices/1-0041", "/sys/bus/i2c/drivers/ina3221/1-0041"),
        ),
    ),
}

BOARDS = {
    "x86": ["x86_cpu", "x86_cpufreq", "x86_thermal", "x86_dmi", "x86_loadavg", "rapl"],
    "nano": [
        "nano_cpu",
        "nano_cpufreq",
        "nano_release",
        "nano_thermal",
        "nano_gpu",
        "nano_ina3221",
        "nano_extra",
    ],
    "tx2": ["tx2_release", "tx2_ina3221"],
    "xavier": [
        "xavier_cpu",
        "xavier_cpufreq",
        "xavier_release",
        "xavier_thermal",
        "xavier_gpu",
        "xavier_ina3221",
    ],
    "xavier_jp5": ["xavier_jp5_release", "xavier_gpu", "xavier_jp5_ina3221"],
    "agx_orin": ["agx_orin_release", "agx_orin_ina3221"],
    "orin": ["orin_release", "orin_ina3221", "orin_extra"],
    "empty": [],
}

# INA3221 rails per board, in discovery order: iio boards {label: mW}, hwmon boards {label: (mV, mA)}
POWER = {
    "nano": {"POM_5V_IN": 4122, "POM_5V_GPU": 109, "POM_5V_CPU": 1167},
    "tx2": {
        "VDD_SYS_GPU": 153,
        "VDD_SYS_SOC": 536,
        "VDD_4V0_WIFI": 633,
        "VDD_IN": 3140,
        "VDD_SYS_CPU": 536,
        "VDD_SYS_DDR": 557,
    },
    "xavier": {"GPU": 463, "CPU": 618, "SOC": 2936, "CV": 0, "VDDRQ": 309, "SYS5V": 3306},
    "xavier_jp5": {
        "GPU": (19000, 24),
        "CPU": (19000, 24),
        "SOC": (19000, 65),
        "CV": (19000, 0),
        "VDDRQ": (19000, 16),
        "SYS5V": (5000, 553),
    },
    "agx_orin": {
        "VDD_GPU_SOC": (5000, 480),
        "VDD_CPU_CV": (5000, 80),
        "VIN_SYS_5V0": (5000, 806),
        "VDDQ_VDD2_1V8AO": (1800, 167),
    },
    "orin": {"VDD_IN": (5000, 1141), "VDD_CPU_GPU_CV": (5000, 166), "VDD_SOC": (5000, 325)},
}


def rail_mw(board, rail):
    """Expected power of a rail of a fake board, in mW."""
    value = POWER[board][rail]
    return float(value) if not isinstance(value, tuple) else value[0] * value[1] / 1000.0


def make_board(root, board):
    """Write the fake tree of `board` under root and return root as a string."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for component in BOARDS[board]:
        COMPONENTS[component](root)
    return str(root)


# ---------------------------------------------------------------------------------------------------------
# fake board commands (Python scripts with this interpreter in their #! line)

NANO_JETSON_CLOCKS_SHOW = """SOC family:tegra210  Machine:jetson-nano
Online CPUs: 0-3
CPU Cluster Switching: Disabled
cpu0: Online=1 Governor=schedutil MinFreq=102000 MaxFreq=1428000 CurrentFreq=1428000 IdleStates: WFI=1 c7=1
GPU MinFreq=76800000 MaxFreq=921600000 CurrentFreq=153600000
EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride={locked}
Fan: speed=0
NV Power Mode: {mode}
"""

_TEGRASTATS = """
import sys, time
lines = {lines!r}
args = sys.argv[1:]
ms = int(args[args.index("--interval") + 1]) if "--interval" in args else 1000
i = 0
while True:
    sys.stdout.write(lines[i % len(lines)] + "\\n")
    sys.stdout.flush()
    i += 1
    time.sleep(ms / 1000.0)
"""

_STATE = """
import os, sys
HERE = os.path.dirname(os.path.abspath(__file__))
def get(name, default):
    try:
        with open(os.path.join(HERE, name)) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return default
def put(name, value):
    with open(os.path.join(HERE, name), "w") as f:
        f.write(str(value))
with open(os.path.join(HERE, "calls.log"), "a") as f:
    f.write(os.path.basename(sys.argv[0]) + " " + " ".join(sys.argv[1:]) + "\\n")
MODES = {0: "MAXN", 1: "5W"}
args = sys.argv[1:]
"""

_NVPMODEL = (
    _STATE
    + """
if "-q" in args:
    mode = get("nvpmodel.state", 1)
    print("NVPM WARN: fan mode is not set!")
    print("NV Power Mode: " + MODES[mode])
    print(mode)
elif "-m" in args:
    put("nvpmodel.state", int(args[args.index("-m") + 1]))
else:
    sys.exit(2)
"""
)

_JETSON_CLOCKS = (
    _STATE
    + """
SHOW = {show!r}
if "--show" in args:
    sys.stdout.write(SHOW.format(locked=get("clocks.state", 0), mode=MODES[get("nvpmodel.state", 1)]))
else:
    put("clocks.state", 1)
"""
)

_SUDO_OK = """
import os, sys
args = [a for a in sys.argv[1:] if a != "-n"]
os.execv(args[0], args)
"""

_SUDO_REFUSE = """
import sys
sys.stderr.write("sudo: a password is required\\n")
sys.exit(1)
"""


def _script(path, body):
    path.write_text("#!" + sys.executable + "\n" + body)
    path.chmod(0o755)


def install_tools(bin_dir, tegrastats_lines=None, nvpmodel=False, jetson_clocks=False, sudo=None):
    """Write fake board commands into bin_dir and return it (put it first on PATH in the test).

    tegrastats_lines: lines the fake tegrastats repeats at its --interval. nvpmodel / jetson_clocks keep
    their state in files beside them (mode 1 = 5W and clocks unlocked at first) and log each call to
    calls.log. sudo: "ok" runs the command (dropping -n), "refuse" answers like `sudo -n` without a
    password rule.
    """
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    if tegrastats_lines is not None:
        _script(bin_dir / "tegrastats", _TEGRASTATS.format(lines=list(tegrastats_lines)))
    if nvpmodel:
        _script(bin_dir / "nvpmodel", _NVPMODEL)
    if jetson_clocks:
        _script(bin_dir / "jetson_clocks", _JETSON_CLOCKS.replace("{show!r}", repr(NANO_JETSON_CLOCKS_SHOW)))
    if sudo == "ok":
        _script(bin_dir / "sudo", _SUDO_OK)
    elif sudo == "refuse":
        _script(bin_dir / "sudo", _SUDO_REFUSE)
    return str(bin_dir)
