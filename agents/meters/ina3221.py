"""INA3221 power monitors of Jetson boards, read from sysfs (board-formats.md section 2).

Two driver layouts, found by discovery, never by a hard-coded board:
- JetPack 4 (L4T R32), NVIDIA's `ina3221x` IIO driver: `rail_name_N` (label), `in_powerN_input` (mW),
  `in_currentN_input` (mA), `in_voltageN_input` (mV), N = 0..2. The folder is `iio:deviceK`, or
  `iio_device` on TX2 (/sys/devices/3160000.i2c/i2c-0/0-0040 and 0-0041).
- JetPack 5+ (L4T R35+), the upstream `ina3221` hwmon driver: `inK_label`, `inK_input` (bus voltage, mV),
  `currK_input` (mA), K = 1..3; there is no power file, so P[mW] = mV * mA / 1000. `in7` is the sum of
  shunt voltages, not a rail. The hwmonN index differs per board: always globbed.
Chips are found through /sys/bus/i2c/devices/*/name, the ina3221x/ina3221 driver folders, the known
i2c device paths, and /sys/class/hwmon/*/name. NC (unconnected) channels are skipped with a note.
"""

import glob
import os
import re

from ..sysfs import natural_key, read_board_model, read_text, under
from .base import MeterUnavailable
from .rails import is_rail_label, sum_rail_name, total_rail
from .sampler import SampledMeter

DRIVER_NAMES = ("ina3221", "ina3221x")
DEVICE_GLOBS = (
    "/sys/bus/i2c/devices/*",
    "/sys/bus/i2c/drivers/ina3221x/*-004[0-3]",
    "/sys/bus/i2c/drivers/ina3221/*-004[0-3]",
    "/sys/devices/*.i2c/i2c-*/*-004[0-3]",  # TX2 3160000.i2c/i2c-0/0-0040, Xavier NX c250000.i2c/i2c-7
    "/sys/devices/*/*.i2c/i2c-*/*-004[0-3]",  # Nano 50000000.host1x/546c0000.i2c/i2c-6/6-0040
    "/sys/devices/platform/*/*.i2c/i2c-*/*-004[0-3]",
)
HWMON_GLOB = "/sys/class/hwmon/hwmon*"
NO_CHIP = (
    "no INA3221 power monitor found (looked in /sys/bus/i2c/devices/*/name, the ina3221x/ina3221 driver "
    "folders and /sys/class/hwmon/*/name): not a Jetson, or the driver is not loaded"
)

_RAIL_NAME_RE = re.compile(r"^rail_name_(\d+)$")
_HWMON_LABEL_RE = re.compile(r"^in(\d+)_label$")


class SysfsReadError(OSError):
    """A sysfs value that could not be read or is not a number."""


def read_number(path):
    """The first number in a sysfs file ("5000", "32760 ma"); raises SysfsReadError."""
    try:
        with open(path, "rb") as f:
            text = f.read(64).decode("ascii", "replace").strip()
    except OSError as exc:
        raise SysfsReadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        raise SysfsReadError(f"{path} holds {text!r}, not a number") from None


def _label(path):
    text = read_text(path)
    return text.replace("\x00", "").strip() if text else None


def _rel(root, path):
    """path as it is on the board (root prefix removed), for reports."""
    root = os.path.abspath(root or "/")
    path = os.path.abspath(path)
    if root != "/" and path.startswith(root + os.sep):
        return path[len(root) :]
    return path


def _device_name(folder):
    name = _label(os.path.join(folder, "name"))
    return name or ""


def _is_ina(folder):
    name = _device_name(folder).lower()
    if name:
        return "ina3221" in name
    # an i2c folder without a name file but with the JP4 IIO rail files (seen in TX2 scripts)
    return bool(glob.glob(os.path.join(folder, "iio*device*", "rail_name_*")))


def _iio_channels(folder, device, root, notes):
    out = []
    for path in sorted(os.listdir(folder), key=natural_key):
        m = _RAIL_NAME_RE.match(path)
        if not m:
            continue
        n = int(m.group(1))
        label = _label(os.path.join(folder, path))
        where = f"{device} channel {n}"
        if not is_rail_label(label):
            notes.append(f"skipped {where} ({label!r}: not connected)")
            continue

        def f(kind, n=n):
            p = os.path.join(folder, f"in_{kind}{n}_input")
            return p if os.path.exists(p) else None

        out.append(
            {
                "rail": label,
                "device": device,
                "layout": "iio",
                "channel": n,
                "folder": _rel(root, folder),
                "power": f("power"),
                "voltage": f("voltage"),
                "current": f("current"),
            }
        )
    return out


def _hwmon_channels(folder, device, root, notes):
    out = []
    for path in sorted(os.listdir(folder), key=natural_key):
        m = _HWMON_LABEL_RE.match(path)
        if not m:
            continue
        k = int(m.group(1))
        label = _label(os.path.join(folder, path))
        where = f"{device} in{k}"
        if k > 3 or (label and "sum of shunt" in label.lower()):
            notes.append(f"skipped {where} ({label!r}: the sum of shunt voltages, not a rail)")
            continue
        if not is_rail_label(label):
            notes.append(f"skipped {where} ({label!r}: not connected)")
            continue
        enable = _label(os.path.join(folder, f"in{k}_enable"))
        if enable == "0":
            notes.append(f"skipped {where} ({label}: channel disabled, in{k}_enable = 0)")
            continue
        volt = os.path.join(folder, f"in{k}_input")
        curr = os.path.join(folder, f"curr{k}_input")
        out.append(
            {
                "rail": label,
                "device": device,
                "layout": "hwmon",
                "channel": k,
                "folder": _rel(root, folder),
                "power": None,
                "voltage": volt if os.path.exists(volt) else None,
                "current": curr if os.path.exists(curr) else None,
            }
        )
    return out


def _channel_folders(dev):
    """(layout, folder) pairs below one INA3221 i2c device folder."""
    out = []
    for h in sorted(glob.glob(os.path.join(dev, "hwmon", "hwmon*")), key=natural_key):
        out.append(("hwmon", h))
    for pattern in ("iio:device*", "iio_device"):
        for d in sorted(glob.glob(os.path.join(dev, pattern)), key=natural_key):
            out.append(("iio", d))
    return out


def find_ina3221_channels(root="/"):
    """(channels, notes): every connected INA3221 channel, deduplicated across the discovery paths.

    A channel is {"rail", "device", "layout" (iio | hwmon), "channel", "folder", "power", "voltage",
    "current"} (file paths; power only on iio). notes list what was skipped and why.
    """
    notes = []
    seen_folders = set()
    channels = []

    def add(layout, folder, device):
        real = os.path.realpath(folder)
        if real in seen_folders:
            return
        seen_folders.add(real)
        try:
            if layout == "hwmon":
                found = _hwmon_channels(folder, device, root, notes)
            else:
                found = _iio_channels(folder, device, root, notes)
        except OSError as exc:
            notes.append(f"cannot list {_rel(root, folder)}: {exc.strerror or exc}")
            return
        channels.extend(found)

    seen_devices = set()
    for pattern in DEVICE_GLOBS:
        for dev in sorted(glob.glob(under(root, pattern)), key=natural_key):
            real = os.path.realpath(dev)
            if real in seen_devices or not os.path.isdir(dev) or not _is_ina(dev):
                continue
            seen_devices.add(real)
            for layout, folder in _channel_folders(dev):
                add(layout, folder, os.path.basename(real))
    for hw in sorted(glob.glob(under(root, HWMON_GLOB)), key=natural_key):
        if _device_name(hw).lower() not in DRIVER_NAMES:
            continue
        real = os.path.realpath(hw)
        device = os.path.basename(os.path.dirname(os.path.dirname(real))) or os.path.basename(hw)
        add("hwmon", hw, device)

    # two chips with one label (unlikely) keep both, the second suffixed
    names = {}
    for ch in channels:
        base = ch["rail"]
        if base in names:
            names[base] += 1
            ch["rail"] = f"{base}_{names[base]}"
            notes.append(f"rail {base!r} appears twice; the one on {ch['device']} is named {ch['rail']!r}")
        else:
            names[base] = 0
    return channels, notes


def read_channel(ch):
    """{"power_mw", "voltage_mv", "current_ma"} of one channel; power_mw raises SysfsReadError."""
    volt = read_number(ch["voltage"]) if ch["voltage"] else None
    curr = read_number(ch["current"]) if ch["current"] else None
    return {"power_mw": channel_power_mw(ch), "voltage_mv": volt, "current_ma": curr}


def channel_power_mw(ch):
    """Power of one channel in mW: the iio power file, else bus mV x mA / 1000."""
    if ch["power"]:
        return read_number(ch["power"])
    if not ch["voltage"] or not ch["current"]:
        raise SysfsReadError("{}: no power file and no voltage/current pair".format(ch["rail"]))
    return read_number(ch["voltage"]) * read_number(ch["current"]) / 1000.0


def _unreadable_reason(channels):
    errors = []
    for ch in channels:
        try:
            channel_power_mw(ch)
            return None
        except SysfsReadError as exc:
            errors.append(str(exc))
    return "INA3221 found but no rail could be read: " + "; ".join(errors[:3])


class Ina3221Meter(SampledMeter):
    """Polls the chosen INA3221 rail(s) at rate_hz.

    rail None (or "total"): the board total by rails.total_rail (POM_5V_IN, VDD_IN, or the sum of all
    rails); "sum": the sum of all rails; otherwise the rail with that label.
    """

    name = "ina3221"

    @classmethod
    def available(cls, root="/"):
        channels, _ = find_ina3221_channels(root)
        if not channels:
            return NO_CHIP
        return _unreadable_reason(channels)

    @classmethod
    def probe(cls, root="/"):
        channels, notes = find_ina3221_channels(root)
        reason = NO_CHIP if not channels else _unreadable_reason(channels)
        rails = []
        devices = {}
        for ch in channels:
            entry = {k: ch[k] for k in ("rail", "device", "layout", "channel", "folder")}
            try:
                entry.update(read_channel(ch))
            except SysfsReadError as exc:
                entry["error"] = str(exc)
            rails.append(entry)
            dev = devices.setdefault(ch["device"], {"layout": ch["layout"], "rails": []})
            dev["rails"].append(ch["rail"])
        total, rule = total_rail([ch["rail"] for ch in channels], read_board_model(root))
        return {
            "found": bool(channels),
            "available": reason is None,
            "reason": reason,
            "devices": devices,
            "rails": rails,
            "total_rail": total,
            "rule": rule if channels else None,
            "notes": notes,
        }

    def __init__(self, rail=None, rate_hz=100.0, root="/", board_model=None):
        SampledMeter.__init__(self, rail=rail, rate_hz=rate_hz, root=root)
        channels, notes = find_ina3221_channels(root)
        self.notes.extend(notes)
        if not channels:
            raise MeterUnavailable(NO_CHIP)
        self.channels = channels
        labels = [ch["rail"] for ch in channels]
        model = board_model if board_model is not None else read_board_model(root)
        total, total_rule = total_rail(labels, model)
        if rail in (None, "", "total", "auto"):
            if total is None:
                self._selected = list(channels)
            else:
                self._selected = [ch for ch in channels if ch["rail"] == total]
            self.rule = total_rule
        elif rail == "sum":
            self._selected = list(channels)
            self.rule = "sum of every rail, as the job asked (rail = 'sum')"
        else:
            chosen = [ch for ch in channels if ch["rail"] == rail]
            if not chosen:
                chosen = [ch for ch in channels if ch["rail"].lower() == rail.lower()]
            if not chosen:
                raise MeterUnavailable(
                    "rail {!r} not found; INA3221 rails here: {}".format(rail, ", ".join(labels))
                )
            self._selected = chosen
            if chosen[0]["rail"] == total:
                self.rule = total_rule
            else:
                board_total = total or "the sum of the rails"
                self.rule = "{}: the rail the job asked for; not the board total ({})".format(
                    chosen[0]["rail"], board_total
                )

    def rails(self):
        return [ch["rail"] for ch in self.channels]

    def trace_rail(self):
        if len(self._selected) == 1:
            return self._selected[0]["rail"]
        return sum_rail_name([ch["rail"] for ch in self._selected])

    def read_raw(self):
        total = 0.0
        for ch in self._selected:
            total += channel_power_mw(ch)
        return total

    def describe(self):
        out = SampledMeter.describe(self)
        out["channels"] = [
            {k: ch[k] for k in ("rail", "device", "layout", "channel", "folder")} for ch in self._selected
        ]
        return out
