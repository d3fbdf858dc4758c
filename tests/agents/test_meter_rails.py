"""The board-total rule (agents/meters/rails.py), board by board."""

import pytest

from agents.meters.rails import is_rail_label, sum_rail_name, total_rail

NANO = ["POM_5V_IN", "POM_5V_GPU", "POM_5V_CPU"]
TX2 = ["VDD_SYS_GPU", "VDD_SYS_SOC", "VDD_4V0_WIFI", "VDD_IN", "VDD_SYS_CPU", "VDD_SYS_DDR"]
TX2_EMULATOR = ["VDD_IN", "VDD_CPU", "VDD_GPU", "VDD_SOC", "VDD_WIFI", "VDD_DDR"]
XAVIER = ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"]
XAVIER_NX = ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
AGX_ORIN = ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "NC", "VDDQ_VDD2_1V8AO", "NC"]
ORIN_NANO = ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]


@pytest.mark.parametrize(
    "names, model, rail, words",
    [
        (NANO, "NVIDIA Jetson Nano Developer Kit", "POM_5V_IN", ["already the board total", "#51"]),
        (TX2, "NVIDIA Jetson TX2 Developer Kit", "VDD_IN", ["module input", "TX2"]),
        (TX2_EMULATOR, None, "VDD_IN", ["module input"]),
        (XAVIER_NX, "NVIDIA Jetson Xavier NX Developer Kit (SD-card)", "VDD_IN", ["Xavier NX"]),
        (ORIN_NANO, "NVIDIA Jetson Orin Nano Developer Kit", "VDD_IN", ["Orin NX/Nano"]),
    ],
)
def test_boards_with_an_input_rail(names, model, rail, words):
    chosen, rule = total_rail(names, model)
    assert chosen == rail
    for w in words:
        assert w in rule


def test_agx_xavier_sums_every_rail():
    rail, rule = total_rail(XAVIER, "NVIDIA Jetson AGX Xavier Developer Kit")
    assert rail is None
    assert "sum of GPU + CPU + SOC + CV + VDDRQ + SYS5V" in rule
    assert "SYS5V alone is not the total" in rule and "xavier-jetson-total-power-consumption" in rule


def test_agx_orin_sums_connected_rails_and_cites_344():
    rail, rule = total_rail(AGX_ORIN, "NVIDIA Jetson AGX Orin Developer Kit")
    assert rail is None
    assert "sum of VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0 + VDDQ_VDD2_1V8AO" in rule
    assert "NC" not in rule.split("sum of")[1].split("(")[0]
    assert "VIN_SYS_5V0 alone is not the total (jetson-stats #344)" in rule
    assert sum_rail_name(AGX_ORIN) == "VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0+VDDQ_VDD2_1V8AO"


def test_missing_expected_rail_is_said():
    rail, rule = total_rail(["POM_5V_GPU", "POM_5V_CPU"], "NVIDIA Jetson Nano Developer Kit")
    assert rail is None and "normally has POM_5V_IN" in rule
    assert total_rail([], None) == (None, total_rail([], None)[1])
    assert "no rails" in total_rail([], None)[1]


def test_rail_labels():
    assert not is_rail_label("NC") and not is_rail_label(" NC\n") and not is_rail_label("")
    assert not is_rail_label(None) and not is_rail_label("sum of shunt voltages")
    assert is_rail_label("VIN_SYS_5V0") and is_rail_label("VDD_SYNC") and is_rail_label("GPU")
