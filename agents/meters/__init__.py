"""Power meters by name, registered lazily ("module:Class") so that listing them imports nothing heavy.

none/null measure nothing; ina3221 (Jetson sysfs), tegrastats (Jetson, subprocess), nvml (NVIDIA
desktop/server GPUs), rapl (x86 powercap) read power; auto picks the first of those that works here.
"""

from ..plugins import load_bundled
from ..registry import Registry
from .base import MeterError, MeterUnavailable, PowerMeter, PowerTrace  # noqa: F401 (re-exported)

METERS = Registry("meter", loader=load_bundled)  # plugins shipped with the agent register too
METERS.add_lazy("none", __name__ + ".null:NullMeter")
METERS.add_lazy("null", __name__ + ".null:NullMeter")
METERS.add_lazy("ina3221", __name__ + ".ina3221:Ina3221Meter")
METERS.add_lazy("tegrastats", __name__ + ".tegrastats:TegrastatsMeter")
METERS.add_lazy("nvml", __name__ + ".nvml:NvmlMeter")
METERS.add_lazy("rapl", __name__ + ".rapl:RaplMeter")
METERS.add_lazy("auto", __name__ + ".auto:AutoMeter")

NULL_METERS = ("none", "null")
