"""The SearchSpace contract (docs/contracts.md), checked on every registered space."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spaces import InvalidArchError, SearchSpace, create_space, list_spaces

# Spaces whose networks are cheap enough to build many times in a test.
BUILDABLE = ["nb201", "mbconv-small"]


@pytest.fixture(scope="module", params=list_spaces())
def space(request) -> SearchSpace:
    return create_space(request.param)


def test_identity(space):
    assert space.name in list_spaces()
    assert json.loads(json.dumps(space.config)) == space.config
    assert create_space(space.name, **space.config).config == space.config
    assert space.size == space.n_ops**space.n_layers
    shape = space.input_shape(4)
    assert len(shape) == 4 and shape[0] == 4
    assert shape[1] == 3 or space.name == "conv-probe"  # a probe layer's input channels are its arch's
    arch = space.sample(np.random.default_rng(0))
    assert space.input_shape_of(arch, 4)[0] == 4


def test_sample_is_seeded(space):
    a = [space.sample(np.random.default_rng(7)) for _ in range(2)]
    assert a[0] == a[1]
    assert all(type(op) is int and 0 <= op < space.n_ops for op in a[0]) and len(a[0]) == space.n_layers
    draws = {space.sample(np.random.default_rng(seed)) for seed in range(20)}
    assert len(draws) > 15


def test_sample_unique(space):
    n = min(200, space.size)  # conv-probe's default grid holds 64 layers
    archs = space.sample_unique(n, np.random.default_rng(11))
    assert len(archs) == len(set(archs)) == n
    assert archs == space.sample_unique(n, np.random.default_rng(11))
    assert archs != space.sample_unique(n, np.random.default_rng(12))
    assert all(space.validate(arch) == arch for arch in archs)
    assert space.sample_unique(0, np.random.default_rng(0)) == []
    with pytest.raises(ValueError, match="n must be"):
        space.sample_unique(-1, np.random.default_rng(0))


def test_sample_unique_exhausts_a_small_space():
    space = create_space("nb201")
    everything = space.sample_unique(space.size, np.random.default_rng(0))
    assert len(set(everything)) == space.size
    with pytest.raises(ValueError, match="cannot draw 15626 distinct archs"):
        space.sample_unique(space.size + 1, np.random.default_rng(0))


def test_encodings(space):
    arch = space.sample(np.random.default_rng(5))
    onehot = space.to_onehot(arch)
    assert onehot.dtype == np.float32 and onehot.shape == (space.n_layers * space.n_ops,)
    grid = onehot.reshape(space.n_layers, space.n_ops)
    np.testing.assert_array_equal(grid.sum(1), 1)
    np.testing.assert_array_equal(grid.argmax(1), arch)
    adj, feats = space.to_graph(arch)
    assert adj.dtype == feats.dtype == np.float32
    assert adj.shape[0] == adj.shape[1] == feats.shape[0]
    assert np.all(np.diag(adj) == 0) and set(np.unique(adj)) <= {0.0, 1.0}
    assert space.parse(space.arch_id(arch)) == arch


def test_validate_errors(space):
    good = [0] * space.n_layers
    assert space.validate(np.array(good)) == tuple(good)
    cases = [
        (good[:-1], f"{space.n_layers} entries"),
        ([*good[:-1], space.n_ops], "out of range"),
        ([-1, *good[1:]], "out of range"),
        ([0.0, *good[1:]], "must be an int"),
        ([True, *good[1:]], "must be an int"),
        ("0" * space.n_layers, "sequence of op indices"),
        (None, "sequence of op indices"),
    ]
    for bad, message in cases:
        with pytest.raises(InvalidArchError, match=message):
            space.validate(bad)
        with pytest.raises(ValueError, match=message):
            space.to_onehot(bad)


@pytest.mark.parametrize("name", BUILDABLE)
def test_build_is_deterministic_and_leaves_global_rng_alone(name):
    space = create_space(name)
    arch = space.sample(np.random.default_rng(9))
    state = torch.get_rng_state()
    first, second = space.build(arch), space.build(list(arch))
    assert torch.equal(state, torch.get_rng_state())
    assert not first.training
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = space.build(space.sample(np.random.default_rng(10)))
    conv_a = next(m.weight for m in first.modules() if isinstance(m, torch.nn.Conv2d))
    conv_o = next(m.weight for m in other.modules() if isinstance(m, torch.nn.Conv2d))
    assert not torch.equal(conv_a, conv_o)  # the seed follows the arch id


@pytest.mark.parametrize("name", BUILDABLE)
def test_costs_contract(name):
    space = create_space(name)
    costs = space.costs(space.sample(np.random.default_rng(1)))
    assert set(costs) == {"flops", "params", "mem_access", "intensity"}
    assert all(costs[key] > 0 for key in costs)
    assert costs["intensity"] == pytest.approx(costs["flops"] / costs["mem_access"])


@pytest.mark.parametrize("name", ["nb201", "mbconv-small"])
def test_sample_unique_is_prefix_stable(name: str) -> None:
    """Growing --n with the same seed extends the earlier draw, so stored measurements are reused."""
    space = create_space(name)
    small = space.sample_unique(5, np.random.default_rng(3))
    large = space.sample_unique(12, np.random.default_rng(3))
    assert large[:5] == small


def test_layer_labels_map_runtime_names_to_space_layers() -> None:
    """Per-layer profiles name nodes the runtime's way; the space maps them back to its own layers."""
    mb = create_space("mbconv-small")
    arch = tuple([3] * mb.n_layers)
    assert mb.layer_label(arch, "/0/0.0/Conv") == "stem"
    assert mb.layer_label(arch, "/1/conv/Conv") == "fixed"
    assert mb.layer_label(arch, "/5/5.0/Conv + /5/5.2/Clip") == "L03:k5e6"  # a TensorRT fused layer
    assert mb.layer_label(arch, "7.conv.0") == "L05:k5e6"  # a torch module path
    assert mb.layer_label(arch, f"/{2 + mb.n_layers}/Conv") == "head"
    assert mb.layer_label(arch, f"/{5 + mb.n_layers}/Gemm") == "classifier"
    nb = create_space("nb201")
    a = nb.from_index(0)
    assert nb.layer_label(a, "/stem/stem.0/Conv") == "stem"
    assert nb.layer_label(a, "/cells/cells.0/edges/Conv") == "cell0.0"
    assert nb.layer_label(a, "/cells/cells.5/conv_a/Conv") == "reduction1"
    assert nb.layer_label(a, "/cells/cells.6/x/Conv") == "cell1.0"
    assert nb.layer_label(a, "cells.11.conv") == "reduction2"
    assert nb.layer_label(a, "/cells/cells.16/Add") == "cell2.4"
    assert nb.layer_label(a, "/classifier/Gemm") == "classifier"
