"""Per-layer costs (spaces.costs.layer_costs) against the thesis's worked examples (eq. 3.18-3.20)."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from spaces import conv_intensity, count_costs, create_space
from spaces.costs import arch_costs, conv_costs, layer_costs, layer_kind

# (H = W, I = O, K, intensity to 0.1): thesis §3.3.6 worked examples
WORKED = [(14, 128, 3, 146.2), (14, 128, 1, 48.2), (56, 32, 1, 15.9)]


@pytest.mark.parametrize(("h", "c", "k", "intensity"), WORKED)
def test_worked_examples_three_ways(h: int, c: int, k: int, intensity: float) -> None:
    """The formula, the shape-level count and the hooked count of a real Conv2d agree with the thesis."""
    conv = nn.Conv2d(c, c, k, padding=k // 2, bias=False)
    (layer,) = layer_costs(conv, (1, c, h, h))
    flops, mem = conv_costs((c, h, h), (c, h, h), (k, k))
    by_hand = (h * h * c * c * k * k, 2 * h * h * c + c * c * k * k)
    assert (layer["flops"], layer["mem_access"]) == (flops, mem) == by_hand
    for value in (conv_intensity(h, h, c, c, k), flops / mem, layer["intensity"]):
        assert round(value, 1) == intensity
    assert layer["in_shape"] == layer["out_shape"] == [c, h, h]
    assert (layer["kernel"], layer["stride"], layer["groups"], layer["kind"]) == ([k, k], [1, 1], 1, "conv")


def test_first_worked_example_in_full() -> None:
    (layer,) = layer_costs(nn.Conv2d(128, 128, 3, padding=1, bias=False), (1, 128, 14, 14))
    assert layer["flops"] == 28_901_376 and layer["mem_access"] == 197_632


def test_eq_3_20_is_the_wider_conv() -> None:
    """Intensity(phi) rises with phi and equals the hooked count of the phi-times-wider layer."""
    phis = (1.0, 1.5, 2.0, 3.0)
    values = [conv_intensity(14, 14, 64, 64, 3, phi) for phi in phis]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    for phi, value in zip(phis, values, strict=True):
        c = int(64 * phi)
        (layer,) = layer_costs(nn.Conv2d(c, c, 3, padding=1, bias=False), (1, c, 14, 14))
        assert layer["intensity"] == pytest.approx(value)


def test_depthwise_and_group_counted_per_group() -> None:
    net = nn.Sequential(nn.Conv2d(32, 32, 3, stride=2, padding=1, groups=32, bias=False),
                        nn.Conv2d(32, 64, 1, groups=2, bias=False))
    dw, grouped = layer_costs(net, (1, 32, 16, 16))
    assert dw["kind"] == "depthwise" and dw["stride"] == [2, 2] and dw["out_shape"] == [32, 8, 8]
    assert dw["flops"] == 8 * 8 * 1 * 32 * 9  # I/groups = 1 input channel per output
    assert dw["mem_access"] == 32 * 16 * 16 + 32 * 8 * 8 + 32 * 9
    assert grouped["kind"] == "group" and grouped["flops"] == 8 * 8 * 16 * 64
    assert (layer_kind(1, 8), layer_kind(8, 8), layer_kind(2, 8)) == ("conv", "depthwise", "group")


def test_layers_in_run_order_with_names_and_linear() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(8, 5))
    conv, fc = layer_costs(net, (1, 3, 8, 8))
    assert (conv["name"], fc["name"]) == ("0", "3")
    assert fc["kind"] == "linear" and fc["in_shape"] == [8] and fc["out_shape"] == [5]
    assert fc["kernel"] is None and fc["stride"] is None and (fc["flops"], fc["mem_access"]) == (40, 53)
    with pytest.raises(ValueError, match="batch 1"):
        layer_costs(net, (2, 3, 8, 8))


@pytest.mark.parametrize("name", ["nb201", "mbconv-small"])
def test_count_costs_is_the_sum_of_the_layers(name: str) -> None:
    space = create_space(name)
    arch = space.sample(np.random.default_rng(3))
    both = arch_costs(space, arch)
    layers = both["layers"]
    assert both["totals"] == space.costs(arch) == count_costs(space.build(arch), space.input_shape(1))
    assert both["totals"]["flops"] == sum(layer["flops"] for layer in layers)
    assert both["totals"]["mem_access"] == sum(layer["mem_access"] for layer in layers)
    assert {layer["kind"] for layer in layers} >= ({"conv", "linear", "depthwise"} if name == "mbconv-small"
                                                   else {"conv", "linear"})
    assert len({layer["name"] for layer in layers}) == len(layers)  # each module runs once in these nets
