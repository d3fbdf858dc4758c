"""NAS-Bench-201 cell space (Dong & Yang, ICLR 2020): 5 ops on the 6 edges of a 4-node cell, 15,625 archs.

Ids, edge order and benchmark indices are the benchmark's own, so measurements can be joined with
NB201-based tables (HELP, HW-NAS-Bench, BRP-NAS). One choice beyond the benchmark: edges whose result
cannot reach the cell output (every path onward is `none`) are not built. They would be dead code, the
ONNX exporter drops them anyway, and leaving them out keeps the cost counts equal to what a device runs.
For such cells FLOPs and params are therefore below the benchmark's own figures, which count dead ops.
The extremes match the published CIFAR-10 range: 7.78 MFLOPs (no conv) and 220.12 vs 220.11 MFLOPs with
1.53 M params (all 3x3 convs).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from spaces.base import Arch, InvalidArchError, SearchSpace, check_int, check_phi, lazy_module, lazy_names
from spaces.errors import UserInputError
from spaces.registry import register_space

if TYPE_CHECKING:
    from torch import nn

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (source, target)
N_NODES = 4
NONE = OPS.index("none")


@lru_cache(maxsize=1)
def _index_table() -> tuple[tuple[Arch, ...], dict[Arch, int]]:
    """The benchmark's order: all cells in `itertools.product` order, shuffled by `random.Random(88)`."""
    archs = list(itertools.product(range(len(OPS)), repeat=len(EDGES)))
    random.Random(88).shuffle(archs)
    return tuple(archs), {arch: i for i, arch in enumerate(archs)}


def live_edges(arch: Arch) -> tuple[int, ...]:
    """Edges that are not `none` and whose target node feeds the cell output (pure; used by the builder)."""
    needed = {N_NODES - 1}
    for node in range(N_NODES - 2, 0, -1):
        if any(src == node and dst in needed and arch[e] != NONE for e, (src, dst) in enumerate(EDGES)):
            needed.add(node)
    return tuple(e for e, (_, dst) in enumerate(EDGES) if arch[e] != NONE and dst in needed)


def _graph_adjacency() -> np.ndarray:
    """BRP-NAS-style op-on-node DAG: [input, one node per edge, output], independent of the arch."""
    n = len(EDGES) + 2
    adj = np.zeros((n, n), dtype=np.float32)
    for e, (src, dst) in enumerate(EDGES):
        if src == 0:
            adj[0, 1 + e] = 1.0
        if dst == N_NODES - 1:
            adj[1 + e, n - 1] = 1.0
        for f, (src_f, _) in enumerate(EDGES):
            if src_f == dst:
                adj[1 + e, 1 + f] = 1.0
    return adj


_ADJACENCY = _graph_adjacency()
# The network's modules (spaces/nb201_net.py) load with torch on first use.
_net = lazy_module("spaces.nb201_net")
__getattr__ = lazy_names(__name__, _net,
                         ("ReLUConvBN", "_make_op", "Cell", "ResidualReduction", "macro_layout", "NB201Network"))


class NB201Space(SearchSpace):
    """The NB201 cell space; C, N, num_classes and resolution default to the CIFAR-10 benchmark setting."""

    def __init__(
        self, name: str = "nb201", C: int = 16, N: int = 5, num_classes: int = 10, resolution: int = 32
    ) -> None:
        self.name = name
        self.C = check_int(name, "C", C)
        self.N = check_int(name, "N", N)
        self.num_classes = check_int(name, "num_classes", num_classes)
        self.resolution = check_int(name, "resolution", resolution)
        if self.resolution % 4:
            raise UserInputError(
                f"{name}: resolution must be a multiple of 4 (two stride-2 stages), got {resolution}"
            )

    @property
    def ops(self) -> tuple[str, ...]:
        return OPS

    @property
    def n_layers(self) -> int:
        return len(EDGES)

    @property
    def config(self) -> dict[str, Any]:
        return {"C": self.C, "N": self.N, "num_classes": self.num_classes, "resolution": self.resolution}

    def arch_id(self, arch: Sequence[int]) -> str:
        ops = [OPS[op] for op in self.validate(arch)]
        return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)

    def parse(self, arch_id: str) -> Arch:
        if not isinstance(arch_id, str):
            raise InvalidArchError(f"{self.name}: arch id must be a str, got {type(arch_id).__name__}")
        nodes = arch_id.split("+")
        if len(nodes) != N_NODES - 1:
            raise InvalidArchError(f"{self.name}: expected {N_NODES - 1} '+'-separated nodes in {arch_id!r}")
        arch = []
        for node, text in enumerate(nodes, start=1):
            if len(text) < 2 or text[0] != "|" or text[-1] != "|":
                raise InvalidArchError(f"{self.name}: node {node} {text!r} must start and end with '|'")
            tokens = text[1:-1].split("|")
            if len(tokens) != node:
                raise InvalidArchError(
                    f"{self.name}: node {node} needs {node} inputs, got {len(tokens)} in {text!r}"
                )
            for src, token in enumerate(tokens):
                op, sep, index = token.partition("~")
                if not sep or index != str(src):
                    raise InvalidArchError(
                        f"{self.name}: input {src} of node {node} must read 'op~{src}', got {token!r}"
                    )
                if op not in OPS:
                    raise InvalidArchError(
                        f"{self.name}: unknown op {op!r} in {token!r}; known ops: {', '.join(OPS)}"
                    )
                arch.append(OPS.index(op))
        return tuple(arch)

    def index(self, arch: Sequence[int]) -> int:
        """The arch's index in the NAS-Bench-201 benchmark files."""
        return _index_table()[1][self.validate(arch)]

    def from_index(self, index: int) -> Arch:
        """The arch at a NAS-Bench-201 benchmark index."""
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or not 0 <= index < self.size:
            raise UserInputError(f"{self.name}: index must be an int in 0..{self.size - 1}, got {index!r}")
        return _index_table()[0][int(index)]

    def to_graph(self, arch: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """8 nodes [input, op of each edge, output]; features one-hot over [input, output, *ops] (7)."""
        arch = self.validate(arch)
        n = len(EDGES) + 2
        feats = np.zeros((n, 2 + len(OPS)), dtype=np.float32)
        feats[0, 0] = 1.0
        feats[n - 1, 1] = 1.0
        feats[np.arange(1, n - 1), 2 + np.asarray(arch)] = 1.0
        return _ADJACENCY.copy(), feats

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (check_int(self.name, "batch", batch), 3, self.resolution, self.resolution)

    def layer_label(self, arch: Sequence[int], name: str) -> str:
        """stem, cell<k> (the stage's k-th cell), reduction<s>, lastact, pool, classifier."""
        first = name.split(" + ")[0].strip().lstrip("/")
        parts = first.replace("/", ".").split(".")
        if parts[0] != "cells":
            return parts[0]
        block = next((int(p) for p in parts[1:] if p.isdigit()), None)
        if block is None:
            return "cells"
        n = self.N  # blocks: N cells, reduction, N cells, reduction, N cells
        if block < n:
            return f"cell0.{block}"
        stage, k = divmod(block - n, n + 1)
        return f"reduction{stage + 1}" if k == 0 else f"cell{stage + 1}.{k - 1}"

    def widened(self, phi: float) -> NB201Space:
        """C (the first stage's channels; the later stages double it) times phi, rounded half up, at least 1."""
        c = max(1, math.floor(self.C * check_phi(self.name, phi) + 0.5))
        return NB201Space(self.name, C=c, N=self.N, num_classes=self.num_classes, resolution=self.resolution)

    def _make_module(self, arch: Arch) -> nn.Module:
        return _net().NB201Network(arch, self.C, self.N, self.num_classes)


@register_space("nb201")
def nb201(C: int = 16, N: int = 5, num_classes: int = 10, resolution: int = 32) -> NB201Space:
    """NAS-Bench-201 on CIFAR-10 input (32x32, 10 classes) unless overridden."""
    return NB201Space("nb201", C=C, N=N, num_classes=num_classes, resolution=resolution)
