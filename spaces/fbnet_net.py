"""The torch modules of the FBNet space (`spaces/fbnet.py` holds the encodings and loads these on first use)."""

from __future__ import annotations

import torch
from torch import nn

from spaces.base import Arch
from spaces.fbnet import HEAD_CHANNELS, OPS, SKIP, STAGES, STEM_CHANNELS, layer_plan, op_spec


def conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    """Conv (same padding, no bias) + BN, then ReLU unless `act` is False."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle, so grouped 1x1 convs mix information across groups."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)


class FBNetBlock(nn.Module):
    """Inverted bottleneck with grouped 1x1 convs: expand (G groups) [shuffle], depthwise KxK, project."""

    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, groups: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        if hidden % groups or c_out % groups:
            raise ValueError(f"fbnet: {hidden} and {c_out} channels do not split into {groups} groups")
        self.expand = conv_bn(c_in, hidden, 1, groups=groups)
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.depthwise = conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self.project = conv_bn(hidden, c_out, 1, groups=groups, act=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.shuffle(self.expand(x))))
        return x + y if self.residual else y


def make_layer(op: int, c_in: int, c_out: int, stride: int) -> nn.Module:
    """The module for op index `op` in a searchable layer of the given shape."""
    if op == SKIP:
        return nn.Identity() if stride == 1 and c_in == c_out else conv_bn(c_in, c_out, 1, stride)
    kernel, expansion, groups = op_spec(OPS[op])
    return FBNetBlock(c_in, c_out, kernel, expansion, groups, stride)


class FBNetNetwork(nn.Module):
    """Stem, the 22 searchable layers, 1x1 head conv, global pool, classifier."""

    def __init__(self, arch: Arch, num_classes: int) -> None:
        super().__init__()
        self.stem = conv_bn(3, STEM_CHANNELS, 3)
        self.layers = nn.Sequential(
            *(make_layer(op, c_in, c_out, s) for op, (c_in, c_out, s) in zip(arch, layer_plan(), strict=True))
        )
        self.head = conv_bn(STAGES[-1][0], HEAD_CHANNELS, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.layers(self.stem(x))))
        return self.classifier(torch.flatten(x, 1))
