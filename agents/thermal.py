"""Thermal gate: wait for the board to cool below a threshold before a model is measured.

A hot board throttles mid-measurement and makes models measured later look slower; waiting costs time
but keeps models comparable. A gate that cannot open in time only warns: the measurement still happens,
flagged, rather than being lost.
"""

import time

from .sysfs import read_thermal_zones

SKIP_ZONE_WORDS = ("pmic",)  # Nano's PMIC-Die reads a constant 100 C; it would keep the gate shut forever


def _matches(zone, wanted):
    z = zone.lower()
    w = wanted.lower()
    return z == w or z.startswith((w + "-", w + "_"))


class ThermalGate:
    """Blocks in wait() until the watched zones are at or below max_c, or wait_max_s has passed.

    max_c None disables the gate. zones: zone types to watch ("CPU-therm", or the short "CPU"); empty
    means the hottest zone (PMIC zones excluded).
    """

    def __init__(
        self,
        max_c,
        zones=(),
        wait_max_s=300.0,
        poll_s=1.0,
        root="/",
        clock=time.monotonic,
        sleep=time.sleep,
        read=None,
    ):
        self.max_c = max_c
        self.zones = list(zones or [])
        self.wait_max_s = wait_max_s
        self.poll_s = poll_s
        self.root = root
        self.clock = clock
        self.sleep = sleep
        self._read = read or (lambda: read_thermal_zones(self.root))

    @classmethod
    def from_protocol(cls, protocol, root="/", **kwargs):
        return cls(
            protocol["thermal_max_c"],
            protocol["thermal_zones"],
            protocol["thermal_wait_max_s"],
            protocol["thermal_poll_s"],
            root=root,
            **kwargs,
        )

    def watched(self, temps):
        """(zone, degrees C) of the hottest watched zone, or (None, None) when none is readable."""
        temps = temps or {}
        if self.zones:
            items = [(z, t) for z, t in temps.items() if any(_matches(z, w) for w in self.zones)]
        else:
            items = [(z, t) for z, t in temps.items() if not any(w in z.lower() for w in SKIP_ZONE_WORDS)]
        items = [(z, t) for z, t in items if t is not None]
        if not items:
            return None, None
        return max(items, key=lambda item: item[1])

    def wait(self):
        """{"enabled", "gated", "timed_out", "waited_s", "temps_before", "temps_after", "zone", "max_c",
        "warning"}: gated is True when the board was too hot and the gate held the task back."""
        out = {
            "enabled": self.max_c is not None,
            "gated": False,
            "timed_out": False,
            "waited_s": 0.0,
            "temps_before": None,
            "temps_after": None,
            "zone": None,
            "max_c": self.max_c,
            "warning": None,
        }
        if self.max_c is None:
            return out
        start = self.clock()
        temps = self._read()
        out["temps_before"] = temps
        zone, temp = self.watched(temps)
        out["zone"] = zone
        if zone is None:
            if self.zones:
                out["warning"] = (
                    "thermal gate skipped: no readable thermal zone matches {} (zones: {})".format(
                        ", ".join(self.zones), ", ".join(sorted(temps or {})) or "none"
                    )
                )
            else:
                out["warning"] = "thermal gate skipped: no readable thermal zone"
            return out
        while temp > self.max_c:
            out["gated"] = True
            if self.clock() - start >= self.wait_max_s:
                out["timed_out"] = True
                out["warning"] = (
                    f"thermal gate timed out: {zone} still at {temp:.1f} C (> {self.max_c:.1f} C) after "
                    f"{self.clock() - start:.0f} s; measured anyway. Improve cooling, raise "
                    "thermal_wait_max_s, or lower the load between models."
                )
                break
            self.sleep(self.poll_s)
            temps = self._read()
            new_zone, temp = self.watched(temps)
            if new_zone is None:
                out["warning"] = f"thermal gate: zone {zone} became unreadable; gate released"
                break
            zone = out["zone"] = new_zone
        out["waited_s"] = self.clock() - start
        out["temps_after"] = temps
        return out
