"""Exact re-parameterisation (spaces/reparam.py): the pure functions against running the layers, and every
grafted block type merged against its grafted form in fp32, BN in eval mode with non-trivial statistics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spaces.mobilenetv2_net import GraftedInvertedResidual
from spaces.reparam import (
    ChannelAffine,
    GraftedBlock,
    compose,
    depthwise_to_dense,
    fold_affine,
    fold_bn,
    group_to_dense,
    identity_kernel,
    merge_block,
    merge_network,
    pad_kernel,
    randomise_linear_layers,
    zero_response,
)
from spaces.resnet50_net import GraftedBottleneck

TOL = 1e-5  # relative: max abs difference over max abs output


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max())


def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters, BN in eval mode: the merge must not rely on identities."""
    return randomise_linear_layers(module, seed)


def test_fold_bn_matches_bn_in_eval_mode():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(4, 6, 3, padding=1, bias=True), randomise(nn.BatchNorm2d(6))
    x = torch.randn(2, 4, 7, 7)
    w, b = fold_bn(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
    with torch.no_grad():
        assert rel_err(bn(conv(x)), F.conv2d(x, w, b, padding=1)) < TOL


def test_fold_affine_and_identity_kernel():
    torch.manual_seed(1)
    conv, aff = nn.Conv2d(3, 5, 1), randomise(ChannelAffine(5))
    x = torch.randn(1, 3, 4, 4)
    w, b = fold_affine(conv.weight, conv.bias, aff.weight, aff.bias)
    with torch.no_grad():
        assert rel_err(aff(conv(x)), F.conv2d(x, w, b)) < TOL
    assert torch.equal(F.conv2d(x.double(), identity_kernel(3, 3), padding=1), x.double())


def test_depthwise_and_grouped_to_dense():
    torch.manual_seed(2)
    x = torch.randn(1, 6, 5, 5)
    dw = nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False)
    grouped = nn.Conv2d(6, 4, 3, padding=1, groups=2, bias=False)
    with torch.no_grad():
        assert rel_err(dw(x), F.conv2d(x, depthwise_to_dense(dw.weight), padding=1)) < TOL
        assert rel_err(grouped(x), F.conv2d(x, group_to_dense(grouped.weight, 2), padding=1)) < TOL
    assert depthwise_to_dense(dw.weight)[0, 1].abs().sum() == 0


@pytest.mark.parametrize(("k1", "k2"), [(1, 3), (3, 1), (3, 3), (1, 1)])
def test_compose_equals_running_both_convs_in_the_interior(k1, k2):
    torch.manual_seed(3)
    c1, c2 = nn.Conv2d(3, 5, k1, padding=k1 // 2).double(), nn.Conv2d(5, 4, k2, padding=k2 // 2).double()
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    w, b = compose(c1.weight, c1.bias, c2.weight, c2.bias)
    assert w.shape == (4, 3, k1 + k2 - 1, k1 + k2 - 1)
    with torch.no_grad():
        ref, merged = c2(c1(x)), F.conv2d(x, w, b, padding=(k1 + k2 - 1) // 2)
    m = (k1 // 2 > 0 and k2 // 2 > 0) or (k1 == 1 and k2 > 1)  # where the bias of conv1 meets conv2's padding
    inner = (slice(None), slice(None), slice(m, 9 - m), slice(m, 9 - m))
    assert rel_err(ref[inner], merged[inner]) < 1e-12


def test_pad_kernel_centres():
    w = torch.arange(4.0).reshape(2, 2, 1, 1)
    padded = pad_kernel(w, 3)
    assert padded.shape == (2, 2, 3, 3) and torch.equal(padded[:, :, 1, 1], w[:, :, 0, 0])
    assert padded.abs().sum() == w.abs().sum()
    with pytest.raises(ValueError, match="cannot centre"):
        pad_kernel(torch.zeros(1, 1, 3, 3), 1)


# (c_in, c_out, stride, t): residual, no residual (channel change), stride 2, the t = 1 block
MBV2_BLOCKS = {"s1_residual": (16, 16, 1, 6), "s1_no_residual": (16, 24, 1, 6), "s2": (16, 24, 2, 6),
               "t1": (16, 8, 1, 1)}


@pytest.mark.parametrize("kind", sorted(MBV2_BLOCKS))
@pytest.mark.parametrize("size", [9, 8])
def test_mobilenetv2_block_merges_exactly(kind, size):
    torch.manual_seed(4)
    block = randomise(GraftedInvertedResidual(*MBV2_BLOCKS[kind]), seed=size)
    merged = merge_block(block)
    conv = merged[0]
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.groups == 1
    assert isinstance(merged[1], nn.ReLU6)
    x = torch.randn(2, MBV2_BLOCKS[kind][0], size, size)
    with torch.no_grad():
        ref, out = block(x), merged(x)
    assert ref.shape == out.shape and rel_err(ref, out) < TOL


# (c_in, width, c_out, stride): identity shortcut, strided projection, layer1's stride-1 projection
BOTTLENECKS = {"identity": (32, 8, 32, 1), "projection_s2": (32, 16, 64, 2), "projection_s1": (16, 16, 64, 1)}


@pytest.mark.parametrize("kind", sorted(BOTTLENECKS))
@pytest.mark.parametrize("size", [9, 8])
def test_resnet_bottleneck_merges_exactly(kind, size):
    torch.manual_seed(9)
    block = randomise(GraftedBottleneck(*BOTTLENECKS[kind]), seed=size)
    merged = merge_block(block)
    assert merged[0].kernel_size == (3, 3) and merged[0].stride == (BOTTLENECKS[kind][3],) * 2
    assert isinstance(merged[1], nn.ReLU)
    x = torch.randn(2, BOTTLENECKS[kind][0], size, size)
    with torch.no_grad():
        ref, out = block(x), merged(x)
    assert ref.shape == out.shape and rel_err(ref, out) < TOL


ALL_BLOCKS = {**{f"mbv2_{k}": (GraftedInvertedResidual, v) for k, v in MBV2_BLOCKS.items()},
              **{f"resnet_{k}": (GraftedBottleneck, v) for k, v in BOTTLENECKS.items()}}


@pytest.mark.parametrize("kind", ["mbv2_s1_residual", "mbv2_s2", "resnet_identity", "resnet_projection_s2"])
def test_without_bias_pad_only_the_border_differs(kind):
    """The plain block (zero padding) merges exactly in the interior only: the padding fix matters."""
    torch.manual_seed(5)
    cls, args = ALL_BLOCKS[kind]
    block = randomise(cls(*args, bias_pad=False), seed=1)
    x = torch.randn(2, args[0], 9, 9)
    with torch.no_grad():
        ref, out = block(x), merge_block(block)(x)
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    assert rel_err(ref[inner], out[inner]) < TOL
    assert rel_err(ref, out) > 1e-2


def test_pro_variants_collapse_to_the_same_conv():
    torch.manual_seed(6)
    shapes = set()
    for width, extra in [(1, 0), (2, 0), (1, 2), (3, 1)]:
        for kind, (cls, args) in ALL_BLOCKS.items():
            block = randomise(cls(*args, pro_width=width, pro_extra=extra), seed=width + extra)
            merged = merge_block(block)
            x = torch.randn(2, args[0], 9, 9)
            with torch.no_grad():
                assert rel_err(block(x), merged(x)) < TOL, (kind, width, extra)
            shapes.add((kind, tuple(merged[0].weight.shape), merged[0].stride))
    assert len(shapes) == len(ALL_BLOCKS)  # per block type, one deployed shape whatever the training form


def test_pad_value_is_the_prefix_at_zero_from_running_statistics_and_trains():
    """The pad is what the linear prefix gives at a zero input in eval mode, in train mode too (DBB), and
    gradients reach the layers through it."""
    torch.manual_seed(7)
    block = randomise(GraftedInvertedResidual(16, 16, 1, 6), seed=3)
    prefix = block.linear_layers()[:3]  # expand conv, BN, affine: what the depthwise reads
    with torch.no_grad():
        at_zero = nn.Sequential(*prefix)(torch.zeros(1, 16, 3, 3))[0, :, 1, 1]
        assert torch.allclose(zero_response(prefix, 16), at_zero, atol=1e-6)
        block.train()
        assert torch.allclose(zero_response(prefix, 16), at_zero, atol=1e-6)
    x = torch.randn(1, 16, 6, 6)
    block.conv[0][2].bias.grad = None
    block(x)[:, :, 0, 0].sum().backward()  # a corner reads the pad
    assert block.conv[0][2].bias.grad is not None and block.conv[0][2].bias.grad.abs().sum() > 0


def test_merge_network_replaces_grafted_blocks_only_and_leaves_the_input_alone():
    torch.manual_seed(8)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), GraftedInvertedResidual(16, 16, 1, 6), nn.ReLU(),
                        GraftedInvertedResidual(16, 24, 2, 6))
    randomise(net, seed=4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    merged = merge_network(net)
    assert not any(isinstance(m, GraftedBlock) for m in merged.modules())
    assert isinstance(merged[0], nn.Conv2d) and isinstance(merged[2], nn.ReLU) and not merged.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert isinstance(net[1], GraftedBlock)
    x = torch.randn(1, 3, 12, 12)
    with torch.no_grad():
        assert rel_err(net(x), merged(x)) < TOL


def test_merge_refuses_a_stride_before_a_spatial_conv():
    class Bad(GraftedBlock):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(4, 4, 1, stride=2, bias=False), nn.Conv2d(4, 4, 3, padding=1, bias=False)

        def linear_layers(self):
            return [self.a, self.b]

        def final_activation(self):
            return nn.ReLU()

    with pytest.raises(ValueError, match="stride"):
        merge_block(Bad())
