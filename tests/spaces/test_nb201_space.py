"""NAS-Bench-201 space: benchmark ids and indices, encodings, builder and costs."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from spaces import InvalidArchError, create_space
from spaces.nb201 import OPS, live_edges

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
STR_ARCH2IDX = SHARED / "data" / "HELP" / "data" / "nasbench201" / "str_arch2idx.pt"

ALL_CONV3 = (3,) * 6
ALL_SKIP = (1,) * 6


@pytest.fixture(scope="module")
def space():
    return create_space("nb201")


def _load_torch_pickle(path: Path) -> dict[str, int]:
    """A plain-python torch.save file (no tensors) read without torch: the pickle inside the zip."""
    with zipfile.ZipFile(path) as archive:
        member = next(name for name in archive.namelist() if name.endswith("data.pkl"))
        return pickle.loads(archive.read(member))


def test_index_matches_benchmark_file(space):
    if not STR_ARCH2IDX.exists():
        pytest.skip(f"HELP NB201 index file not found at {STR_ARCH2IDX}")
    table = _load_torch_pickle(STR_ARCH2IDX)
    assert len(table) == space.size == 15625
    for arch_id, index in table.items():
        arch = space.parse(arch_id)
        assert space.index(arch) == index
        assert space.from_index(index) == arch
        assert space.arch_id(arch) == arch_id


def test_index_round_trip_and_errors(space):
    assert sorted(space.index(space.from_index(i)) for i in range(0, 15625, 97)) == list(range(0, 15625, 97))
    for bad in (-1, 15625, 1.0, "3", True):
        with pytest.raises(ValueError, match="index"):
            space.from_index(bad)


def test_arch_id_format(space):
    assert space.arch_id((0, 1, 2, 3, 4, 0)) == (
        "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
    )
    assert space.ops == OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def test_parse_round_trip(space):
    for arch in space.sample_unique(300, np.random.default_rng(3)):
        assert space.parse(space.arch_id(arch)) == arch


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("|none~0|+|none~0|none~1|", "3 '\\+'-separated nodes"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 inputs"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 .* must start and end"),
        ("|none~0|+|none~0|none~2|+|none~0|none~1|none~2|", "input 1 of node 2 must read 'op~1'"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv'"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "must read 'op~0'"),
        (42, "must be a str"),
    ],
)
def test_parse_errors(space, bad, message):
    with pytest.raises(InvalidArchError, match=message):
        space.parse(bad)


def test_graph_encoding(space):
    arch = (0, 1, 2, 3, 4, 3)
    adj, feats = space.to_graph(arch)
    expected = np.zeros((8, 8), dtype=np.float32)
    # input -> edges leaving node 0: (1<-0), (2<-0), (3<-0)
    expected[0, [1, 2, 4]] = 1
    # (1<-0) -> edges leaving node 1; (2<-0), (2<-1) -> edge (3<-2); edges into node 3 -> output
    expected[1, [3, 5]] = 1
    expected[2, 6] = expected[3, 6] = 1
    expected[[4, 5, 6], 7] = 1
    assert adj.dtype == feats.dtype == np.float32
    np.testing.assert_array_equal(adj, expected)
    assert feats.shape == (8, 7)
    np.testing.assert_array_equal(feats.argmax(1), [0, 2, 3, 4, 5, 6, 5, 1])
    np.testing.assert_array_equal(feats.sum(1), np.ones(8))


def test_onehot(space):
    onehot = space.to_onehot((0, 1, 2, 3, 4, 0))
    assert onehot.shape == (30,) and onehot.dtype == np.float32
    np.testing.assert_array_equal(onehot.reshape(6, 5).argmax(1), [0, 1, 2, 3, 4, 0])


def test_live_edges_drop_dead_branches():
    assert live_edges(ALL_CONV3) == (0, 1, 2, 3, 4, 5)
    assert live_edges((0,) * 6) == ()
    # node 2 feeds nothing (edge 3<-2 is none), so its in-edges are dead; node 1 is alive via (3<-1)
    assert live_edges((4, 3, 2, 1, 1, 0)) == (0, 3, 4)


@pytest.mark.parametrize("arch", [ALL_CONV3, ALL_SKIP, (0,) * 6, (3, 0, 0, 0, 0, 1), (4, 3, 2, 1, 1, 0)])
def test_build_forward(space, arch):
    model = space.build(arch)
    assert not model.training
    with torch.no_grad():
        out = model(torch.randn(space.input_shape(2)))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_config_changes_network():
    space = create_space("nb201", C=8, N=1, num_classes=100, resolution=16)
    assert space.input_shape(3) == (3, 3, 16, 16)
    with torch.no_grad():
        assert space.build(ALL_CONV3)(torch.zeros(space.input_shape(3))).shape == (3, 100)
    for bad in ({"resolution": 30}, {"C": 0}, {"N": 1.5}, {"num_classes": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            create_space("nb201", **bad)


def test_costs_match_published_range(space):
    # NAS-Bench-201 reports 7.78 to 220.11 MFLOPs and at most 1.53 M params on CIFAR-10
    full, empty = space.costs(ALL_CONV3), space.costs((0,) * 6)
    assert full["flops"] == pytest.approx(220.1e6, rel=1e-3)
    assert full["params"] == pytest.approx(1.53e6, rel=1e-2)
    assert empty["flops"] == pytest.approx(7.78e6, rel=1e-3)
    skip = space.costs(ALL_SKIP)
    assert skip["flops"] < full["flops"] and skip["params"] < full["params"]
    assert skip["mem_access"] < full["mem_access"]
    for costs in (full, empty, skip):
        assert costs["intensity"] == pytest.approx(costs["flops"] / costs["mem_access"])
