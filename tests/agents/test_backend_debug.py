"""The debug backend's optional device time and layer profile (for worker tests on any machine)."""

import pytest

from agents.backends import BackendOptionError
from agents.backends.debug import DebugBackend
from agents.layers import normalise


def test_device_time_and_layers_are_off_by_default():
    b = DebugBackend({"latency_ms": 0.0}).load("m", {"x": [1]})
    b.run_once()
    assert b.device_time_ms() is None and b.layer_profile(3) is None


def test_device_time_follows_the_last_run():
    b = DebugBackend({"latency_ms": 1.0, "device_fraction": 0.5}).load("m", {"x": [1]})
    assert b.device_time_ms() is None
    b.run_once()
    assert b.device_time_ms() == pytest.approx(b.latency_s(0) * 1e3 * 0.5)
    b.run_once()
    assert b.device_time_ms() == pytest.approx(b.latency_s(1) * 1e3 * 0.5)


def test_layers():
    b = DebugBackend({"latency_ms": 2.0, "layers": 4}).load("m", {"x": [1]})
    layers = normalise(b.layer_profile(5))
    assert [r["name"] for r in layers] == ["layer0", "layer1", "layer2", "layer3"]
    assert sum(r["time_ms"] for r in layers) == pytest.approx(2.0) and layers[0]["share"] == 0.25
    assert b.info()["profiled_runs"] == 5 and b.info()["calls"] == 0


@pytest.mark.parametrize(
    "options", [{"device_fraction": 0}, {"device_fraction": 2}, {"layers": -1}, {"layers": 1.5}]
)
def test_option_errors(options):
    with pytest.raises(BackendOptionError):
        DebugBackend(options)
