"""SearchSpace.widened(phi): the Comfort Zone's uniform width multiplier (thesis §3.3.6)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from spaces import UserInputError, create_space
from spaces.export import export_onnx

# Small configs of every space with a width: fast to build, export and count.
SMALL = {
    "nb201": {"N": 1},
    "mbconv-small": {"resolution": 64, "stage_repeats": [1, 1, 1, 1, 1, 1]},
    "mbconv": {"resolution": 32, "num_classes": 10, "stage_repeats": [1, 1, 1, 1, 1, 1]},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_widened_space_is_wider_and_rebuilds(name: str, tmp_path: Path) -> None:
    space = create_space(name, **SMALL[name])
    assert space.widened(1.0).config == space.config
    arch = space.sample(np.random.default_rng(4))
    arch_id = space.arch_id(arch)
    base = space.costs(arch)
    wide = space.widened(2.0)
    assert wide.name == space.name and wide.config != space.config
    assert create_space(wide.name, **wide.config).config == wide.config
    assert wide.parse(arch_id) == arch and wide.arch_id(arch) == arch_id
    costs = wide.costs(arch)
    assert costs["flops"] > 2 * base["flops"] and costs["params"] > base["params"]
    assert export_onnx(wide, arch, tmp_path).sha256 != export_onnx(space, arch, tmp_path).sha256


def test_mbconv_multiplies_width_mult_and_keeps_its_rounding() -> None:
    space = create_space("mbconv-small")
    assert space.widened(2.0).config["width_mult"] == pytest.approx(space.width_mult * 2.0)
    assert space.widened(1.5).widened(2.0).config["width_mult"] == pytest.approx(space.width_mult * 3.0)
    # channels stay multiples of 8, so x1.01 (width 0.7575) leaves every searchable layer as it was
    assert all(c % 8 == 0 for layer in space.widened(1.37)._plan for c in layer[:2])
    assert space.widened(1.01)._plan == space._plan


@pytest.mark.parametrize(("name", "config"), [("mbconv-small", {}), ("nb201", {"N": 1})])
def test_network_intensity_rises_with_phi(name: str, config: dict) -> None:
    """At their own resolutions (224, 32) feature maps dominate the memory accesses, so eq. 3.20 carries over."""
    space = create_space(name, **config)
    arch = space.sample(np.random.default_rng(0))
    values = [space.widened(phi).costs(arch)["intensity"] for phi in (1.0, 1.5, 2.0, 3.0)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))


def test_every_layer_gains_intensity_even_where_the_network_does_not() -> None:
    """Eq. 3.20 holds per layer (depthwise layers stay level), but the network's ratio is a mix weighted by
    memory accesses: at 32 x 32 the late 1 x 1-map layers are weight-bound and their weights grow as phi^2, so
    widening can lower the network's intensity (measured: 3.06 at x1, 2.95 at x2 for this arch)."""
    from spaces.costs import arch_costs

    space = create_space("mbconv", **SMALL["mbconv"])
    arch = space.sample(np.random.default_rng(4))
    base, wide = arch_costs(space, arch), arch_costs(space.widened(2.0), arch)
    assert [layer["name"] for layer in base["layers"]] == [layer["name"] for layer in wide["layers"]]
    for a, b in zip(base["layers"], wide["layers"], strict=True):
        if a["kind"] == "depthwise":
            assert b["intensity"] == pytest.approx(a["intensity"])
        else:
            assert b["intensity"] > a["intensity"]
    assert wide["totals"]["intensity"] < base["totals"]["intensity"]


def test_nb201_rounds_c_half_up_and_keeps_one() -> None:
    space = create_space("nb201")
    assert space.widened(1.25).config["C"] == 20 and space.widened(1.5).config["C"] == 24
    assert create_space("nb201", C=5).widened(0.5).config["C"] == 3  # 2.5 -> 3, not banker's 2
    assert space.widened(0.001).config["C"] == 1


@pytest.mark.parametrize("phi", [0, -1.0, math.inf, math.nan, "2", None, True])
@pytest.mark.parametrize("name", ["nb201", "mbconv-small", "fbnet"])
def test_bad_phi_is_refused(name: str, phi: object) -> None:
    with pytest.raises(UserInputError, match="phi must be a finite number > 0"):
        create_space(name).widened(phi)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["fbnet", "conv-probe"])
def test_spaces_without_a_width_say_so(name: str) -> None:
    with pytest.raises(UserInputError, match=f"space {name} has no width multiplier"):
        create_space(name).widened(2.0)
