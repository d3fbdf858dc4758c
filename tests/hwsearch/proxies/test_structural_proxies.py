"""The structural proxies (tpc, tpc-table8, params, flops): they score real networks of NB201 and MBConv, their
per-(layer, op) fast path equals scoring each build, TPC follows the paper's worked examples and its two
counting conventions differ by exactly the shortcut convs and the FC, and params/flops reproduce NASLib's
stored per-cell values where the networks are the same."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from proxy_helpers import naslib_cells, needs_naslib
from torch import nn

from hwsearch.proxies import ProxyFailure, create_proxy, make_batch, score_arch, score_archs
from hwsearch.proxies._tables import is_shortcut, layer_table
from hwsearch.proxies.tpc import conv_depth, model_conv_depth
from hwsearch.random_search import _nb201_effective, param_counts
from spaces import create_space
from spaces.nb201 import OPS, live_edges

NAMES = ("tpc", "tpc-table8", "params", "flops")
TINY_MBCONV = {"width_mult": 0.25, "resolution": 32, "num_classes": 10, "stage_repeats": (1, 2, 1, 1, 1, 1)}


def _meta(space, arch) -> nn.Module:
    with torch.device("meta"):
        return space._make_module(tuple(arch))


@pytest.fixture(scope="module")
def mb_space():
    return create_space("mbconv", **TINY_MBCONV)


@pytest.mark.parametrize("name", NAMES)
def test_every_structural_proxy_scores_an_nb201_cell_and_an_mbconv_network(name, nb_space, mb_space):
    proxy = create_proxy(name)
    assert proxy.data_free and proxy.higher_is_better
    for space in (nb_space, mb_space):
        arch = space.sample(np.random.default_rng(1))
        batch = make_batch("gaussian", space.input_shape(1), 2, seed=0)  # flops reads its image shape only
        value = score_arch(proxy, space, arch, batch)
        assert math.isfinite(value) and value > 0
        assert proxy.score(_meta(space, arch), batch) == pytest.approx(value, rel=1e-12)  # shapes only


def test_flops_without_an_input_shape_says_what_it_needs(nb_space):
    with pytest.raises(ProxyFailure, match="needs an input shape"):
        create_proxy("flops").score(_meta(nb_space, (3,) * 6), None)
    assert create_proxy("flops", input_shape=[3, 16, 16]).score(_meta(nb_space, (3,) * 6)) > 0


@pytest.mark.parametrize("config", [{"C": 8, "N": 2, "num_classes": 100}, {"C": 4, "N": 1, "resolution": 16}])
def test_fast_scores_equal_scoring_each_nb201_build(config):
    space = create_space("nb201", **config)
    archs = space.sample_unique(16, np.random.default_rng(7)) + [(0, 0, 0, 0, 0, 0), (3, 0, 0, 0, 0, 0)]
    _check_fast_equals_built(space, archs)


def test_fast_scores_equal_scoring_each_mbconv_build(mb_space):
    archs = mb_space.sample_unique(8, np.random.default_rng(3)) + [(6,) * mb_space.n_layers]
    _check_fast_equals_built(mb_space, archs)


def _check_fast_equals_built(space, archs) -> None:
    shape = list(space.input_shape(1)[1:])
    proxies = [create_proxy("tpc", effective=False), create_proxy("tpc-table8", effective=False),
               create_proxy("params", effective=False), create_proxy("flops", input_shape=shape, effective=False),
               create_proxy("flops", counting="tensorwatch", input_shape=shape, effective=False)]
    for proxy in proxies:
        fast = proxy.fast_scores(space, archs)
        built = [proxy.score(_meta(space, a)) for a in archs]
        np.testing.assert_allclose(fast, built, rtol=1e-12, atol=1e-9, err_msg=proxy.name)
        np.testing.assert_allclose(score_archs(proxy, space, archs), fast)
    depth = conv_depth(space, archs, effective=False)
    assert depth.dtype == np.int64 and list(depth) == [model_conv_depth(_meta(space, a)) for a in archs]
    # the effective counts leave out built edges that the input never reaches; elsewhere equal
    reached = [set(_nb201_effective(a)) == set(live_edges(a)) if space.name == "nb201" else True for a in archs]
    for name in ("params", "tpc", "tpc-table8", "flops"):
        full = create_proxy(name, effective=False).fast_scores(space, archs)
        effective = create_proxy(name).fast_scores(space, archs)
        assert np.all(effective <= full + 1e-9), name  # -inf <= anything
        cut = np.array([not _nb201_effective(a) if space.name == "nb201" else False for a in archs])
        if name.startswith("tpc"):  # no path from the input at all: zero paths, ln 0
            assert np.all(np.isneginf(effective[cut])), name
        ok = np.asarray(reached) & ~cut
        np.testing.assert_allclose(effective[ok], full[ok], rtol=1e-12, err_msg=name)
    assert np.all(conv_depth(space, archs) <= depth)
    np.testing.assert_array_equal(create_proxy("params").fast_scores(space, archs), param_counts(space, archs))
    if space.name == "nb201":  # edge 0->1 none: node 1 is never fed, yet its conv to the output is built
        unfed = [(0, 1, 0, 1, 3, 0)]
        assert create_proxy("params").fast_scores(space, unfed)[0] < full_of(space, unfed)


def full_of(space, archs) -> float:
    return create_proxy("params", effective=False).fast_scores(space, archs)[0]


def test_tpc_of_two_3x3_convs_from_one_pixel_is_ln_81():
    """Fig. 1: one input node, two 3x3 layers of one channel: 9 x 9 = 81 paths."""
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Conv2d(1, 1, 3), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(1, 1))
    assert create_proxy("tpc").score(net, None) == pytest.approx(math.log(81))
    assert create_proxy("tpc-table8").score(net, None) == pytest.approx(math.log(81))  # FC of 1 out: ln 1
    wide = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 8, 3, stride=2))
    assert create_proxy("tpc").score(wide, None) == pytest.approx(math.log(4 * 9) + math.log(8 * 9 / 4))


def test_a_separable_conv_scores_as_its_dense_conv():
    """§3.3: depthwise k x k (groups = C: out-degree k^2) + pointwise 1x1 (C_out) = dense k x k (C_out k^2)."""
    tpc = create_proxy("tpc")
    for c, c_out, k in ((8, 16, 3), (32, 24, 5)):
        dense = nn.Conv2d(c, c_out, k, padding=k // 2)
        separable = nn.Sequential(nn.Conv2d(c, c, k, padding=k // 2, groups=c), nn.Conv2d(c, c_out, 1))
        assert tpc.score(separable, None) == pytest.approx(tpc.score(dense, None))


def _extra_terms(model: nn.Module) -> float:
    """Σ ln(out-degree) of the layers Table 8 adds, computed here from the modules: shortcut convs, Linears."""
    total = 0.0
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            total += math.log(m.out_features)
        elif isinstance(m, nn.Conv2d) and any(p in ("shortcut", "downsample") for p in name.split(".")):
            total += math.log(m.out_channels * m.kernel_size[0] ** 2 / (m.stride[0] ** 2 * m.groups))
    return total


def test_the_two_conventions_differ_by_the_shortcut_convs_and_the_fc():
    nb = create_space("nb201", num_classes=100)
    net = _meta(nb, (3,) * 6)
    gap = create_proxy("tpc-table8").score(net) - create_proxy("tpc").score(net)
    # NB201: two reductions, each a 1x1 projection after a 2x2 avg pool (stride 1): 2C and 4C; FC of 100
    assert gap == pytest.approx(math.log(32) + math.log(64) + math.log(100))
    resnet = create_space("resnet50")
    net = _meta(resnet, (1,) * resnet.n_layers)
    gap = create_proxy("tpc-table8").score(net) - create_proxy("tpc").score(net)
    assert gap == pytest.approx(_extra_terms(net))
    # torchvision's four downsample projections (256 s1, 512/1024/2048 s2) and the 1000-way FC
    assert gap == pytest.approx(math.log(256) + math.log(128) + math.log(256) + math.log(512) + math.log(1000))
    assert create_proxy("tpc").describe()["convention"] == "algorithm1"
    assert create_proxy("tpc-table8").describe()["convention"] == "table8"


def test_the_shortcut_rule_on_every_space():
    """Only NB201's `shortcut` and torchvision's `downsample` are residual-link convs; MBConv/FBNet's `skip` in a
    shape-changing layer is the layer itself (a 1x1 conv on the main path), and MobileNetV2 has no projection."""
    expect = {"nb201": 2, "resnet50": 4, "mobilenetv2": 0, "mbconv-small": 0, "fbnet": 0}
    for name, n in expect.items():
        space = create_space(name)
        skip = space.ops.index("skip") if "skip" in space.ops else None
        arch = (skip,) * space.n_layers if skip is not None else space.sample(np.random.default_rng(0))
        net = _meta(space, arch)
        shortcuts = [k for k, m in net.named_modules() if isinstance(m, nn.Conv2d) and is_shortcut(k)]
        assert len(shortcuts) == n, name
    mb = create_space("mbconv", **TINY_MBCONV)
    all_skip = _meta(mb, (6,) * mb.n_layers)  # every shape-changing layer is a 1x1 conv: counted by both
    assert model_conv_depth(all_skip) == 1 + 2 + 5 + 1  # stem, fixed MBConv e1 (dw + project), 5 skips, head
    gap = create_proxy("tpc-table8").score(all_skip) - create_proxy("tpc").score(all_skip)
    assert gap == pytest.approx(math.log(10))  # the FC only


def test_conv_depth_counts_main_path_convs(nb_space):
    n = nb_space.N
    archs = [(3,) * 6, (1,) * 6, (0, 0, 0, 2, 0, 0)]
    # stem + cells (one conv per conv edge) + two reductions of two convs; shortcuts are not counted
    assert list(conv_depth(nb_space, archs)) == [1 + 3 * n * 6 + 4, 1 + 4, 1 + 3 * n + 4]


def _naslib_cells() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All cifar100 cells as our archs, and NASLib's params and flops (both /1e6, rounded to 6 decimals)."""
    cells = list(naslib_cells().values())
    return (np.array([arch for arch, _ in cells]), np.array([c["params"]["score"] for _, c in cells]),
            np.array([c["flops"]["score"] for _, c in cells]))


@needs_naslib
def test_params_and_flops_match_naslib_cell_by_cell():
    """NASLib's `params` counts every parameter and its `flops` is tensorwatch's count, both over a network that
    builds every non-`none` edge, BN affine, CIFAR-100 head, batch 1, /1e6. Our NB201 leaves out edges that
    cannot reach the output, so the cells without such an edge match exactly, and the others match once every
    non-`none` edge's table increment is added back."""
    space = create_space("nb201", num_classes=100)
    archs, ref_params, ref_flops = _naslib_cells()
    same = np.array([set(live_edges(tuple(a))) == {e for e in range(6) if a[e] != OPS.index("none")}
                     for a in archs])
    assert len(archs) == 725 and same.sum() == 564  # 161 cells have an edge that cannot reach the output
    params = create_proxy("params", effective=False).fast_scores(space, archs) / 1e6
    flops = create_proxy("flops", counting="tensorwatch", effective=False).fast_scores(space, archs) / 1e6
    np.testing.assert_array_equal(np.round(params[same], 6), ref_params[same])
    np.testing.assert_array_equal(np.round(flops[same], 6), ref_flops[same])
    assert not np.all(np.round(flops[~same], 6) == ref_flops[~same])
    built_everything = archs != OPS.index("none")
    for kind, ref in (("params", ref_params), ("tensorwatch", ref_flops)):
        base, increments = layer_table(space, kind)
        full = base + np.where(built_everything, increments[np.arange(6), archs], 0).sum(axis=1)
        np.testing.assert_array_equal(np.round(full / 1e6, 6), ref)
    macs = create_proxy("flops", effective=False).fast_scores(space, archs) / 1e6
    assert np.all(macs[same] < ref_flops[same])  # MACs leave out BN, ReLU and pooling
