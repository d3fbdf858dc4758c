"""The `SearchSpace` contract shared by every space (see docs/contracts.md, "Search space").

An architecture ("arch") is a plain tuple of op indices, one per searchable edge or layer, so it can be
hashed, stored and compared without any space object. Subclasses supply the op names, the id format, the
graph encoding and the torch builder; everything that follows from those (validation, sampling, one-hot,
deterministic weights, costs) lives here once.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from spaces.errors import UserInputError
from spaces.weights import seed_from_id

if TYPE_CHECKING:
    from torch import nn

Arch = tuple[int, ...]

# Below this size, sample_unique draws indices without replacement instead of rejection sampling, which
# would crawl (coupon collector) when n is close to the size of a small space such as NB201.
_ENUMERABLE_SIZE = 1 << 20


def top_level_part(name: str) -> str:
    """First path component of a node/module name: '/5/5.0/Conv' -> '5', 'cells.3.op' -> 'cells'."""
    first = name.split(" + ")[0].strip().lstrip("/")
    head = first.split("/")[0]
    return head.split(".")[0] if "/" not in first else head


def lazy_module(source: str) -> Callable[[], ModuleType]:
    """The module `source`, imported on the first call and then kept, as a top-level import would keep it.

    The built-in spaces keep their torch modules in `<space>_net.py`, so ids, encodings and sampling import
    without torch (data import and summaries, hosts without a torch wheel). Keeping the first module means
    a later swap of sys.modules (the agent imports a model's own copy of `spaces` from a zip) does not mix
    two copies' classes into one network.
    """
    module: list[ModuleType] = []

    def load() -> ModuleType:
        if not module:
            module.append(importlib.import_module(source))
        return module[0]

    return load


def lazy_names(owner: str, load: Callable[[], ModuleType], names: Iterable[str]) -> Callable[[str], object]:
    """A module `__getattr__` (PEP 562) giving `names` from `load()`'s module: `from spaces.nb201 import
    Cell` keeps working and loads torch then."""
    wanted = frozenset(names)

    def __getattr__(name: str) -> object:
        if name in wanted:
            return getattr(load(), name)
        raise AttributeError(f"module {owner!r} has no attribute {name!r}")

    return __getattr__


class InvalidArchError(UserInputError):
    """An arch or arch id that does not belong to the space; the message says which part is wrong."""


def check_int(owner: str, key: str, value: Any, minimum: int = 1) -> int:
    """`value` as an int if it is an integer >= minimum, else a UserInputError naming `key`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise UserInputError(f"{owner}: {key} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_phi(owner: str, phi: Any) -> float:
    """`phi` as a float if it is a finite number > 0 (a width multiplier), else a UserInputError."""
    real = isinstance(phi, int | float | np.integer | np.floating) and not isinstance(phi, bool)
    if not (real and math.isfinite(phi) and phi > 0):
        raise UserInputError(f"{owner}: width multiplier phi must be a finite number > 0, got {phi!r}")
    return float(phi)


class SearchSpace(ABC):
    """A discrete space of architectures with encodings, a torch builder and cost counts."""

    name: str

    @property
    @abstractmethod
    def ops(self) -> tuple[str, ...]:
        """Op names; an arch entry is an index into this tuple."""

    @property
    @abstractmethod
    def n_layers(self) -> int:
        """Number of searchable edges or layers (the length of an arch)."""

    @property
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able keyword arguments that, with `name`, rebuild this space via `create_space`."""

    @abstractmethod
    def arch_id(self, arch: Sequence[int]) -> str:
        """Canonical string id of an arch."""

    @abstractmethod
    def parse(self, arch_id: str) -> Arch:
        """Inverse of `arch_id`; raises InvalidArchError naming the bad part."""

    @abstractmethod
    def to_graph(self, arch: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(adjacency float32 [N, N], node features float32 [N, F]) for graph predictors."""

    @abstractmethod
    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        """Shape (B, 3, H, W) of the network input."""

    @abstractmethod
    def _make_module(self, arch: Arch) -> nn.Module:
        """Construct the (uninitialised) network for a validated arch."""

    def input_shape_of(self, arch: Sequence[int], batch: int = 1) -> tuple[int, ...]:
        """The input shape of one arch's network: the space's `input_shape` unless the arch decides it (a probe
        layer's input channels); every export, cost count and job asks here."""
        return self.input_shape(batch)

    @property
    def n_ops(self) -> int:
        return len(self.ops)

    @property
    def size(self) -> int:
        """Number of distinct architectures."""
        return self.n_ops**self.n_layers

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}(name={self.name!r}, {args})"

    def validate(self, arch: Sequence[int]) -> Arch:
        """Return `arch` as a tuple of Python ints, or raise InvalidArchError saying what is wrong."""
        if isinstance(arch, (str, bytes)) or not isinstance(arch, Sequence | np.ndarray):
            raise InvalidArchError(
                f"{self.name}: arch must be a sequence of op indices, got {type(arch).__name__}"
            )
        if len(arch) != self.n_layers:
            raise InvalidArchError(f"{self.name}: arch must have {self.n_layers} entries, got {len(arch)}")
        out = []
        for pos, op in enumerate(arch):
            if isinstance(op, bool) or not isinstance(op, int | np.integer):
                raise InvalidArchError(f"{self.name}: arch[{pos}] must be an int op index, got {op!r}")
            if not 0 <= op < self.n_ops:
                raise InvalidArchError(f"{self.name}: arch[{pos}] = {op} is out of range 0..{self.n_ops - 1}")
            out.append(int(op))
        return tuple(out)

    def dashed_id(self, arch: Sequence[int], tokens: Sequence[str]) -> str:
        """The id of a layer-wise space: one token per layer, joined by '-'."""
        return "-".join(tokens[op] for op in self.validate(arch))

    def parse_dashed(self, arch_id: str, tokens: Sequence[str]) -> Arch:
        """Inverse of `dashed_id`; InvalidArchError naming the layer and the known tokens."""
        if not isinstance(arch_id, str):
            raise InvalidArchError(f"{self.name}: arch id must be a str, got {type(arch_id).__name__}")
        parts = arch_id.split("-")
        if len(parts) != self.n_layers:
            raise InvalidArchError(f"{self.name}: arch id needs {self.n_layers} '-'-separated ops, got {len(parts)}")
        for pos, token in enumerate(parts):
            if token not in tokens:
                raise InvalidArchError(f"{self.name}: unknown op {token!r} at layer {pos}; known: {', '.join(tokens)}")
        return tuple(list(tokens).index(token) for token in parts)

    def sample(self, rng: np.random.Generator) -> Arch:
        """One arch drawn uniformly at random."""
        return tuple(int(op) for op in rng.integers(0, self.n_ops, size=self.n_layers))

    def sample_unique(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """`n` distinct archs drawn uniformly, in draw order; the same seed gives the same list, and a
        larger `n` extends a smaller one (prefix-stable)."""
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise UserInputError(f"{self.name}: n must be a non-negative int, got {n!r}")
        if n > self.size:
            raise UserInputError(f"{self.name}: cannot draw {n} distinct archs from a space of {self.size}")
        if self.size <= _ENUMERABLE_SIZE:
            # A prefix of one permutation: the first n draws do not depend on n, so `--n 40` after
            # `--n 20` with the same seed extends the earlier set instead of drawing a new one.
            return [self._decode(int(i)) for i in rng.permutation(self.size)[: int(n)]]
        seen: dict[Arch, None] = {}
        while len(seen) < n:
            seen.setdefault(self.sample(rng))
        return list(seen)

    def _decode(self, code: int) -> Arch:
        """Mixed-radix decode of 0 <= code < size, first layer most significant."""
        digits = []
        for _ in range(self.n_layers):
            code, op = divmod(code, self.n_ops)
            digits.append(op)
        return tuple(reversed(digits))

    def to_onehot(self, arch: Sequence[int]) -> np.ndarray:
        """Flat float32 one-hot of length n_layers * n_ops (layer-major)."""
        arch = self.validate(arch)
        onehot = np.zeros((self.n_layers, self.n_ops), dtype=np.float32)
        onehot[np.arange(self.n_layers), arch] = 1.0
        return onehot.reshape(-1)

    def build(self, arch: Sequence[int]) -> nn.Module:
        """The network in eval mode, with weights seeded from the arch id so every build is identical.

        The module is constructed on the meta device and then initialised from a private generator, so
        building never reads or advances torch's global RNG.
        """
        import torch

        from spaces.weights import init_weights

        arch = self.validate(arch)
        with torch.device("meta"):
            module = self._make_module(arch)
        module = module.to_empty(device="cpu")
        generator = torch.Generator().manual_seed(seed_from_id(self.arch_id(arch)))
        init_weights(module, generator)
        return module.eval()

    def layer_label(self, arch: Sequence[int], name: str) -> str:
        """The network part a runtime's node or module name belongs to (per-layer profiles).

        Accepts ONNX node names (`/cells/cells.3/Conv`), TensorRT's fused names (`/a/Conv + /a/Relu`: the
        first part decides) and torch module paths (`cells.3.edges`). Spaces refine the top-level part.
        """
        return self._top_level_label(arch, top_level_part(name))

    def _top_level_label(self, arch: Sequence[int], part: str) -> str:
        return part

    def widened(self, phi: float) -> SearchSpace:
        """The same space with every channel count times `phi` (the Comfort Zone's uniform width scaling,
        thesis §3.3.6): same registered name and arch ids, a config that `create_space` rebuilds, and
        `widened(1.0).config == config`. Spaces without a width in their config refuse (UserInputError)."""
        check_phi(self.name, phi)
        raise UserInputError(f"space {self.name} has no width multiplier")

    def costs(self, arch: Sequence[int]) -> dict[str, float]:
        """FLOPs, params, memory accesses and arithmetic intensity (thesis eq. 3.18-3.19), batch 1."""
        from spaces.costs import count_costs

        return count_costs(self.build(arch), self.input_shape_of(arch, 1))
