"""Declarative fake board trees (jtop's emulation idea, but under tmp_path and without root).

COMPONENTS maps a component to the files it writes; BOARDS maps a board to its components. File contents
follow board-formats.md (section 3) and real /proc and /sys layouts.
"""

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
            "/sys/class/powercap/intel-rapl:0:0/name": "core\n",
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
    "nano_ina3221": _files(
        {
            "/sys/bus/i2c/devices/6-0040/name": "ina3221x\n",
            "/sys/bus/i2c/devices/6-0040/iio:device0/rail_name_0": "POM_5V_IN\n",
            "/sys/bus/i2c/devices/6-0040/iio:device0/rail_name_1": "POM_5V_GPU\n",
            "/sys/bus/i2c/devices/6-0040/iio:device0/rail_name_2": "POM_5V_CPU\n",
            "/sys/bus/i2c/devices/6-0040/iio:device0/in_power0_input": "2345\n",
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
    "orin_ina3221": _files(
        {
            "/sys/bus/i2c/devices/1-0040/name": "ina3221\n",
            "/sys/bus/i2c/devices/1-0040/hwmon/hwmon3/in1_label": "VDD_IN\n",
            "/sys/bus/i2c/devices/1-0040/hwmon/hwmon3/in2_label": "VDD_CPU_GPU_CV\n",
            "/sys/bus/i2c/devices/1-0040/hwmon/hwmon3/in3_label": "VDD_SOC\n",
            "/sys/bus/i2c/devices/1-0040/hwmon/hwmon3/in1_input": "5000\n",
        }
    ),
}

BOARDS = {
    "x86": ["x86_cpu", "x86_cpufreq", "x86_thermal", "x86_dmi", "x86_loadavg", "rapl"],
    "nano": ["nano_cpu", "nano_cpufreq", "nano_release", "nano_thermal", "nano_gpu", "nano_ina3221"],
    "xavier": ["xavier_cpu", "xavier_cpufreq", "xavier_release", "xavier_thermal", "xavier_gpu"],
    "orin": ["orin_release", "orin_ina3221"],
    "empty": [],
}


def make_board(root, board):
    """Write the fake tree of `board` under root and return root as a string."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for component in BOARDS[board]:
        COMPONENTS[component](root)
    return str(root)
