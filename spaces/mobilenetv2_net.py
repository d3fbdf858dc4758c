"""The torch modules of the MobileNetV2 grafting space (`spaces/mobilenetv2.py` holds the encodings).

Module names follow torchvision's MobileNetV2 (features.{i}.conv.{j}, classifier.1), so its checkpoints load
into an all-ones network and, except for the affine maps, into grafted ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from spaces.base import Arch
from spaces.grafting import KEEP, make_divisible
from spaces.mobilenetv2 import HEAD_CHANNELS, STEM_CHANNELS
from spaces.reparam import ChannelAffine, GraftedBlock


def conv_bn_act(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                act: nn.Module | None = None) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: conv (no bias, same padding) + BN + activation (ReLU6 default)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        act if act is not None else nn.ReLU6(),
    )


class InvertedResidual(nn.Module):
    """torchvision's block: 1x1 expand (not when t = 1), 3x3 depthwise (the stride), linear 1x1 project."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(c_in * expand_ratio))
        self.use_res_connect = stride == 1 and c_in == c_out
        layers: list[nn.Module] = [conv_bn_act(c_in, hidden, 1)] if expand_ratio != 1 else []
        layers += [conv_bn_act(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.out_channels = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class GraftedInvertedResidual(GraftedBlock):
    """The block with its ReLU6s grafted into affine maps and a ReLU6 after the (residual) sum.

    Domino-Pro: the hidden width is times `pro_width` (a t = 1 block then gains a 1x1 expand), and
    `pro_extra` 1x1 conv + BN + affine layers follow the depthwise; all collapse to one 3x3 conv.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, expand_ratio: int, bias_pad: bool = True,
                 pro_width: int = 1, pro_extra: int = 0) -> None:
        super().__init__()
        hidden = int(round(c_in * expand_ratio)) * pro_width
        self.bias_pad = bias_pad
        self.use_res_connect = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand_ratio != 1 or pro_width > 1:
            layers.append(conv_bn_act(c_in, hidden, 1, act=ChannelAffine(hidden)))
        layers.append(conv_bn_act(hidden, hidden, 3, stride, groups=hidden, act=ChannelAffine(hidden)))
        layers += [conv_bn_act(hidden, hidden, 1, act=ChannelAffine(hidden)) for _ in range(pro_extra)]
        layers += [nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.out_act = nn.ReLU6()
        self.out_channels = c_out

    def linear_layers(self) -> list[nn.Module]:
        out: list[nn.Module] = []
        for layer in self.conv:
            out.extend(layer if isinstance(layer, nn.Sequential) else [layer])
        return out

    def shortcut_layers(self) -> list[nn.Module] | None:
        return [] if self.use_res_connect else None

    def final_activation(self) -> nn.Module:
        return self.out_act


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 (features, pool, classifier) with grafted blocks where the mask has a 0."""

    def __init__(self, arch: Arch, plan: Sequence[tuple[int, int, int, int]], width_mult: float, num_classes: int,
                 bias_pad: bool = True, pro_width: int = 1, pro_extra: int = 0) -> None:
        super().__init__()
        stem = make_divisible(STEM_CHANNELS * width_mult)
        head = make_divisible(HEAD_CHANNELS * max(1.0, width_mult))
        blocks: list[nn.Module] = [
            InvertedResidual(c_in, c_out, stride, t) if bit == KEEP
            else GraftedInvertedResidual(c_in, c_out, stride, t, bias_pad, pro_width, pro_extra)
            for bit, (c_in, c_out, stride, t) in zip(arch, plan, strict=True)
        ]
        self.features = nn.Sequential(conv_bn_act(3, stem, 3, 2), *blocks, conv_bn_act(plan[-1][1], head, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(head, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1)
        return self.classifier(torch.flatten(x, 1))
