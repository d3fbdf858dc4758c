"""Intel (and AMD Zen, through the same names) RAPL energy counters under /sys/class/powercap.

Zones are /sys/class/powercap/intel-rapl:N (packages, psys) and intel-rapl:N:M (core, uncore, dram), also
nested as /sys/class/powercap/intel-rapl/intel-rapl:N/intel-rapl:N:M. Each has `name`, `energy_uj`
(cumulative, uJ) and `max_energy_range_uj`, where the counter wraps. Since Linux 5.10 (CVE-2020-8694,
"PLATYPUS"; kernel commit 949dd0104c49, often backported) energy_uj is readable by root only.
The counters are read at rate_hz and turned into a step power trace whose integral is the energy.
"""

import glob
import os
import re

from ..energy import counter_to_power
from ..sysfs import natural_key, read_text, under
from .base import MeterUnavailable, PowerTrace
from .sampler import SampledMeter

ZONE_GLOBS = (
    "/sys/class/powercap/intel-rapl:*",
    "/sys/class/powercap/intel-rapl/intel-rapl:*",
    "/sys/class/powercap/intel-rapl/intel-rapl:*/intel-rapl:*",
)
_ZONE_RE = re.compile(r"^intel-rapl(:\d+)+$")
NO_ZONES = (
    "no RAPL zones under /sys/class/powercap (not an x86 CPU with RAPL, or a kernel without CONFIG_POWERCAP "
    "and CONFIG_INTEL_RAPL / intel_rapl_msr)"
)
PERMISSION_FIX = (
    "energy_uj is readable by root only since Linux 5.10 (CVE-2020-8694, PLATYPUS; kernel commit "
    "949dd0104c49, also backported by distributions). Fix: run the agent as root; or `sudo chmod o+r "
    "/sys/class/powercap/intel-rapl:*/energy_uj` (until reboot); or for good a udev rule such as "
    'SUBSYSTEM=="powercap", ACTION=="add", RUN+="/bin/chmod o+r /sys%p/energy_uj" in '
    "/etc/udev/rules.d/ (benchexec does the same with chgrp + chmod g+r), or a sysfs.conf line "
    "`mode class/powercap/intel-rapl:0/energy_uj = 0444`"
)


def rapl_delta_uj(prev, cur, max_range_uj):
    """Energy (uJ) between two energy_uj readings, across a wrap-around at max_energy_range_uj.

    The counter runs from 0 to max_range and restarts at 0, so a reading lower than the previous one
    means one wrap: add max_range. Returns None for a lower reading when max_range is unknown.
    """
    if cur >= prev:
        return cur - prev
    if not max_range_uj:
        return None
    return cur + max_range_uj - prev


def unwrap_counter(values_uj, max_range_uj):
    """Cumulative energy (uJ, starting at 0) from successive raw readings of one counter."""
    out = [0.0]
    for i in range(1, len(values_uj)):
        delta = rapl_delta_uj(values_uj[i - 1], values_uj[i], max_range_uj)
        out.append(out[-1] + (0.0 if delta is None else float(delta)))
    return out if values_uj else []


def read_error_reason(exc, path):
    """Why energy_uj could not be read, with the fix for the usual cause (root-only since 5.10)."""
    if isinstance(exc, PermissionError):
        return f"cannot read {path}: permission denied. " + PERMISSION_FIX
    return "cannot read {}: {}".format(path, getattr(exc, "strerror", None) or exc)


def _read_uj(path):
    with open(path, "rb") as f:
        return int(f.read(64).decode("ascii", "replace").strip())


def find_rapl_zones(root="/"):
    """[{"id", "name", "path", "energy_path", "max_range_uj", "readable", "reason"}] of every zone."""
    zones = []
    seen = set()
    for pattern in ZONE_GLOBS:
        for folder in sorted(glob.glob(under(root, pattern)), key=natural_key):
            zid = os.path.basename(folder)
            if not _ZONE_RE.match(zid) or not os.path.isdir(folder):
                continue
            real = os.path.realpath(folder)
            if real in seen or zid in {z["id"] for z in zones}:
                continue
            seen.add(real)
            name = read_text(os.path.join(folder, "name"))
            max_range = read_text(os.path.join(folder, "max_energy_range_uj"))
            try:
                max_range = int(max_range.strip()) if max_range else None
            except ValueError:
                max_range = None
            energy = os.path.join(folder, "energy_uj")
            reason = None
            try:
                _read_uj(energy)
            except (OSError, ValueError) as exc:
                reason = read_error_reason(exc, f"/sys/class/powercap/{zid}/energy_uj")
            zones.append(
                {
                    "id": zid,
                    "name": name.strip() if name else None,
                    "path": folder,
                    "energy_path": energy,
                    "max_range_uj": max_range,
                    "readable": reason is None,
                    "reason": reason,
                }
            )
    return zones


def select_zones(zones, rail=None):
    """The zones a rail names: None -> every package-N; "package" -> the same; else name or id matches."""
    if rail in (None, "", "auto", "total", "package"):
        return [z for z in zones if (z["name"] or "").startswith("package")]
    return [z for z in zones if z["name"] == rail or z["id"] == rail]


def _reason(zones, rail=None):
    if not zones:
        return NO_ZONES
    chosen = select_zones(zones, rail)
    if not chosen:
        names = ", ".join("{} ({})".format(z["name"], z["id"]) for z in zones)
        what = (
            "no package domain" if rail in (None, "", "auto", "total", "package") else f"no domain {rail!r}"
        )
        return f"RAPL: {what}; domains here: {names}"
    bad = [z for z in chosen if not z["readable"]]
    return bad[0]["reason"] if bad else None


class RaplMeter(SampledMeter):
    """Counter sampling of the package domain(s) (summed over sockets), or the domain `rail` names
    (package-0, core, uncore, dram, psys, or a zone id such as intel-rapl:0:2)."""

    name = "rapl"

    @classmethod
    def available(cls, root="/"):
        return _reason(find_rapl_zones(root))

    @classmethod
    def probe(cls, root="/"):
        zones = find_rapl_zones(root)
        reason = _reason(zones)
        return {
            "found": bool(zones),
            "available": reason is None,
            "reason": reason,
            "zones": {
                z["id"]: {
                    "name": z["name"],
                    "readable": z["readable"],
                    "max_energy_range_uj": z["max_range_uj"],
                }
                for z in zones
            },
        }

    def __init__(self, rail=None, rate_hz=100.0, root="/"):
        SampledMeter.__init__(self, rail=rail, rate_hz=rate_hz, root=root)
        zones = find_rapl_zones(root)
        reason = _reason(zones, rail)
        if reason:
            raise MeterUnavailable(reason)
        self.zones = select_zones(zones, rail)
        for z in self.zones:
            if not z["max_range_uj"]:
                self.notes.append(
                    "{}: max_energy_range_uj unreadable; a wrap-around would be lost".format(z["id"])
                )
        names = [z["name"] for z in self.zones]
        self.rule = "RAPL energy counter{} {} (energy_uj, wrap-around at max_energy_range_uj handled)".format(
            "s" if len(names) > 1 else "", " + ".join(names)
        )

    def rails(self):
        return [z["name"] for z in self.zones]

    def trace_rail(self):
        return "+".join(z["name"] for z in self.zones)

    def read_raw(self):
        return tuple(_read_uj(z["energy_path"]) for z in self.zones)

    def to_trace(self, t_s, raw):
        total = [0.0] * len(raw)
        for k, zone in enumerate(self.zones):
            energy = unwrap_counter([r[k] for r in raw], zone["max_range_uj"])
            total = [a + b for a, b in zip(total, energy)]
        t, p = counter_to_power(t_s, [uj / 1000.0 for uj in total])
        return PowerTrace(t, p, self.trace_rail(), self.rule)
