"""The torch modules of the MBConv space (`spaces/mbconv.py` holds the encodings and loads these on first use)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from spaces.base import Arch
from spaces.mbconv import _MB_SPECS, FIRST_CHANNELS, HEAD_CHANNELS, SKIP, STEM_CHANNELS, scale_channels


def conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """Conv (same padding, no bias) + BN, then ReLU6 unless `act` is False."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """MobileNetV2 inverted bottleneck: 1x1 expand (none when e == 1), k x k depthwise, linear 1x1 project.

    `hidden` overrides the expansion width c_in * e (the channel space's per-layer scale); the output width,
    and so the residual, stay as they are.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, stride: int,
                 hidden: int | None = None) -> None:
        super().__init__()
        hidden = c_in * expansion if hidden is None else hidden
        layers = [] if expansion == 1 and hidden == c_in else [conv_bn(c_in, hidden, 1)]
        layers += [
            conv_bn(hidden, hidden, kernel, stride, groups=hidden),
            conv_bn(hidden, c_out, 1, act=False),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def make_layer(op: int, c_in: int, c_out: int, stride: int, hidden: int | None = None) -> nn.Module:
    """The module for op index `op` in a searchable layer of the given shape; `hidden` (MBConv ops only)
    overrides the expansion width."""
    if op == SKIP:
        if stride == 1 and c_in == c_out:
            return nn.Identity()
        return conv_bn(c_in, c_out, 1, stride, act=False)
    kernel, expansion = _MB_SPECS[op]
    return MBConv(c_in, c_out, kernel, expansion, stride, hidden)


def mbconv_network(arch: Arch, plan: Sequence[tuple[int, int, int]], width_mult: float,
                   num_classes: int, hidden: Sequence[int | None] | None = None) -> nn.Sequential:
    """Stem, fixed MBConv, the searchable layers of `plan` ((in, out, stride) each), head conv, pool, FC.

    `hidden`, one entry per searchable layer, overrides the expansion width of MBConv layers (None: c_in * e).
    """
    stem = scale_channels(STEM_CHANNELS, width_mult)
    first = scale_channels(FIRST_CHANNELS, width_mult)
    head = scale_channels(HEAD_CHANNELS, width_mult)
    last = plan[-1][1]
    hidden = [None] * len(plan) if hidden is None else hidden
    layers = [make_layer(op, c_in, c_out, stride, h)
              for op, (c_in, c_out, stride), h in zip(arch, plan, hidden, strict=True)]
    return nn.Sequential(
        conv_bn(3, stem, 3, stride=2),
        MBConv(stem, first, 3, 1, 1),
        *layers,
        conv_bn(last, head, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(head, num_classes),
    )
