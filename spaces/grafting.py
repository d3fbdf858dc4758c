"""Domino's grafting spaces (thesis chapter 5): one bit per block of a fixed network, 0 = grafted, 1 = original.

A grafted block has its inner activations replaced by learnable per-channel affine maps, so everything
between its input and its kept last activation is linear and merges into one conv (spaces/reparam.py).
The arch is the thesis' mask α as a tuple of bits and its id the bit string ("0110..."). What a board runs
is the merged network, so `build` (export, costs, the agent's torch backend) returns it; `build_grafted`
gives the trainable form and `merge` turns a trained one into its deployed network.

Sampling is stratified by the number of grafted blocks (k uniform in 0..L, then k positions uniformly):
uniform bits would cluster around L/2 and leave the fast and the accurate extremes unmeasured (spec §3.4).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Any

import numpy as np

from spaces.base import Arch, InvalidArchError, SearchSpace, check_int, check_phi
from spaces.errors import UserInputError
from spaces.weights import seed_from_id

if TYPE_CHECKING:
    from torch import nn

OPS: tuple[str, ...] = ("graft", "keep")
GRAFT, KEEP = 0, 1


class GraftingSpace(SearchSpace):
    """A per-block grafting mask over a fixed network with a width multiplier, input size and class count;
    subclasses supply the block plan (`block_plan(width_mult)`, one entry per block) and the network."""

    def __init__(self, name: str, width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> None:
        self.name = name
        self.width_mult = self._check_width(width_mult)
        self.resolution = check_int(name, "resolution", resolution)
        self.num_classes = check_int(name, "num_classes", num_classes)
        self._plan = self.block_plan(self.width_mult)

    @staticmethod
    @abstractmethod
    def block_plan(width_mult: float) -> list[tuple[int, ...]]:
        """The channels and stride of every block at a width multiplier (what the network is built from)."""

    @property
    def n_layers(self) -> int:
        return len(self._plan)

    @property
    def config(self) -> dict[str, Any]:
        return {"width_mult": self.width_mult, "resolution": self.resolution, "num_classes": self.num_classes}

    @property
    def plan(self) -> list[tuple[int, ...]]:
        return list(self._plan)

    def widened(self, phi: float) -> GraftingSpace:
        """width_mult times phi (channel counts rounded to multiples of 8, as the network rounds them)."""
        return type(self)(self.name, self.width_mult * check_phi(self.name, phi), self.resolution, self.num_classes)

    @property
    def ops(self) -> tuple[str, ...]:
        return OPS

    def mask(self, arch: Sequence[int]) -> tuple[int, ...]:
        """The arch as the thesis' α: one bit per block, 0 grafted, 1 original."""
        return self.validate(arch)

    def arch_id(self, arch: Sequence[int]) -> str:
        return "".join(str(bit) for bit in self.validate(arch))

    def parse(self, arch_id: str) -> Arch:
        if not isinstance(arch_id, str):
            raise InvalidArchError(f"{self.name}: arch id must be a str, got {type(arch_id).__name__}")
        if len(arch_id) != self.n_layers:
            raise InvalidArchError(f"{self.name}: a mask needs {self.n_layers} bits (one per block), got "
                                   f"{len(arch_id)} characters")
        for pos, char in enumerate(arch_id):
            if char not in "01":
                raise InvalidArchError(f"{self.name}: mask position {pos} is {char!r}; use 0 (grafted) or 1 (kept)")
        return tuple(int(char) for char in arch_id)

    def to_graph(self, arch: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Nodes = blocks with one-hot (graft, keep) features; edges = the chain b -> b+1."""
        feats = self.to_onehot(arch).reshape(self.n_layers, self.n_ops)
        return np.eye(self.n_layers, k=1, dtype=np.float32), feats

    # -- sampling, stratified by the number of grafted blocks --------------------------------------------

    def _draw(self, rng: np.random.Generator, k: int) -> Arch:
        bits = np.ones(self.n_layers, dtype=int)
        bits[rng.choice(self.n_layers, size=k, replace=False)] = GRAFT
        return tuple(int(b) for b in bits)

    def sample(self, rng: np.random.Generator) -> Arch:
        """k grafted blocks with k uniform in 0..L, at k positions drawn uniformly."""
        return self._draw(rng, int(rng.integers(0, self.n_layers + 1)))

    def sample_unique(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """`n` distinct masks from the stratified draw, in draw order; deterministic for a seed and
        prefix-stable. A draw whose stratum is used up goes to a uniformly drawn stratum with masks left,
        and a stratum more than half used picks among its unused masks, so every call ends."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise UserInputError(f"{self.name}: n must be a non-negative int, got {n!r}")
        if n > self.size:
            raise UserInputError(f"{self.name}: cannot draw {n} distinct archs from a space of {self.size}")
        L = self.n_layers
        sizes = [math.comb(L, k) for k in range(L + 1)]
        used = [0] * (L + 1)
        seen: dict[Arch, None] = {}
        free: dict[int, list[Arch]] = {}  # the unused masks of each stratum that is more than half used
        while len(seen) < n:
            k = int(rng.integers(0, L + 1))
            if used[k] == sizes[k]:
                open_strata = [s for s in range(L + 1) if used[s] < sizes[s]]
                k = open_strata[int(rng.integers(0, len(open_strata)))]
            if 2 * used[k] < sizes[k]:
                arch = self._draw(rng, k)
                while arch in seen:
                    arch = self._draw(rng, k)
            else:
                if k not in free:
                    free[k] = [a for a in (self._from_positions(c) for c in combinations(range(L), k))
                               if a not in seen]
                arch = free[k].pop(int(rng.integers(0, len(free[k]))))
            seen[arch] = None
            used[k] += 1
        return list(seen)

    def _from_positions(self, grafted: Sequence[int]) -> Arch:
        bits = [KEEP] * self.n_layers
        for pos in grafted:
            bits[pos] = GRAFT
        return tuple(bits)

    # -- networks -----------------------------------------------------------------------------------------

    @abstractmethod
    def _make_grafted(self, arch: Arch, bias_pad: bool, pro_width: int, pro_extra: int) -> nn.Module:
        """The uninitialised grafted network of a validated arch."""

    def _make_module(self, arch: Arch) -> nn.Module:
        return self._make_grafted(arch, True, 1, 0)

    def build_grafted(self, arch: Sequence[int], *, bias_pad: bool = True, pro_width: int = 1,
                      pro_extra: int = 0) -> nn.Module:
        """The trainable grafted network, returned in TRAIN mode, weights seeded from the arch id as `build`'s.

        Grafted blocks have learnable affine activations (a = 1, b = 0). `bias_pad` pads the intermediate a
        k x k conv reads with the linear prefix's zero response, which makes `merge` exact at the borders
        (False: the plain block, exact in the interior only). Domino-Pro (§3.8): `pro_width` multiplies the
        grafted blocks' intermediate channels and `pro_extra` inserts that many extra 1x1 conv + BN + affine
        layers per grafted block; both merge into the same deployed conv. Any input resolution >= 32 works.
        """
        import torch

        from spaces.weights import init_weights

        arch = self.validate(arch)
        if not isinstance(bias_pad, bool):
            raise UserInputError(f"{self.name}: bias_pad must be a bool, got {bias_pad!r}")
        pro_width = check_int(self.name, "pro_width", pro_width, 1)
        pro_extra = check_int(self.name, "pro_extra", pro_extra, 0)
        with torch.device("meta"):
            module = self._make_grafted(arch, bias_pad, pro_width, pro_extra)
        module = module.to_empty(device="cpu")
        init_weights(module, torch.Generator().manual_seed(seed_from_id(self.arch_id(arch))))
        return module.train()

    def merge(self, module: nn.Module) -> nn.Module:
        """The deployed network of a (trained) grafted network of this space: every grafted block one conv
        plus its kept activation; a new module in eval mode, `module` untouched."""
        from spaces.reparam import merge_network

        return merge_network(module)

    def build(self, arch: Sequence[int]) -> nn.Module:
        """The merged (deployed) network in eval mode, from the seeded grafted network; all ones is the
        original network. Export, costs and the agent's torch backend therefore see what a board runs."""
        return self.merge(self.build_grafted(arch))

    def _check_width(self, width_mult: Any) -> float:
        real = isinstance(width_mult, int | float | np.integer | np.floating) and not isinstance(width_mult, bool)
        if not (real and math.isfinite(width_mult) and width_mult > 0):
            raise UserInputError(f"{self.name}: width_mult must be a positive finite number, got {width_mult!r}")
        return float(width_mult)

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (check_int(self.name, "batch", batch), 3, self.resolution, self.resolution)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """torchvision's _make_divisible: round to a multiple of `divisor`, never more than 10% below `value`."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new
