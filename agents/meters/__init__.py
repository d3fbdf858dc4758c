"""Power meters by name (ina3221, tegrastats, nvml and rapl come in a later agent version)."""

from ..registry import Registry
from .base import MeterError, MeterUnavailable, PowerMeter, PowerTrace  # noqa: F401 (re-exported)

METERS = Registry("meter")
METERS.add_lazy("none", __name__ + ".null:NullMeter")
METERS.add_lazy("null", __name__ + ".null:NullMeter")

NULL_METERS = ("none", "null")
