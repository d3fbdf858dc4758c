"""Per-layer measures of a network read from its module shapes (TPC terms, conv depth, MACs, parameters), and
per-(layer, op) tables that score thousands of archs of a space without building them.

A measure is additive per (layer, op) when the macro structure around a searchable layer does not depend on
the other layers' ops: then value(arch) = value(base) + Σ_layer [value(base with that layer's op) − value(base)].
The table is measured once per space and config from meta-device builds (no weights are allocated), checked on
a few random archs, and refused (None: score each arch) when a check differs. NB201 builds only the edges
that can reach the cell's output (spaces.nb201.live_edges), so its table is taken over the all-skip cell and
an arch sums the increments of its built edges only, as hwsearch.random_search's parameter table does.

The shortcut rule (`is_shortcut`): a conv is on a residual link when a component of its module path is named
`shortcut` (NB201's ResidualReduction) or `downsample` (torchvision's ResNet projections, our resnet50
grafting space). MBConv/FBNet's `skip` op in a shape-changing layer is a 1x1 conv that replaces the layer (it
is the only path), so it is on the main path and counts; their identity residuals have no conv.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from spaces import SearchSpace, create_space

if TYPE_CHECKING:
    from torch import nn

SHORTCUT_NAMES: frozenset[str] = frozenset({"shortcut", "downsample"})
_CHECKS = 4  # random archs whose direct value must equal the table's
_REL_TOL = 1e-9


def is_shortcut(name: str) -> bool:
    """Whether the module at dotted path `name` lies on a residual link (see the module docstring)."""
    return any(part in SHORTCUT_NAMES for part in name.split("."))


@dataclass(frozen=True)
class Layer:
    """One Conv2d or Linear, by its shapes: what TPC reads (a Linear is C_out = out_features, k = 1)."""

    name: str
    kind: str  # "conv" or "linear"
    c_out: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    groups: int
    shortcut: bool

    @property
    def out_degree(self) -> float:
        """C_out·k²/(stride²·groups): the paths one input neuron opens through this layer (TPC Eq. 3)."""
        return self.c_out * self.kernel[0] * self.kernel[1] / (self.stride[0] * self.stride[1] * self.groups)


def layers_of(model: nn.Module) -> list[Layer]:
    """Every Conv2d and Linear of `model` in module order (shapes only: works on meta-device modules)."""
    from torch import nn

    out = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            out.append(Layer(name, "conv", int(m.out_channels), tuple(m.kernel_size), tuple(m.stride),
                             int(m.groups), is_shortcut(name)))
        elif isinstance(m, nn.Linear):
            out.append(Layer(name, "linear", int(m.out_features), (1, 1), (1, 1), 1, is_shortcut(name)))
    return out


def tpc_layers(model: nn.Module, shortcuts: bool, fc: bool) -> list[Layer]:
    """The layers TPC sums: the convs (with those on residual links when `shortcuts`), and Linears when `fc`."""
    return [ly for ly in layers_of(model)
            if (ly.kind == "conv" or fc) and (shortcuts or not ly.shortcut)]


def tpc_value(model: nn.Module, shortcuts: bool, fc: bool) -> float:
    """Σ ln(out-degree) over `tpc_layers` (natural log, as the TPC code's math.log)."""
    return float(sum(math.log(ly.out_degree) for ly in tpc_layers(model, shortcuts, fc)))


def conv_count(model: nn.Module) -> int:
    """Convs on the main path (Algorithm 1's set): the depth TPC-NAS's layer cap counts."""
    return len(tpc_layers(model, shortcuts=False, fc=False))


def param_count(model: nn.Module) -> int:
    """Every parameter (BN scale and shift included; buffers are not parameters)."""
    return int(sum(p.numel() for p in model.parameters()))


def macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of every Conv2d and Linear call when `model` runs once on an input of
    `input_shape` (batch 1), by spaces.costs's formulas; the input is on the model's device (meta works)."""
    import torch
    from torch import nn

    from spaces.costs import conv_costs, linear_costs

    total = [0]

    def on_conv(layer: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        total[0] += conv_costs(inputs[0].shape[1:], output.shape[1:], layer.kernel_size, layer.groups)[0]

    def on_linear(layer: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        total[0] += linear_costs(layer.in_features, layer.out_features, inputs[0].numel() // layer.in_features)[0]

    shape = (1, *tuple(int(s) for s in input_shape)[-3:])
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    handles = [m.register_forward_hook(on_conv if isinstance(m, nn.Conv2d) else on_linear)
               for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        with torch.no_grad():
            model(torch.zeros(shape, device=device))
    finally:
        for h in handles:
            h.remove()
    return int(total[0])


# --- per-(layer, op) tables -----------------------------------------------------------------------------------

def _meta_build(space: SearchSpace, arch: tuple[int, ...]) -> nn.Module:
    """The arch's network as `build_for_proxy` makes it (`_make_module`), on the meta device when it can be."""
    import torch

    try:
        with torch.device("meta"):
            return space._make_module(arch)
    except (RuntimeError, NotImplementedError):  # an op without a meta kernel: build it for real
        return space._make_module(arch)


def _measure(kind: str) -> Callable[[SearchSpace, nn.Module, tuple[int, ...]], float]:
    if kind == "tpc":
        return lambda space, m, arch: tpc_value(m, shortcuts=False, fc=False)
    if kind == "tpc-table8":
        return lambda space, m, arch: tpc_value(m, shortcuts=True, fc=True)
    if kind == "conv_depth":
        return lambda space, m, arch: float(conv_count(m))
    if kind == "macs":
        return lambda space, m, arch: float(macs(m, space.input_shape_of(arch, 1)))
    if kind == "params":
        return lambda space, m, arch: float(param_count(m))
    raise ValueError(f"unknown measure {kind!r}")


def measure_arch(space: SearchSpace, arch: Sequence[int], kind: str) -> float:
    """One arch's measure `kind` from its (meta) build: what the table must reproduce."""
    arch = tuple(int(a) for a in arch)
    return _measure(kind)(space, _meta_build(space, arch), arch)


def _base_arch(space: SearchSpace) -> tuple[int, ...]:
    from hwsearch.random_search import _layout

    return _layout(space)[0]


def _built_layers(space: SearchSpace) -> Callable[[tuple[int, ...]], Sequence[int]]:
    from hwsearch.random_search import _layout

    return _layout(space)[1]


@lru_cache(maxsize=64)
def _table(space_name: str, config_json: str, kind: str) -> tuple[float, np.ndarray] | None:
    """(the base arch's value, [L, K] increments of each layer's op over the base's), or None when a check
    arch's direct value differs from the table's (the measure does not add up per layer in this space)."""
    space = create_space(space_name, **json.loads(config_json))
    base_arch, built = _base_arch(space), _built_layers(space)
    base = measure_arch(space, base_arch, kind)
    table = np.zeros((space.n_layers, space.n_ops))
    for layer in range(space.n_layers):
        for op in range(space.n_ops):
            if op != base_arch[layer]:
                arch = base_arch[:layer] + (op,) + base_arch[layer + 1:]
                table[layer, op] = measure_arch(space, arch, kind) - base
    for arch in space.sample_unique(min(_CHECKS, space.size), np.random.default_rng(0)):
        want = measure_arch(space, arch, kind)
        got = base + float(table[list(built(arch)), [arch[i] for i in built(arch)]].sum())
        if not math.isclose(got, want, rel_tol=_REL_TOL, abs_tol=_REL_TOL):
            return None
    return base, table


@lru_cache(maxsize=1)
def _nb201_built_masks() -> np.ndarray:
    """[5^6, 6] bool: the built edges (live_edges) of every NB201 cell, indexed by its base-5 code."""
    import itertools

    from spaces.nb201 import EDGES, OPS, live_edges

    masks = np.zeros((len(OPS) ** len(EDGES), len(EDGES)), dtype=bool)
    for code, arch in enumerate(itertools.product(range(len(OPS)), repeat=len(EDGES))):
        masks[code, list(live_edges(arch))] = True
    return masks


@lru_cache(maxsize=1)
def _nb201_effective_masks() -> np.ndarray:
    """[5^6, 6] bool: the edges of every NB201 cell on an input-to-output path (random_search's effective)."""
    import itertools

    from hwsearch.random_search import _nb201_effective
    from spaces.nb201 import EDGES, OPS

    masks = np.zeros((len(OPS) ** len(EDGES), len(EDGES)), dtype=bool)
    for code, arch in enumerate(itertools.product(range(len(OPS)), repeat=len(EDGES))):
        masks[code, list(_nb201_effective(arch))] = True
    return masks


def built_mask(space: SearchSpace, codes: np.ndarray, effective: bool = False) -> np.ndarray | None:
    """[N, L] bool: which layers of each arch are built, or with `effective` on an input-to-output path
    (None: all of them, every space but NB201)."""
    if space.name != "nb201":
        return None
    index = codes @ (space.n_ops ** np.arange(space.n_layers - 1, -1, -1))
    return (_nb201_effective_masks() if effective else _nb201_built_masks())[index]


def table_values(space: SearchSpace, archs: Sequence[Sequence[int]] | np.ndarray, kind: str) -> np.ndarray:
    """Measure `kind` of every arch (float [N]): from the space's per-(layer, op) table, vectorised, or, where
    the measure is not additive in this space, from one meta build per arch."""
    codes = np.asarray(archs, dtype=np.int64).reshape(-1, space.n_layers)
    table = _table(space.name, json.dumps(space.config, sort_keys=True), kind)
    if table is None:
        return np.array([measure_arch(space, a, kind) for a in codes.tolist()], dtype=float)
    base, increments = table
    per_layer = increments[np.arange(space.n_layers), codes]
    mask = built_mask(space, codes)
    if mask is not None:
        per_layer = np.where(mask, per_layer, 0.0)
    return base + per_layer.sum(axis=1)


def is_additive(space: SearchSpace, kind: str) -> bool:
    """Whether `kind` has a per-(layer, op) table in `space` (else table_values builds each arch)."""
    return _table(space.name, json.dumps(space.config, sort_keys=True), kind) is not None
