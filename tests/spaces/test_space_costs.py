"""Cost counting and the thesis's arithmetic-intensity equations (3.18-3.20)."""

from __future__ import annotations

import pytest
from torch import nn

from spaces import conv_intensity, count_costs
from spaces.costs import conv_costs, linear_costs


def test_eq_3_18_worked_example():
    flops, mem = conv_costs((128, 14, 14), (128, 14, 14), (3, 3))
    assert flops == 28_901_376  # 28.9 M
    assert mem == 197_632  # 197.6 K


@pytest.mark.parametrize(
    ("h", "i", "k", "expected"),
    [(14, 128, 3, 146.2), (14, 128, 1, 48.2), (56, 32, 1, 15.9)],
)
def test_eq_3_19_worked_examples(h, i, k, expected):
    assert conv_intensity(h, h, i, i, k) == pytest.approx(expected, abs=0.05)
    flops, mem = conv_costs((i, h, h), (i, h, h), (k, k))
    assert conv_intensity(h, h, i, i, k) == pytest.approx(flops / mem)


def test_eq_3_20_increases_with_phi():
    values = [conv_intensity(14, 14, 128, 128, 3, phi) for phi in (0.5, 1.0, 1.5, 2.0, 3.0, 8.0)]
    assert values == sorted(values) and len(set(values)) == len(values)
    # widening by phi is the same as counting the wider layer directly
    wide_flops, wide_mem = conv_costs((384, 14, 14), (384, 14, 14), (3, 3))
    assert conv_intensity(14, 14, 128, 128, 3, phi=3.0) == pytest.approx(wide_flops / wide_mem)


@pytest.mark.parametrize(("kwargs", "name"), [({"h": 0}, "h"), ({"k": -1}, "k"), ({"phi": 0.0}, "phi")])
def test_conv_intensity_errors(kwargs, name):
    args = {"h": 14, "w": 14, "i": 8, "o": 8, "k": 3} | kwargs
    with pytest.raises(ValueError, match=name):
        conv_intensity(**args)


def test_count_costs_by_hand():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),  # 8x8 -> 4x4
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # depthwise
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(8, 5),
    )
    costs = count_costs(model, (1, 3, 8, 8))
    conv1 = (4 * 4 * 3 * 8 * 9, 8 * 8 * 3 + 4 * 4 * 8 + 3 * 8 * 9)
    dw = (4 * 4 * 1 * 8 * 9, 4 * 4 * 8 + 4 * 4 * 8 + 8 * 9)
    fc = linear_costs(8, 5)
    assert fc == (40, 8 + 5 + 40)
    assert costs["flops"] == conv1[0] + dw[0] + fc[0]
    assert costs["mem_access"] == conv1[1] + dw[1] + fc[1]
    assert costs["params"] == 3 * 8 * 9 + 16 + 8 * 9 + 8 * 5 + 5
    assert costs["intensity"] == pytest.approx(costs["flops"] / costs["mem_access"])


def test_count_costs_needs_batch_one():
    with pytest.raises(ValueError, match="batch 1"):
        count_costs(nn.Linear(2, 2), (4, 2))
