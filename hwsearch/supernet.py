"""Single-path supernets: every candidate op of every searchable layer, one path executed per step.

`forward(x, paths)` takes a hard one-hot [L, K] (the straight-through sample of hwsearch.gumbel): only
the chosen op of each layer runs, and its output is multiplied by the chosen entry (a forward 1.0 whose
gradient reaches α). Memory and compute are those of one network (thesis Table 4.1, O(1) paths).

The supernets are built from the spaces' own blocks (`spaces.mbconv.make_layer`, `spaces.nb201._make_op`,
`ResidualReduction`), so the path of an arch computes exactly what `space.build(arch)` computes, a
shape-changing `skip` included (a 1x1 strided conv + BN there, the identity elsewhere). `subnet_state_dict`
maps a path's weights onto `space.build(arch)`'s names, which the tests use to check that equality and a
retraining can use to inherit weights.

NB201: as in NB201's own DARTS/GDAS supernets, the choice is per edge and shared by all cells (α is 6 x 5),
while every cell keeps its own op weights. `none` contributes nothing (zeros), and edges that cannot reach
the cell output are not run, as in the space's builder.

Identity mapping (SurgeNAS, thesis eq. 3.6): `forward(x, paths, phi)` adds φ·X_l to every searchable layer
whose output has its input's shape, whatever op is chosen. MBConv: not on the first layer of a stage
(stride 2 or new width), where a projection would be weights the final network does not have. NB201: on
every edge (`none` included, so the term is the same for all ops), all six edges run while φ > 0 (an edge
the arch cuts off still carries φ·X), as the convex mix (O(X) + φ·X)/(1 + φ): the ratio of op to identity is
the thesis', but plain φ·X on edges that meet at a node multiplied the activations by ~18 per cell at φ = 2
(three edges into the last node, each adding 2·X of an already grown input), ~10^19 over NB201's 15 cells
(its reductions' shortcut has no batch norm), and α's gradient vanished (exactly zero at the first α-step:
benchmarks/surgenas_fairness.py). MBConv's same-shape layers grow at most 27x per stage and the next stage's
first block renormalises them, so they keep eq. 3.6 as printed. φ = 0 is exactly the plain path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn

from spaces import SearchSpace, UserInputError
from spaces.mbconv import (
    FIRST_CHANNELS,
    HEAD_CHANNELS,
    STEM_CHANNELS,
    MBConv,
    MBConvSpace,
    conv_bn,
    layer_plan,
    make_layer,
    scale_channels,
)
from spaces.nb201 import EDGES, N_NODES, NONE, OPS, NB201Space, _make_op, live_edges, macro_layout
from spaces.weights import init_weights


class Supernet(nn.Module):
    """Base: path validation and the weight-sharing bookkeeping every supernet shares."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    def chosen(self, paths: torch.Tensor) -> tuple[int, ...]:
        """The op index per layer of a hard one-hot [L, K]; a clear error for another shape."""
        shape = (self.space.n_layers, self.space.n_ops)
        if tuple(paths.shape) != shape:
            raise ValueError(f"{self.space.name} supernet: paths must be a one-hot of shape {shape}, "
                             f"got {tuple(paths.shape)}")
        return tuple(int(k) for k in paths.detach().argmax(dim=-1).tolist())

    def _subnet_name(self, name: str, arch: tuple[int, ...]) -> str | None:
        """The name in `space.build(arch)` of the supernet entry `name`, None if the path does not use it."""
        raise NotImplementedError

    def subnet_state_dict(self, arch: Sequence[int]) -> dict[str, torch.Tensor]:
        """The path's weights and buffers under the names of `space.build(arch).state_dict()`."""
        arch = self.space.validate(arch)
        out = {}
        for name, value in self.state_dict().items():
            target = self._subnet_name(name, arch)
            if target is not None:
                out[target] = value
        return out

    def path_parameter_names(self, arch: Sequence[int]) -> set[str]:
        """Names of the supernet parameters that the path of `arch` uses (and so may get gradients)."""
        arch = self.space.validate(arch)
        return {name for name, _ in self.named_parameters() if self._subnet_name(name, arch) is not None}


class MBConvSupernet(Supernet):
    """Stem, fixed MBConv k3 e1, L searchable layers of K ops each, 1x1 head, pool, classifier."""

    def __init__(self, space: MBConvSpace) -> None:
        super().__init__(space)
        width = space.width_mult
        stem, first = scale_channels(STEM_CHANNELS, width), scale_channels(FIRST_CHANNELS, width)
        head = scale_channels(HEAD_CHANNELS, width)
        plan = layer_plan(width, space.stage_repeats)
        self.same_shape = [stride == 1 and c_in == c_out for c_in, c_out, stride in plan]
        self.stem = conv_bn(3, stem, 3, stride=2)
        self.fixed = MBConv(stem, first, 3, 1, 1)
        self.layers = nn.ModuleList(
            nn.ModuleList(make_layer(op, c_in, c_out, stride) for op in range(space.n_ops))
            for c_in, c_out, stride in plan)
        self.head = conv_bn(plan[-1][1], head, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(head, space.num_classes)

    def forward(self, x: torch.Tensor, paths: torch.Tensor, phi: float = 0.0) -> torch.Tensor:
        x = self.fixed(self.stem(x))
        for layer, (ops, k) in enumerate(zip(self.layers, self.chosen(paths), strict=True)):
            y = ops[k](x) * paths[layer, k]
            x = y + phi * x if phi and self.same_shape[layer] else y
        return self.classifier(torch.flatten(self.pool(self.head(x)), 1))

    def _subnet_name(self, name: str, arch: tuple[int, ...]) -> str | None:
        n = len(arch)  # build(): Sequential(stem, fixed, *layers, head, pool, flatten, classifier)
        m = re.match(r"layers\.(\d+)\.(\d+)\.(.*)", name)
        if m:
            layer, op, rest = int(m[1]), int(m[2]), m[3]
            return f"{2 + layer}.{rest}" if arch[layer] == op else None
        part, _, rest = name.partition(".")
        index = {"stem": 0, "fixed": 1, "head": n + 2, "classifier": n + 5}[part]
        return f"{index}.{rest}"


class _Zero(nn.Module):
    """NB201's `none`: the edge contributes nothing (kept only so that op indices line up)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class SuperCell(nn.Module):
    """An NB201 cell with all 5 ops on each of its 6 edges; the op per edge comes from the shared path."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleList(_Zero() if k == NONE else _make_op(name, channels) for k, name in enumerate(OPS))
            for _ in EDGES)

    def forward(self, x: torch.Tensor, arch: tuple[int, ...], paths: torch.Tensor,
                phi: float = 0.0) -> torch.Tensor:
        # as spaces.nb201.Cell: dead and `none` edges are not run, unless the identity term keeps them alive
        live = tuple(range(len(EDGES))) if phi else live_edges(arch)
        needed = {N_NODES - 1} | {EDGES[e][0] for e in live}
        nodes: list[torch.Tensor | None] = [x]
        for node in range(1, N_NODES):
            total = None
            for e in live:
                src, dst = EDGES[e]
                if dst == node:
                    y = self.edges[e][arch[e]](nodes[src]) * paths[e, arch[e]]
                    if phi:  # the convex mix: see the module docstring
                        y = (y + phi * nodes[src]) / (1.0 + phi)
                    total = y if total is None else total + y
            if total is None and node in needed:
                total = torch.zeros_like(x)
            nodes.append(total)
        return nodes[-1]


class NB201Supernet(Supernet):
    """NB201Network's layout (stem, 3 stages of N cells joined by reductions, BN-ReLU, pool, classifier)."""

    def __init__(self, space: NB201Space) -> None:
        super().__init__(space)
        c = space.C
        self.stem, self.cells, self.lastact = macro_layout(c, space.N, SuperCell)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c * 4, space.num_classes)

    def forward(self, x: torch.Tensor, paths: torch.Tensor, phi: float = 0.0) -> torch.Tensor:
        arch = self.chosen(paths)
        x = self.stem(x)
        for block in self.cells:
            x = block(x, arch, paths, phi) if isinstance(block, SuperCell) else block(x)
        x = self.lastact(x)
        return self.classifier(torch.flatten(self.pool(x), 1))

    def _subnet_name(self, name: str, arch: tuple[int, ...]) -> str | None:
        m = re.match(r"(cells\.\d+\.edges)\.(\d+)\.(\d+)\.(.*)", name)
        if not m:
            return name  # stem, reductions, lastact, classifier: the same names as NB201Network
        edge, op = int(m[2]), int(m[3])
        return f"{m[1]}.{edge}.{m[4]}" if arch[edge] == op and edge in live_edges(arch) else None


_SUPERNETS: dict[type, type[Supernet]] = {MBConvSpace: MBConvSupernet, NB201Space: NB201Supernet}


def build_supernet(space: SearchSpace, seed: int = 0) -> Supernet:
    """The supernet of `space`, its weights drawn from a generator seeded by `seed` (torch's global RNG is
    neither read nor advanced, so every rank of a distributed search builds the same weights)."""
    cls = next((net for kind, net in _SUPERNETS.items() if isinstance(space, kind)), None)
    if cls is None:
        supported = ", ".join(sorted(k.__name__ for k in _SUPERNETS))
        raise UserInputError(f"no supernet for space {space.name!r} ({type(space).__name__}); supported space "
                         f"classes: {supported} (spaces mbconv, mbconv-small, nb201)")
    net = cls(space)
    init_weights(net, torch.Generator().manual_seed(int(seed)))
    return net
