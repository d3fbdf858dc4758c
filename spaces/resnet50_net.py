"""The torch modules of the ResNet-50 grafting space (`spaces/resnet50.py` holds the encodings).

Module names follow torchvision's resnet50 (conv1, bn1, layer{1-4}.{i}.conv1..bn3/downsample, fc), so its
checkpoints load into an all-ones network and, except for the affine maps, into grafted ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from spaces.base import Arch
from spaces.grafting import KEEP, make_divisible
from spaces.reparam import ChannelAffine, GraftedBlock
from spaces.resnet50 import STEM_CHANNELS


def projection(c_in: int, c_out: int, stride: int) -> nn.Sequential | None:
    """torchvision's `downsample`: 1x1 conv with the block's stride + BN, where the shape changes."""
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class Bottleneck(nn.Module):
    """torchvision's v1.5 bottleneck: 1x1, 3x3 (the stride), 1x1 (x4), each + BN, ReLU after the residual add."""

    def __init__(self, c_in: int, width: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.downsample = projection(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class GraftedBottleneck(GraftedBlock):
    """The bottleneck with its two inner ReLUs grafted into affine maps (`act1`, `act2`); the ReLU after the
    add stays. Domino-Pro: the width is times `pro_width` and `pro_extra` 1x1 conv + BN + affine layers
    (`pro`) follow the 3x3; all collapse to one 3x3 conv."""

    def __init__(self, c_in: int, width: int, c_out: int, stride: int, bias_pad: bool = True, pro_width: int = 1,
                 pro_extra: int = 0) -> None:
        super().__init__()
        width *= pro_width
        self.bias_pad = bias_pad
        self.conv1, self.bn1 = nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width)
        self.act1 = ChannelAffine(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.act2 = ChannelAffine(width)
        self.pro = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width), ChannelAffine(width))
            for _ in range(pro_extra)))
        self.conv3, self.bn3 = nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.downsample = projection(c_in, c_out, stride)

    def linear_layers(self) -> list[nn.Module]:
        extra = [layer for stage in self.pro for layer in stage]
        return [self.conv1, self.bn1, self.act1, self.conv2, self.bn2, self.act2, *extra, self.conv3, self.bn3]

    def shortcut_layers(self) -> list[nn.Module] | None:
        return [] if self.downsample is None else list(self.downsample)

    def final_activation(self) -> nn.Module:
        return self.relu


class ResNet50(nn.Module):
    """torchvision's ResNet-50 (stem, layer1-4, pool, fc) with grafted bottlenecks where the mask has a 0."""

    def __init__(self, arch: Arch, plan: Sequence[tuple[int, int, int, int]], width_mult: float, num_classes: int,
                 bias_pad: bool = True, pro_width: int = 1, pro_extra: int = 0) -> None:
        super().__init__()
        stem = make_divisible(STEM_CHANNELS * width_mult)
        self.conv1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        blocks = [
            Bottleneck(c_in, width, c_out, stride) if bit == KEEP
            else GraftedBottleneck(c_in, width, c_out, stride, bias_pad, pro_width, pro_extra)
            for bit, (c_in, width, c_out, stride) in zip(arch, plan, strict=True)
        ]
        sizes = (3, 4, 6, 3)
        start = 0
        for stage, size in enumerate(sizes, 1):
            setattr(self, f"layer{stage}", nn.Sequential(*blocks[start:start + size]))
            start += size
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(plan[-1][2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))
