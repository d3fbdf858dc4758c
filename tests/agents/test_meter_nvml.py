"""The NVML meter with a fake NVML binding (no GPU here): energy counter, power fallback, reasons."""

import time

import pytest
from fake_boards import make_board

from agents.energy import energy_per_inference
from agents.meters import METERS
from agents.meters.base import MeterUnavailable
from agents.meters.nvml import CtypesNvml, NvmlError, NvmlMeter, device_index, load_nvml


class FakeNvml:
    """pynvml's function names over a simulated GPU drawing power_mw; raises like NVML does."""

    NVMLError = NvmlError

    def __init__(self, power_mw=150000.0, energy=True, power=True, count=1, init_error=None):
        self.power_mw = power_mw
        self.energy = energy
        self.power = power
        self.count = count
        self.init_error = init_error
        self.t0 = time.perf_counter()
        self.inits = 0
        self.shutdowns = 0

    def nvmlInit(self):
        if self.init_error:
            raise NvmlError(9, self.init_error)
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i):
        return ("handle", i)

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.energy:
            raise NvmlError(3, "Not Supported")
        return int(self.power_mw * (time.perf_counter() - self.t0))  # mJ since "driver load"

    def nvmlDeviceGetPowerUsage(self, handle):
        if not self.power:
            raise NvmlError(3, "Not Supported")
        return int(self.power_mw)


def run(meter, seconds=0.05):
    meter.start()
    t0 = time.perf_counter()
    time.sleep(seconds)
    t1 = time.perf_counter()
    trace = meter.stop()
    meter.close()
    return trace, t0, t1


def test_energy_counter_preferred(tmp_path):
    nvml = FakeNvml(power_mw=150000.0)
    m = NvmlMeter(rate_hz=200.0, root=str(tmp_path), nvml=nvml)
    assert m.mode == "energy" and "nvmlDeviceGetTotalEnergyConsumption" in m.rule
    assert "NVIDIA H100 80GB HBM3" in m.rule
    trace, t0, t1 = run(m)
    assert trace.rail == "gpu0"
    e = energy_per_inference(trace, t0, t1, 1)
    # the counter is read in whole mJ: 1 mJ per read on 150 W at ~5 ms steps is < 0.2 % error
    assert e["mean_power_mw"] == pytest.approx(150000.0, rel=0.02)
    assert nvml.inits == 1 and nvml.shutdowns == 1


def test_power_sampling_when_no_counter(tmp_path):
    nvml = FakeNvml(power_mw=70000.0, energy=False)
    m = NvmlMeter(rail="gpu0", rate_hz=200.0, root=str(tmp_path), nvml=nvml)
    assert m.mode == "power" and "1 s average" in m.rule
    trace, t0, t1 = run(m)
    assert set(trace.power_mw) == {70000.0}
    assert energy_per_inference(trace, t0, t1, 2)["gross_mj"] == pytest.approx(70000.0 * (t1 - t0) / 2)
    assert m.describe()["mode"] == "power"


def test_reasons(tmp_path):
    root = str(tmp_path)
    assert NvmlMeter.available(root, nvml=FakeNvml()) is None
    reason = NvmlMeter.available(root, nvml=FakeNvml(energy=False, power=False))
    assert "neither energy nor power" in reason and "Not Supported" in reason
    assert "nvmlInit failed" in NvmlMeter.available(root, nvml=FakeNvml(init_error="Driver Not Loaded"))
    assert NvmlMeter.available(root, nvml=FakeNvml(count=0)) == "NVML reports no GPU"
    with pytest.raises(MeterUnavailable, match="gpu3 asked for, but there are 1 GPUs"):
        NvmlMeter(rail="gpu3", root=root, nvml=FakeNvml())
    with pytest.raises(MeterUnavailable, match="must name a GPU"):
        NvmlMeter(rail="VDD_IN", root=root, nvml=FakeNvml())
    probe = NvmlMeter.probe(root, nvml=FakeNvml(energy=False))
    assert probe["available"] and probe["devices"][0]["mode"] == "power"
    assert probe["devices"][0]["name"] == "NVIDIA H100 80GB HBM3"


def test_jetson_never_uses_nvml(tmp_path):
    root = make_board(tmp_path / "orin", "orin")
    reason = NvmlMeter.available(root, nvml=FakeNvml())
    assert "Jetson (L4T 36.4.3)" in reason and "ina3221" in reason
    with pytest.raises(MeterUnavailable, match="Jetson"):
        NvmlMeter(root=root, nvml=FakeNvml())


def test_no_driver_here_gives_a_reason(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name, *args, **kwargs):
        if name == "pynvml":
            raise ImportError("No module named 'pynvml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    monkeypatch.setattr("agents.meters.nvml.NVML_LIBRARY", "libnvidia-ml-not-here.so.1")
    monkeypatch.setattr(CtypesNvml.__init__, "__defaults__", ("libnvidia-ml-not-here.so.1",))
    nvml, why = load_nvml()
    assert nvml is None and "pynvml is not importable" in why and "no NVIDIA driver" in why
    assert METERS.get("nvml") is NvmlMeter


def test_device_index():
    assert [device_index(r) for r in (None, "", "gpu0", "GPU1", "2")] == [0, 0, 0, 1, 2]
    with pytest.raises(ValueError):
        device_index("package-0")
