"""Which Jetson power rail is "board power": one named rule, recorded with every energy record.

Facts (board-formats.md 1.4, field-practice.md 4; jtop jtop/core/power.py::total_power):
- Nano: POM_5V_IN is the module's 5 V input and already the total; POM_5V_GPU and POM_5V_CPU are
  sub-rails of it. Adding them double-counts (rbonghi/jetson_stats #51; NVIDIA forum
  "power-consumption-monitoring/73608/8").
- TX2 / TX2 NX, Xavier NX, Orin NX, Orin Nano: VDD_IN is the module input, the total (TX2 sysfs 0-0041
  channel 0; jtop's power docstring; NVIDIA forum "orin-nx-power-data-from-jtop/242804/5").
- AGX Xavier has no input rail (GPU, CPU, SOC, CV, VDDRQ, SYS5V): the total is the sum of the rails
  (jtop; NVIDIA forum "xavier-jetson-total-power-consumption/81016"). SYS5V alone is not the total.
- AGX Orin has no VDD_IN either (VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0, VDDQ_VDD2_1V8AO, NC): jtop once
  showed VIN_SYS_5V0 as the "ALL" value, which was wrong (rbonghi/jetson_stats #344); the total is the
  sum of the rails, jtop's convention (whether that equals module input power is unconfirmed).
- NC channels are unconnected and never part of a sum; hwmon channel 7 is the sum of shunt voltages, not
  a rail.
"""

import re

TOTAL_RAILS = ("POM_5V_IN", "VDD_IN")

RULE_POM = (
    "POM_5V_IN: the module's 5 V input, already the board total on Nano and TX2 (jetson-stats #51); "
    "its sub-rails are not added"
)
RULE_VDD_IN = (
    "VDD_IN: the module input rail, the board total on TX2/TX2 NX, Xavier NX and Orin NX/Nano "
    "(jetson-stats #51, jtop total_power)"
)
RULE_SUM = (
    "no input rail (POM_5V_IN or VDD_IN) on this board: total = sum of {rails} "
    "(jtop total_power convention; NVIDIA forum xavier-jetson-total-power-consumption)"
)
NOTE_ORIN = "; on AGX Orin VIN_SYS_5V0 alone is not the total (jetson-stats #344)"
NOTE_XAVIER = "; on AGX Xavier SYS5V alone is not the total"
NOTE_EXPECTED = "; note: a {model} normally has {rail}, which was not found"

_NC_RE = re.compile(r"(^|[^A-Za-z0-9])NC($|[^A-Za-z0-9])")


def is_rail_label(label):
    """False for unconnected (NC) channels and the hwmon "sum of shunt voltages" channel."""
    if not label or not label.strip():
        return False
    text = label.strip()
    if _NC_RE.search(text):
        return False
    return "sum of shunt" not in text.lower()


def _expected_total(board_model):
    model = (board_model or "").lower()
    if "nano" in model and "orin" not in model:
        return "POM_5V_IN"
    if "tx2" in model or "xavier nx" in model or "orin nx" in model or "orin nano" in model:
        return "VDD_IN"
    return None


def total_rail(rail_names, board_model=None):
    """(rail, rule): the rail that is the board total, or (None, rule) when the total is the sum.

    rail_names: the labels found (NC and sum-of-shunt channels are ignored). board_model (the
    device-tree model) only sharpens the rule text.
    """
    names = [n for n in rail_names if is_rail_label(n)]
    expected = _expected_total(board_model)
    for rail, rule in (("POM_5V_IN", RULE_POM), ("VDD_IN", RULE_VDD_IN)):
        if rail in names:
            return rail, rule
    rule = RULE_SUM.format(rails=" + ".join(names) if names else "no rails")
    model = (board_model or "").lower()
    if "agx orin" in model or "VIN_SYS_5V0" in names:
        rule += NOTE_ORIN
    elif "agx xavier" in model or "SYS5V" in names:
        rule += NOTE_XAVIER
    if expected:
        rule += NOTE_EXPECTED.format(model=board_model, rail=expected)
    return None, rule


def sum_rail_name(rail_names):
    """The trace's rail name for a sum of rails: "GPU+CPU+SOC"."""
    return "+".join(n for n in rail_names if is_rail_label(n))
