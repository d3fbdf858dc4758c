"""The torch modules of the NB201 space (`spaces/nb201.py` holds the encodings and loads these on first use).

`macro_layout` is shared with the weight-sharing supernet (hwsearch), so a supernet path's weights load into
the network under the same names.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from spaces.base import Arch
from spaces.nb201 import EDGES, N_NODES, OPS, live_edges


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


def _make_op(name: str, channels: int) -> nn.Module:
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"nb201: op {name!r} has no module")


class Cell(nn.Module):
    """Node j is the sum of op(node i) over its live in-edges; a needed node without any outputs zeros."""

    def __init__(self, arch: Arch, channels: int) -> None:
        super().__init__()
        self.live = live_edges(arch)
        self.needed = {N_NODES - 1} | {EDGES[e][0] for e in self.live}
        self.edges = nn.ModuleDict({str(e): _make_op(OPS[arch[e]], channels) for e in self.live})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x]
        for node in range(1, N_NODES):
            total = None
            for e in self.live:
                src, dst = EDGES[e]
                if dst == node:
                    y = self.edges[str(e)](nodes[src])
                    total = y if total is None else total + y
            if total is None and node in self.needed:
                total = torch.zeros_like(x)
            nodes.append(total)
        return nodes[-1]


class ResidualReduction(nn.Module):
    """NB201's ResNet basic block between stages: halves the resolution and doubles the channels."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def macro_layout(channels: int, cells: int, make_cell: Callable[[int], nn.Module]
                 ) -> tuple[nn.Sequential, nn.Sequential, nn.Sequential]:
    """NB201's macro skeleton around any cell (`make_cell(width)`): the stem; three stages of `cells` cells
    at C, 2C, 4C joined by residual reductions; the final BN-ReLU. One layout for the network and the
    supernet, so a supernet path's weights load into the network under the same names."""
    stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
    blocks: list[nn.Module] = []
    for stage in range(3):
        width = channels * 2**stage
        if stage:
            blocks.append(ResidualReduction(width // 2, width))
        blocks.extend(make_cell(width) for _ in range(cells))
    return stem, nn.Sequential(*blocks), nn.Sequential(nn.BatchNorm2d(channels * 4), nn.ReLU())


class NB201Network(nn.Module):
    """Stem, three stages of N cells at C, 2C, 4C joined by reductions, BN-ReLU, pool, classifier."""

    def __init__(self, arch: Arch, channels: int, cells: int, num_classes: int) -> None:
        super().__init__()
        self.stem, self.cells, self.lastact = macro_layout(channels, cells, lambda width: Cell(arch, width))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))
