"""The conv-probe space: one conv layer per arch, through costs, ONNX export and the space package."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from spaces import InvalidArchError, UserInputError, conv_intensity, create_space, list_spaces
from spaces.conv_probe import DEFAULT_CHANNELS
from spaces.export import export_onnx, export_space_package


@pytest.fixture(scope="module")
def probe():
    return create_space("conv-probe")


def test_registered_with_its_grid(probe) -> None:
    assert "conv-probe" in list_spaces()
    assert probe.config == {"h": 14, "w": 14, "k": 3, "stride": 1, "channels": list(DEFAULT_CHANNELS)}
    assert probe.n_layers == 2 and probe.size == len(DEFAULT_CHANNELS) ** 2
    grid = probe.grid()
    assert len(grid) == len(set(grid)) == probe.size and grid[:2] == [(0, 0), (0, 1)]  # row-major
    assert probe.arch_for(128, 256) == (5, 7) and probe.arch_id((5, 7)) == "i128-o256"
    assert [probe.parse(probe.arch_id(a)) for a in grid] == grid


@pytest.mark.parametrize(("bad", "part"), [("i100-o256", "input channels 100"), ("i128-o100", "output channels 100"),
                                           ("x128-o256", "input part 'x128'"), ("i128-oabc", "output part 'oabc'"),
                                           ("i128", "i<in channels>-o<out channels>")])
def test_parse_names_the_bad_part(probe, bad: str, part: str) -> None:
    with pytest.raises(InvalidArchError, match=part):
        probe.parse(bad)


def test_arch_for_refuses_channels_off_the_grid(probe) -> None:
    with pytest.raises(UserInputError, match="output channels 100 not in the grid"):
        probe.arch_for(128, 100)


@pytest.mark.parametrize(("config", "key"), [({"h": 0}, "h"), ({"k": 2.5}, "k"), ({"k": 4}, "k must be odd"),
                                             ({"stride": True}, "stride"), ({"channels": []}, "channels"),
                                             ({"channels": "16,32"}, "channels"),
                                             ({"channels": [16, 0]}, r"channels\[1\]"),
                                             ({"channels": [32, 16]}, "strictly increasing"),
                                             ({"channels": [16, 16]}, "strictly increasing")])
def test_bad_config_names_the_key(config: dict, key: str) -> None:
    with pytest.raises(UserInputError, match=key):
        create_space("conv-probe", **config)


def test_unknown_config_key_is_refused() -> None:
    with pytest.raises(UserInputError, match="no config key"):
        create_space("conv-probe", width=3)


def test_input_shape_follows_the_arch(probe) -> None:
    assert probe.input_shape(4) == (4, 16, 14, 14)
    assert probe.input_shape_of((5, 0), 4) == (4, 128, 14, 14)
    with pytest.raises(InvalidArchError):
        probe.input_shape_of((8, 0))


@pytest.mark.parametrize("config", [{}, {"h": 56, "w": 56, "k": 1, "channels": [32, 64]},
                                    {"h": 28, "w": 20, "k": 5, "stride": 2, "channels": [8, 24]}])
def test_module_and_costs_are_the_formula(config: dict) -> None:
    space = create_space("conv-probe", **config)
    for arch in (space.grid()[0], space.grid()[-1]):
        i, o = (space.channels[j] for j in arch)
        conv = space.build(arch)
        assert isinstance(conv, nn.Conv2d) and conv.bias is None and not conv.training
        assert (conv.in_channels, conv.out_channels, conv.kernel_size[0]) == (i, o, space.k)
        out = conv(torch.zeros(space.input_shape_of(arch, 1)))
        ho, wo = out.shape[2:]
        assert (ho, wo) == (-(-space.h // space.stride), -(-space.w // space.stride))
        costs = space.costs(arch)
        assert costs["flops"] == ho * wo * i * o * space.k**2
        assert costs["mem_access"] == space.h * space.w * i + ho * wo * o + i * o * space.k**2
        assert costs["params"] == i * o * space.k**2
        if space.stride == 1 and space.h == space.w:
            assert costs["intensity"] == pytest.approx(conv_intensity(space.h, space.w, i, o, space.k))


def test_thesis_example_through_the_space() -> None:
    space = create_space("conv-probe", h=56, w=56, k=1, channels=[32])
    assert round(space.costs((0, 0))["intensity"], 1) == 15.9


def test_weights_are_seeded_by_the_arch(probe) -> None:
    a, b = probe.build((1, 2)), probe.build((1, 2))
    assert torch.equal(a.weight, b.weight) and a.weight.std() > 0
    assert not torch.equal(probe.build((2, 1)).weight.flatten()[:10], a.weight.flatten()[:10])


def test_onnx_has_the_arch_input_channels_and_a_dynamic_batch(probe, tmp_path: Path) -> None:
    arch = probe.arch_for(48, 96)
    model = export_onnx(probe, arch, tmp_path)
    graph = onnx.load(str(model.path)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value  # dynamic batch
    assert [d.dim_value for d in dims[1:]] == [48, 14, 14]
    assert [n.op_type for n in graph.node] == ["Conv"]
    assert export_onnx(probe, arch, tmp_path).sha256 == model.sha256
    other = create_space("conv-probe", h=28, w=28)
    assert export_onnx(other, other.arch_for(48, 96), tmp_path).sha256 != model.sha256


def test_space_package_rebuilds_from_json(tmp_path: Path) -> None:
    space = create_space("conv-probe", h=7, w=7, k=1, channels=(8, 16, 24))
    arch = space.arch_for(24, 8)
    package = export_space_package(space, arch, tmp_path)
    with zipfile.ZipFile(package.path) as z:
        spec = json.loads(z.read("model.json"))
        assert "spaces/conv_probe.py" in z.namelist()
    assert spec["config"] == space.config and spec["arch_id"] == "i24-o8"
    rebuilt = create_space(spec["space"], **spec["config"])
    assert rebuilt.config == space.config
    a, b = rebuilt.build(spec["arch"]), space.build(arch)
    assert torch.equal(a.weight, b.weight)
