"""Domino's grafting spaces (spaces/grafting.py, mobilenetv2.py, resnet50.py): masks, stratified sampling,
torchvision-compatible networks, the merged deployed network (build, ONNX) against the grafted one."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from spaces import InvalidArchError, UserInputError, create_space, list_spaces
from spaces.base import Arch
from spaces.grafting import GraftingSpace
from spaces.reparam import ChannelAffine, GraftedBlock, merge_network
from spaces.reparam import randomise_linear_layers as randomise

TOL = 1e-5


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max abs difference over max abs output."""
    return float((a - b).abs().max() / a.abs().max())


def assert_whole_network_merge(grafted: nn.Module, merged: nn.Module, x: torch.Tensor) -> None:
    """Merged against grafted in fp64 (the grafted network in float64 merged, which is exact to ~1e-12) and
    in fp32, where the grafted network's own rounding over ~50 convs reaches ~1e-5 relative (its fp32 output
    against its fp64 one): the fp32 difference may be 1e-5 plus twice that rounding."""
    grafted = copy.deepcopy(grafted).eval()
    with torch.no_grad():
        out32, merged32 = grafted(x), merged.eval()(x)
        grafted64 = grafted.double()
        out64, merged64 = grafted64(x.double()), merge_network(grafted64)(x.double())
    assert rel_err(out64, merged64) < 1e-10
    assert rel_err(out32, merged32) < TOL + 2 * rel_err(out64, out32.double())


@pytest.fixture(scope="module")
def mbv2_small() -> GraftingSpace:
    return create_space("mobilenetv2-small")


def test_registered_with_one_bit_per_block():
    assert {"mobilenetv2", "mobilenetv2-small"} <= set(list_spaces())
    for name in ("mobilenetv2", "mobilenetv2-small"):
        space = create_space(name)
        assert space.ops == ("graft", "keep") and space.n_layers == 17 and space.size == 2**17
        assert create_space(name, **space.config).config == space.config


def test_arch_id_is_the_mask(mbv2_small):
    arch = mbv2_small.parse("01101011110111011")
    assert arch == (0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1) == mbv2_small.mask(arch)
    assert mbv2_small.arch_id(arch) == "01101011110111011"
    for bad, message in [("0110", "needs 17 bits"), ("0110101111011101a", "position 16 is 'a'"),
                         ("2" + "1" * 16, "position 0"), (17, "must be a str")]:
        with pytest.raises(InvalidArchError, match=message):
            mbv2_small.parse(bad)
    adj, feats = mbv2_small.to_graph(arch)
    np.testing.assert_array_equal(adj, np.eye(17, k=1))
    np.testing.assert_array_equal(feats.argmax(1), arch)


def test_sampling_is_stratified_distinct_and_prefix_stable(mbv2_small):
    archs = mbv2_small.sample_unique(300, np.random.default_rng(0))
    assert len(set(archs)) == 300 and archs == mbv2_small.sample_unique(300, np.random.default_rng(0))
    assert mbv2_small.sample_unique(120, np.random.default_rng(0)) == archs[:120]
    grafted = Counter(17 - sum(a) for a in archs)
    assert grafted[0] == 1 and grafted[17] == 1  # both extremes, each exactly once (one mask each)
    assert set(grafted) == set(range(18))  # every count covered; uniform bits would leave the tails empty
    draws = Counter(17 - sum(mbv2_small.sample(np.random.default_rng(s))) for s in range(900))
    assert min(draws.values()) > 20 and len(draws) == 18  # k is uniform in 0..17, about 50 each


class _TinyGrafting(GraftingSpace):
    """Five blocks (32 masks): exhausting it shows that sampling ends and refuses more than the space."""

    @staticmethod
    def block_plan(width_mult: float) -> list[tuple[int, ...]]:
        return [(8, 8, 1)] * 5

    def _make_grafted(self, arch: Arch, bias_pad: bool, pro_width: int, pro_extra: int) -> nn.Module:
        raise NotImplementedError


def test_sampling_exhausts_a_small_space_and_refuses_more():
    space = _TinyGrafting("tiny-grafting")
    everything = space.sample_unique(32, np.random.default_rng(1))
    assert len(set(everything)) == 32
    assert everything[:10] == space.sample_unique(10, np.random.default_rng(1))
    with pytest.raises(UserInputError, match="cannot draw 33 distinct"):
        space.sample_unique(33, np.random.default_rng(1))


def _torchvision_mobilenetv2_keys() -> list[str]:
    """The state-dict keys torchvision.models.mobilenet_v2() has, written from its structure."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]

    def cba(prefix: str) -> list[str]:  # Conv2dNormActivation: conv (no bias), BN
        return [f"{prefix}.0.weight"] + [f"{prefix}.1.{k}" for k in bn]

    keys = cba("features.0")
    for i in range(1, 18):
        p = f"features.{i}.conv"
        if i == 1:  # t = 1: depthwise, project conv, BN
            keys += cba(f"{p}.0") + [f"{p}.1.weight"] + [f"{p}.2.{k}" for k in bn]
        else:
            keys += cba(f"{p}.0") + cba(f"{p}.1") + [f"{p}.2.weight"] + [f"{p}.3.{k}" for k in bn]
    return keys + cba("features.18") + ["classifier.1.weight", "classifier.1.bias"]


def test_all_kept_is_torchvisions_mobilenetv2():
    space = create_space("mobilenetv2")
    net = space.build((1,) * 17)
    state = net.state_dict()
    assert list(state) == _torchvision_mobilenetv2_keys()
    assert sum(p.numel() for p in net.parameters()) == 3_504_872  # torchvision's mobilenet_v2 count
    assert state["features.2.conv.1.0.weight"].shape == (96, 1, 3, 3)  # stride on the depthwise
    assert net.features[2].conv[1][0].stride == (2, 2)
    assert state["classifier.1.weight"].shape == (1000, 1280)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 52


def test_all_grafted_merges_to_19_convs_and_the_fc(mbv2_small):
    net = mbv2_small.build((0,) * 17)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19 and sum(isinstance(m, nn.Linear) for m in net.modules()) == 1
    assert all(c.groups == 1 and c.kernel_size == (3, 3) for c in convs[1:18])
    assert isinstance(net.features[5][1], nn.ReLU6) and not net.training
    grafted = mbv2_small.build_grafted((0,) * 17)
    assert grafted.training and sum(isinstance(m, ChannelAffine) for m in grafted.modules()) == 33  # t=1: one
    assert sum(isinstance(m, GraftedBlock) for m in grafted.modules()) == 17


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merged_network_equals_the_grafted_one(mbv2_small, seed):
    """A whole network: 50 convs deep, so fp32 rounding alone moves the grafted network's own output by
    ~1e-5 relative (measured against itself in fp64). The merge is checked in fp64, where it is exact up to
    its weights' fp32 storage (~1e-6), and in fp32, where it may differ by no more than 1e-5 plus twice
    that rounding."""
    arch = mbv2_small.sample(np.random.default_rng(seed))
    grafted = randomise(mbv2_small.build_grafted(arch), seed=seed)
    merged = mbv2_small.merge(grafted)
    assert not any(isinstance(m, GraftedBlock) for m in merged.modules())
    x = torch.randn(2, 3, 40, 40, generator=torch.Generator().manual_seed(seed))
    assert_whole_network_merge(grafted, merged, x)


def test_build_is_the_seeded_merge_and_trains_at_32px(mbv2_small):
    arch = mbv2_small.parse("01101011110111011")
    built, grafted = mbv2_small.build(arch), mbv2_small.build_grafted(arch)
    x = torch.randn(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert rel_err(grafted.eval()(x), built(x)) < TOL
    grafted.train()
    out = grafted(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    assert out.shape == (2, 10)
    out.sum().backward()
    with pytest.raises(UserInputError, match="pro_width"):
        mbv2_small.build_grafted(arch, pro_width=0)


def test_pro_network_merges_to_the_same_deployed_shapes(mbv2_small):
    arch = mbv2_small.parse("00110011001100110")
    plain = mbv2_small.build(arch)
    pro = randomise(mbv2_small.build_grafted(arch, pro_width=2, pro_extra=1), seed=3)
    merged = mbv2_small.merge(pro)
    shapes = [(k, v.shape) for k, v in merged.state_dict().items()]
    assert shapes == [(k, v.shape) for k, v in plain.state_dict().items()]
    assert_whole_network_merge(pro, merged, torch.randn(1, 3, 40, 40, generator=torch.Generator().manual_seed(0)))


def test_onnx_export_is_the_merged_network(mbv2_small, tmp_path: Path):
    import onnx
    import onnxruntime as ort

    from spaces.export import export_onnx, read_onnx_metadata

    space = create_space("mobilenetv2-small", resolution=64)
    arch = space.parse("00000000011111111")
    model = export_onnx(space, arch, tmp_path)
    assert read_onnx_metadata(model.path)["edgeprof.arch_id"] == "00000000011111111"
    graph = onnx.load(str(model.path)).graph
    # stem, 9 merged blocks, 8 kept ones (3 convs each), head
    assert sum(node.op_type == "Conv" for node in graph.node) == 1 + 9 + 3 * 8 + 1
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = space.build(arch)(torch.from_numpy(x)).numpy()
    assert np.abs(session.run(None, {"input": x})[0] - ref).max() < 1e-4 * np.abs(ref).max()
    labels = Counter(space.layer_label(arch, n.name) for n in graph.node if n.op_type == "Conv")
    assert labels["stem"] == 1 and labels["B00:graft"] == 1 and labels["B16:keep"] == 3 and labels["head"] == 1


def test_layer_labels(mbv2_small):
    arch = mbv2_small.parse("0" * 8 + "1" * 9)
    assert mbv2_small.layer_label(arch, "/features/features.0/features.0.0/Conv") == "stem"
    assert mbv2_small.layer_label(arch, "/features/features.3/features.3.0/Conv") == "B02:graft"
    assert mbv2_small.layer_label(arch, "/features/features.12/conv/conv.0/conv.0.0/Conv") == "B11:keep"
    assert mbv2_small.layer_label(arch, "features.17.conv.2") == "B16:keep"
    assert mbv2_small.layer_label(arch, "/features/features.18/features.18.0/Conv + /x/Clip") == "head"
    assert mbv2_small.layer_label(arch, "/classifier/classifier.1/Gemm") == "classifier"


def test_costs_and_widened(mbv2_small):
    space = create_space("mobilenetv2-small", resolution=64)
    kept, grafted = space.costs((1,) * 17), space.costs((0,) * 17)
    assert all(kept[k] > 0 and grafted[k] > 0 for k in kept)
    assert grafted["mem_access"] < kept["mem_access"]  # the 6x-expanded intermediates are gone
    wide = space.widened(2.0)
    assert wide.name == space.name and create_space(wide.name, **wide.config).config == wide.config
    assert wide.costs((1,) * 17)["flops"] > 2 * kept["flops"]
    assert space.widened(1.0).config == space.config


def _torchvision_resnet50_keys() -> list[str]:
    """The state-dict keys torchvision.models.resnet50() has, written from its structure."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["conv1.weight"] + [f"bn1.{k}" for k in bn]
    for stage, blocks in enumerate((3, 4, 6, 3), 1):
        for i in range(blocks):
            p = f"layer{stage}.{i}"
            for j in (1, 2, 3):
                keys += [f"{p}.conv{j}.weight"] + [f"{p}.bn{j}.{k}" for k in bn]
            if i == 0:
                keys += [f"{p}.downsample.0.weight"] + [f"{p}.downsample.1.{k}" for k in bn]
    return keys + ["fc.weight", "fc.bias"]


def test_resnet50_all_kept_is_torchvisions():
    space = create_space("resnet50")
    assert space.n_layers == 16 and space.size == 2**16
    net = space.build((1,) * 16)
    state = net.state_dict()
    assert list(state) == _torchvision_resnet50_keys()
    assert sum(p.numel() for p in net.parameters()) == 25_557_032  # torchvision's resnet50 count
    assert net.layer2[0].conv2.stride == (2, 2) and net.layer2[0].conv1.stride == (1, 1)  # v1.5
    assert net.layer1[0].downsample[0].stride == (1, 1) and net.layer3[0].downsample[0].stride == (2, 2)
    assert state["fc.weight"].shape == (1000, 2048)


@pytest.fixture(scope="module")
def resnet_small() -> GraftingSpace:
    return create_space("resnet50-small")


def test_resnet_merges_every_grafted_bottleneck(resnet_small):
    grafted_net = resnet_small.build((0,) * 16)
    convs = [m for m in grafted_net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 17 and all(c.kernel_size == (3, 3) for c in convs[1:])
    assert len([m for m in resnet_small.build((1,) * 16).modules() if isinstance(m, nn.Conv2d)]) == 53
    grafted = resnet_small.build_grafted((0,) * 16)
    assert sum(isinstance(m, ChannelAffine) for m in grafted.modules()) == 32


@pytest.mark.parametrize("seed", [0, 1])
def test_resnet_merged_network_equals_the_grafted_one(resnet_small, seed):
    arch = resnet_small.sample(np.random.default_rng(seed))
    grafted = randomise(resnet_small.build_grafted(arch), seed=seed)
    x = torch.randn(2, 3, 40, 40, generator=torch.Generator().manual_seed(seed))
    assert_whole_network_merge(grafted, resnet_small.merge(grafted), x)


def test_resnet_pro_network_merges_to_the_same_deployed_shapes(resnet_small):
    arch = resnet_small.parse("0101010101010101")
    pro = randomise(resnet_small.build_grafted(arch, pro_width=2, pro_extra=1), seed=5)
    merged = resnet_small.merge(pro)
    plain = resnet_small.build(arch)
    assert [(k, v.shape) for k, v in merged.state_dict().items()] == [
        (k, v.shape) for k, v in plain.state_dict().items()]
    assert_whole_network_merge(pro, merged, torch.randn(1, 3, 40, 40, generator=torch.Generator().manual_seed(0)))


def test_resnet_layer_labels_and_export(resnet_small, tmp_path: Path):
    import onnx

    from spaces.export import export_onnx

    space = create_space("resnet50-small", resolution=32)
    arch = space.parse("1110000000000111")
    graph = onnx.load(str(export_onnx(space, arch, tmp_path).path)).graph
    labels = Counter(space.layer_label(arch, n.name) for n in graph.node if n.op_type == "Conv")
    assert labels["stem"] == 1 and labels["B00:keep"] == 4 and labels["B02:keep"] == 3
    assert labels["B03:graft"] == 1 and labels["B15:keep"] == 3 and len(labels) == 17
    assert space.layer_label(arch, "/fc/Gemm") == "classifier"
    assert space.layer_label(arch, "/maxpool/MaxPool") == "stem"
    assert space.layer_label(arch, "layer3.5.conv2") == "B12:graft"
    wide = space.widened(2.0)
    assert wide.costs(arch)["flops"] > 2 * space.costs(arch)["flops"]
