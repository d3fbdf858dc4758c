"""Exact linear re-parameterisation of grafted blocks (thesis §5.3.4; recipe in the spec's §3.7).

A grafted block is a chain of linear layers (convs, batch norms in eval mode, per-channel affine "grafted
activations"), an optional shortcut (identity or a 1x1 projection) and one kept activation at the end. The
chain collapses into one conv: BN and affine fold into the conv before them, a depthwise conv becomes a
dense block-diagonal one, two convs compose into one of kernel k1 + k2 - 1, and the shortcut adds a centre
tap. The pure functions below work on tensors (PyTorch layout [out, in, k, k], cross-correlation); the
module part (`ChannelAffine`, `GraftedBlock`, `merge_block`, `merge_network`) applies them to networks.

Borders: a zero-padded k x k conv that reads a biased intermediate sees zeros where the merged conv sees
the bias, so `GraftedBlock` pads that intermediate with the value its linear prefix gives at a zero input
("BN-and-pad", as DBB/OREPA do; running statistics in train mode too), which makes the merge exact
everywhere. With `bias_pad=False` the block is the plain torchvision one and the merge is exact only in
the interior.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor


def fold_bn(weight: Tensor, bias: Tensor, mean: Tensor, var: Tensor, gamma: Tensor, beta: Tensor,
            eps: float) -> tuple[Tensor, Tensor]:
    """BN (eval) after a conv is a per-output-channel scale and shift, so it folds into the conv's weight and bias."""
    scale = gamma / torch.sqrt(var + eps)
    return weight * scale.reshape(-1, 1, 1, 1), beta + (bias - mean) * scale


def fold_affine(weight: Tensor, bias: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """A grafted activation y = a*x + b after a conv folds into it exactly like a BN."""
    return weight * a.reshape(-1, 1, 1, 1), a * bias + b


def group_to_dense(weight: Tensor, groups: int) -> Tensor:
    """A grouped conv's weight [O, I/g, k, k] as the equivalent dense [O, I, k, k] (zeros off the groups),
    so that it composes with a dense conv."""
    if groups == 1:
        return weight
    out, per_group = weight.shape[:2]
    dense = weight.new_zeros(out, per_group * groups, *weight.shape[2:])
    step = out // groups
    for g in range(groups):
        dense[g * step:(g + 1) * step, g * per_group:(g + 1) * per_group] = weight[g * step:(g + 1) * step]
    return dense


def depthwise_to_dense(weight: Tensor) -> Tensor:
    """A depthwise weight [C, 1, k, k] as the block-diagonal dense [C, C, k, k] (MobileNetV2's 3x3)."""
    return group_to_dense(weight, weight.shape[0])


def compose(w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, groups: int = 1) -> tuple[Tensor, Tensor]:
    """conv1 (w1 [J, I, k1, k1], b1) then conv2 (w2 [O, J/groups, k2, k2], b2), stride 1 and same padding, as
    one conv of kernel k1 + k2 - 1: the weight is the full 2-D convolution of the kernels summed over J, the
    bias conv2's response to the constant b1 plus b2 (exact in the interior; see the module note on borders).
    A grouped conv2 (a depthwise) composes as it is, without the dense block-diagonal weight's cost."""
    k1, k2 = w1.shape[-1], w2.shape[-1]
    if groups == 1 and k2 == 1:  # a matrix product (BLAS) is far faster than a float64 conv for ResNet's 1x1s
        weight = torch.einsum("oj,jikl->oikl", w2[:, :, 0, 0], w1)
    elif groups == 1 and k1 == 1:
        weight = torch.einsum("ojkl,ji->oikl", w2, w1[:, :, 0, 0])
    else:
        weight = F.conv2d(w1.permute(1, 0, 2, 3), w2.flip(2, 3), padding=k2 - 1, groups=groups).permute(1, 0, 2, 3)
    return weight.contiguous(), group_to_dense(w2.sum(dim=(2, 3), keepdim=True), groups)[:, :, 0, 0] @ b1 + b2


def identity_kernel(channels: int, kernel: int = 1, dtype: torch.dtype = torch.float64) -> Tensor:
    """The identity map as a k x k conv (a Dirac at the centre tap), so an identity shortcut adds to a kernel."""
    weight = torch.zeros(channels, channels, kernel, kernel, dtype=dtype)
    weight[torch.arange(channels), torch.arange(channels), kernel // 2, kernel // 2] = 1.0
    return weight


def pad_kernel(weight: Tensor, kernel: int) -> Tensor:
    """A smaller odd kernel zero-padded to k x k around its centre (a 1x1 projection shortcut added to a 3x3)."""
    size = weight.shape[-1]
    extra = (kernel - size) // 2
    if extra < 0 or size + 2 * extra != kernel:
        raise ValueError(f"pad_kernel: cannot centre a {size}x{size} kernel in {kernel}x{kernel}")
    return F.pad(weight, (extra, extra, extra, extra))


class ChannelAffine(nn.Module):
    """The grafted linear activation y = a_c * x + b_c (Linearity Grafting), a = 1 and b = 0 at start."""

    is_channel_affine = True  # spaces.weights.init_weights initialises layers marked so to the identity

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight.reshape(1, -1, 1, 1) + self.bias.reshape(1, -1, 1, 1)


def _bn_eval(layer: nn.modules.batchnorm._BatchNorm) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:
    """(mean, var, gamma, beta, eps) of a batch norm as eval mode uses it (no affine: gamma 1, beta 0)."""
    mean, var = layer.running_mean, layer.running_var
    if mean is None or var is None:
        raise ValueError("re-parameterisation needs batch norms that track running statistics")
    gamma = layer.weight if layer.weight is not None else torch.ones_like(mean)
    beta = layer.bias if layer.bias is not None else torch.zeros_like(mean)
    return mean, var, gamma, beta, layer.eps


def zero_response(layers: Sequence[nn.Module], channels: int) -> Tensor:
    """The per-channel value a pointwise linear prefix gives at a zero input (its folded bias, running
    statistics for BN): what the next zero-padded conv must see in its padding for the merge to be exact.
    Differentiable in the parameters, so training moves the pad with the layers."""
    value: Tensor | None = None
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            dense = group_to_dense(layer.weight, layer.groups).sum(dim=(2, 3))
            value = (dense @ value if value is not None else dense.new_zeros(dense.shape[0]))
            if layer.bias is not None:
                value = value + layer.bias
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
            mean, var, gamma, beta, eps = _bn_eval(layer)
            value = value if value is not None else mean.new_zeros(mean.shape[0])
            value = (value - mean) * gamma / torch.sqrt(var + eps) + beta
        elif getattr(layer, "is_channel_affine", False):
            value = layer.weight * (value if value is not None else 0.0) + layer.bias
        else:
            raise TypeError(f"not a linear layer of a grafted block: {type(layer).__name__}")
    return value if value is not None else torch.zeros(channels)


def run_linear(x: Tensor, layers: Sequence[nn.Module], bias_pad: bool) -> Tensor:
    """Run a chain of linear layers; with `bias_pad`, a padded conv's input border holds the prefix's
    zero response instead of zeros (the merged conv's view of the same border)."""
    for i, layer in enumerate(layers):
        pad = layer.padding if isinstance(layer, nn.Conv2d) else (0, 0)
        if bias_pad and i > 0 and isinstance(pad, tuple) and any(pad):
            value = zero_response(layers[:i], x.shape[1]).reshape(1, -1, 1, 1).to(x.dtype)
            ph, pw = pad
            border = F.pad(x.new_zeros(1, 1, *x.shape[2:]), (pw, pw, ph, ph), value=1.0)
            x = F.pad(x, (pw, pw, ph, ph)) + value * border
            x = F.conv2d(x, layer.weight, layer.bias, layer.stride, 0, layer.dilation, layer.groups)
        else:
            x = layer(x)
    return x


class GraftedBlock(nn.Module):
    """A block whose inner activations are grafted: linear layers, a shortcut, then one kept activation.

    Subclasses (spaces/mobilenetv2_net.py, spaces/resnet50_net.py) keep their torchvision attribute names
    and say which modules form the chain; this class runs it and `merge_block` collapses it.
    """

    bias_pad: bool = True

    def linear_layers(self) -> list[nn.Module]:
        """The main branch's Conv2d / BatchNorm2d / ChannelAffine layers, in order."""
        raise NotImplementedError

    def shortcut_layers(self) -> list[nn.Module] | None:
        """None: no shortcut; []: the identity; else the projection's layers (1x1 conv, BN)."""
        return None

    def final_activation(self) -> nn.Module:
        """The activation kept after the (residual) sum."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        y = run_linear(x, self.linear_layers(), self.bias_pad)
        shortcut = self.shortcut_layers()
        if shortcut is not None:
            y = y + run_linear(x, shortcut, False)
        return self.final_activation()(y)


def _check_conv(conv: nn.Conv2d) -> int:
    k = conv.kernel_size[0]
    same = conv.kernel_size == (k, k) and k % 2 == 1 and conv.padding == (k // 2, k // 2)
    if not same or conv.dilation != (1, 1) or conv.stride[0] != conv.stride[1] or conv.padding_mode != "zeros":
        raise ValueError(f"cannot merge {conv}: needs a square odd kernel, same zero padding, no dilation")
    return conv.stride[0]


def _f64(t: Tensor) -> Tensor:
    return t.detach().double().cpu()


def fold_chain(layers: Sequence[nn.Module], channels: int) -> tuple[Tensor, Tensor, int]:
    """(weight, bias, stride) of one conv equal to the chain, in float64 on the CPU (whatever device the layers are
    on: MPS has no float64); [] is the identity on `channels`.
    A stride is exact only where no spatial conv follows it (stride on the last k x k, recipe item 5)."""
    weight, bias, stride = identity_kernel(channels), torch.zeros(channels, dtype=torch.float64), 1
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            s = _check_conv(layer)
            w = _f64(layer.weight)
            if stride > 1 and w.shape[-1] > 1:
                raise ValueError("cannot merge a stride followed by a spatial conv: put the stride on the last k x k")
            b = torch.zeros(w.shape[0], dtype=torch.float64) if layer.bias is None else _f64(layer.bias)
            if i == 0:  # composing with the identity would only cost time
                weight, bias = group_to_dense(w, layer.groups), b
            else:
                weight, bias = compose(weight, bias, w, b, layer.groups)
            stride *= s
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
            mean, var, gamma, beta, eps = (_f64(t) if isinstance(t, Tensor) else t for t in _bn_eval(layer))
            weight, bias = fold_bn(weight, bias, mean, var, gamma, beta, eps)
        elif getattr(layer, "is_channel_affine", False):
            weight, bias = fold_affine(weight, bias, _f64(layer.weight), _f64(layer.bias))
        else:
            raise TypeError(f"not a linear layer of a grafted block: {type(layer).__name__}")
    return weight, bias, stride


def merge_block(block: GraftedBlock) -> nn.Module:
    """The block as Sequential(Conv2d(bias=True), kept activation), equal to it in eval mode."""
    main = block.linear_layers()
    in_channels = next(layer for layer in main if isinstance(layer, nn.Conv2d)).in_channels
    weight, bias, stride = fold_chain(main, in_channels)
    shortcut = block.shortcut_layers()
    if shortcut is not None:
        w_s, b_s, s_s = fold_chain(shortcut, in_channels)
        if s_s != stride or w_s.shape[:2] != weight.shape[:2]:
            raise ValueError(f"shortcut (stride {s_s}, {tuple(w_s.shape[:2])}) does not match the main branch "
                             f"(stride {stride}, {tuple(weight.shape[:2])})")
        weight, bias = weight + pad_kernel(w_s, weight.shape[-1]), bias + b_s
    out_channels, _, k, _ = weight.shape
    like = next(layer for layer in main if isinstance(layer, nn.Conv2d)).weight  # the merged conv's dtype, device
    conv = nn.Conv2d(in_channels, out_channels, k, stride=stride, padding=k // 2, bias=True, dtype=like.dtype,
                     device=like.device)
    with torch.no_grad():
        conv.weight.copy_(weight.to(like.dtype))
        conv.bias.copy_(bias.to(like.dtype))
    return nn.Sequential(conv, copy.deepcopy(block.final_activation())).eval()


def randomise_linear_layers(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and scales, and random affine activations (from `seed`), then eval mode: exactness
    checks (tests, benchmarks/reparam_exactness.py) must not pass only because fresh layers are identities."""
    gen = torch.Generator().manual_seed(seed)

    def draw(like: Tensor, low: float, high: float) -> Tensor:
        return (torch.rand(like.shape, generator=gen) * (high - low) + low).to(like.dtype)

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(draw(m.running_mean, -1.0, 1.0))
                m.running_var.copy_(draw(m.running_var, 0.5, 1.5))
                if m.weight is not None:
                    m.weight.copy_(draw(m.weight, 0.5, 1.5))
                    m.bias.copy_(draw(m.bias, -1.0, 1.0))
            elif getattr(m, "is_channel_affine", False):
                m.weight.copy_(draw(m.weight, 0.5, 1.5))
                m.bias.copy_(draw(m.bias, -1.0, 1.0))
    return module.eval()


def merge_network(net: nn.Module) -> nn.Module:
    """A deep copy of `net` with every GraftedBlock replaced by its merged conv + activation (eval mode;
    `net` is left untouched). Original blocks stay as they are."""
    merged = copy.deepcopy(net)
    targets = [name for name, module in merged.named_modules() if isinstance(module, GraftedBlock)]
    for name in targets:
        if not name:  # the network is one grafted block
            return merge_block(merged)  # type: ignore[arg-type]
        parent_name, _, child = name.rpartition(".")
        parent = merged.get_submodule(parent_name)
        setattr(parent, child, merge_block(getattr(parent, child)))
    return merged.eval()
