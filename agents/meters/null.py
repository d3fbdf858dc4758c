"""The meter of boards without one: measures nothing, so results carry energy null."""

from .base import PowerMeter, PowerTrace


class NullMeter(PowerMeter):
    """Always available; returns an empty trace."""

    name = "none"

    def start(self):
        pass

    def stop(self):
        return PowerTrace([], [], self.rail)
