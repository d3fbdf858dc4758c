"""SurgeNAS MBConv space (thesis Table 3.1): ids, macro-structure, encodings, builder and costs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spaces import InvalidArchError, create_space
from spaces.mbconv import OPS, SKIP, TOKENS, MBConv, layer_plan, scale_channels

PAPER_PLAN_OUT = [32] * 4 + [56] * 4 + [112] * 4 + [128] * 4 + [256] * 4 + [432]


@pytest.fixture(scope="module")
def paper():
    return create_space("mbconv")


@pytest.fixture(scope="module")
def small():
    return create_space("mbconv-small")


def test_paper_space_shape(paper):
    assert paper.ops == OPS and len(OPS) == 7 and OPS[-1] == "skip"
    assert paper.n_layers == 21
    assert paper.size == 7**21 == 558_545_864_083_284_007
    assert paper.input_shape() == (1, 3, 224, 224)


def test_small_space_keeps_encoding(paper, small):
    assert small.n_layers == paper.n_layers and small.ops == paper.ops
    arch = paper.sample(np.random.default_rng(0))
    assert small.arch_id(arch) == paper.arch_id(arch)
    np.testing.assert_array_equal(small.to_onehot(arch), paper.to_onehot(arch))


def test_layer_plan_follows_table_3_1():
    plan = layer_plan(1.0, (4, 4, 4, 4, 4, 1))
    assert [c_out for _, c_out, _ in plan] == PAPER_PLAN_OUT
    assert [i for i, (_, _, stride) in enumerate(plan) if stride == 2] == [0, 4, 8, 16]
    assert plan[0][0] == 24 and all(plan[i][0] == plan[i - 1][1] for i in range(1, 21))


def test_scale_channels():
    assert [scale_channels(c, 1.0) for c in (40, 24, 1728)] == [40, 24, 1728]
    assert scale_channels(40, 0.5) == 24  # 20 -> nearest multiple of 8, halves round up
    assert scale_channels(24, 0.1) == 8  # never below 8
    assert scale_channels(432, 2.0) == 864


def test_arch_id_and_parse(paper):
    arch = tuple(i % 7 for i in range(21))
    arch_id = paper.arch_id(arch)
    assert arch_id.split("-")[:7] == list(TOKENS)
    assert paper.parse(arch_id) == arch
    for arch in paper.sample_unique(50, np.random.default_rng(1)):
        assert paper.parse(paper.arch_id(arch)) == arch


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("-".join(["k3e3"] * 20), "needs 21 '-'-separated ops, got 20"),
        ("-".join(["k3e3"] * 5 + ["k9e3"] + ["k3e3"] * 15), "unknown op 'k9e3' at layer 5"),
        ("-".join(["mb_k3_e3"] * 21), "unknown op 'mb_k3_e3' at layer 0"),
        (None, "must be a str"),
    ],
)
def test_parse_errors(paper, bad, message):
    with pytest.raises(InvalidArchError, match=message):
        paper.parse(bad)


def test_graph_is_a_chain(paper):
    arch = paper.sample(np.random.default_rng(2))
    adj, feats = paper.to_graph(arch)
    assert adj.shape == (21, 21) and feats.shape == (21, 7)
    assert adj.dtype == feats.dtype == np.float32
    np.testing.assert_array_equal(adj, np.eye(21, k=1))
    np.testing.assert_array_equal(feats.argmax(1), arch)


def test_skip_is_identity_or_projection(small):
    model = small.build((SKIP,) * 21)
    layers = list(model)[2:23]
    stage_firsts = {0, 4, 8, 12, 16, 20}  # stride 2 or new channel count
    for i, layer in enumerate(layers):
        if i in stage_firsts:
            assert isinstance(layer, nn.Sequential) and isinstance(layer[0], nn.Conv2d)
            assert layer[0].kernel_size == (1, 1) and len(layer) == 2  # conv + BN, no activation
        else:
            assert isinstance(layer, nn.Identity)


def test_mbconv_block():
    block = MBConv(32, 32, 5, 6, 1)
    assert block.residual and len(block.body) == 3
    assert block.body[1][0].groups == 192 and block.body[1][0].kernel_size == (5, 5)
    assert not MBConv(32, 56, 3, 3, 1).residual and not MBConv(32, 32, 3, 3, 2).residual
    assert len(MBConv(40, 24, 3, 1, 1).body) == 2  # e = 1: no expansion conv


def test_paper_build_forward(paper):
    arch = paper.sample(np.random.default_rng(4))
    with torch.no_grad():
        out = paper.build(arch)(torch.zeros(paper.input_shape(1)))
    assert out.shape == (1, 1000)


@pytest.mark.parametrize("arch", [(0,) * 21, (5,) * 21, (SKIP,) * 21])
def test_small_build_forward(small, arch):
    with torch.no_grad():
        out = small.build(arch)(torch.randn(small.input_shape(2)))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_config_options():
    space = create_space(
        "mbconv", width_mult=0.5, resolution=64, num_classes=7, stage_repeats=[1, 2, 1, 1, 1, 1]
    )
    assert space.n_layers == 7 and space.size == 7**7
    with torch.no_grad():
        assert space.build((1,) * 7)(torch.zeros(space.input_shape(1))).shape == (1, 7)
    assert create_space("mbconv", **space.config).config == space.config


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"width_mult": 0}, "width_mult"),
        ({"width_mult": float("nan")}, "width_mult"),
        ({"resolution": 0}, "resolution"),
        ({"num_classes": 2.5}, "num_classes"),
        ({"stage_repeats": (4, 4, 4)}, "stage_repeats"),
        ({"stage_repeats": (4, 4, 0, 4, 4, 1)}, "stage_repeats\\[2\\]"),
    ],
)
def test_config_errors(config, message):
    with pytest.raises(ValueError, match=message):
        create_space("mbconv", **config)


def test_costs_grow_with_width_and_ops():
    arch = tuple(np.random.default_rng(5).integers(0, 7, 21))
    narrow = create_space("mbconv", width_mult=1.0, resolution=64, num_classes=10).costs(arch)
    wide = create_space("mbconv", width_mult=2.0, resolution=64, num_classes=10).costs(arch)
    for key in ("flops", "params", "mem_access", "intensity"):
        assert wide[key] > narrow[key] > 0, key
    space = create_space("mbconv", resolution=64)
    assert (
        space.costs((SKIP,) * 21)["flops"] < space.costs((0,) * 21)["flops"] < space.costs((5,) * 21)["flops"]
    )


def test_stem_cost_by_hand():
    # all-skip network at width 1: hand-count the stem conv + fixed block + first skip projection
    space = create_space("mbconv", resolution=32, stage_repeats=(1, 1, 1, 1, 1, 1))
    costs = space.costs((SKIP,) * 6)
    stem = 16 * 16 * 3 * 40 * 9
    fixed = 16 * 16 * 40 * 9 + 16 * 16 * 40 * 24
    projections = (
        8 * 8 * 24 * 32 + 4 * 4 * 32 * 56 + 2 * 2 * 56 * 112 + 2 * 2 * 112 * 128 + 128 * 256 + 256 * 432
    )
    head = 432 * 1728 + 1728 * 1000
    assert costs["flops"] == stem + fixed + projections + head
