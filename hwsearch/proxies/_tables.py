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
    import torch
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


def _shape_keeping() -> tuple[type, ...]:
    from torch import nn

    return (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU,
            nn.GELU, nn.Sigmoid, nn.Dropout)


COUNTINGS: tuple[str, ...] = ("macs", "tensorwatch")


def _tensorwatch_term(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """tensorwatch's torchstat `compute_flops` of one leaf call (what NASLib's zero-cost `flops` sums): conv
    MACs (+ a bias add per output), BatchNorm2d numel (x2 when affine), ReLU/ReLU6 numel, pooling kernel ops
    per output element, adaptive pooling (h_span+1)(w_span+1) per output, Linear in x out; else 0."""
    from torch import nn

    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        out = int(y.shape[2] * y.shape[3])
        return kh * kw * int(x.shape[1]) * (int(y.shape[1]) // m.groups) * out + (
            int(y.shape[1]) * out if m.bias is not None else 0)
    if isinstance(m, nn.BatchNorm2d):
        return x.numel() * (2 if m.affine else 1)
    if isinstance(m, nn.ReLU | nn.ReLU6):
        return x.numel()
    if isinstance(m, nn.AvgPool2d | nn.MaxPool2d):
        k, s, p = (v if isinstance(v, tuple) else (v, v) for v in (m.kernel_size, m.stride, m.padding))
        ow = math.floor((x.shape[3] + 2 * p[0] - k[0]) / s[0] + 1)
        oh = math.floor((x.shape[2] + 2 * p[1] - k[1]) / s[0] + 1)  # sic: tensorwatch divides by stride[0]
        return int(x.shape[1]) * ow * oh * k[0] * k[1]
    if isinstance(m, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        h, w, oh, ow = int(x.shape[2]), int(x.shape[3]), int(y.shape[2]), int(y.shape[3])
        rows = sum(math.ceil((a + 1) * h / oh) - math.floor(a * h / oh) + 1 for a in range(oh))
        cols = sum(math.ceil((b + 1) * w / ow) - math.floor(b * w / ow) + 1 for b in range(ow))
        return int(x.shape[1]) * rows * cols
    if isinstance(m, nn.Linear):
        return int(x.shape[1]) * int(y.shape[1])
    return 0


def count_flops(model: nn.Module, input_shape: Sequence[int], counting: str = "macs") -> int:
    """The operation count of one run of `model` on an input of `input_shape` (batch 1; on the model's
    device, so meta-device modules work).

    "macs": multiply-accumulates of every Conv2d and Linear call, spaces.costs's formulas (the thesis' and
    this project's FLOPs; ptflops' MACs). "tensorwatch": NASLib's zero-cost `flops` (tensorwatch ModelStats
    `Flops`, see `_tensorwatch_term`), summed over every leaf-module call."""
    import torch
    from torch import nn

    from spaces.costs import conv_costs, linear_costs

    if counting not in COUNTINGS:
        raise ValueError(f"counting must be one of {COUNTINGS}, got {counting!r}")
    total = [0]

    def on_call(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x = inputs[0]
        if counting == "tensorwatch":
            total[0] += _tensorwatch_term(layer, x, output)
        elif isinstance(layer, nn.Conv2d):
            total[0] += conv_costs(x.shape[1:], output.shape[1:], layer.kernel_size, layer.groups)[0]
        elif isinstance(layer, nn.Linear):
            total[0] += linear_costs(layer.in_features, layer.out_features, x.numel() // layer.in_features)[0]

    shape = (1, *tuple(int(s) for s in input_shape)[-3:])
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    counted = (nn.Conv2d, nn.Linear) if counting == "macs" else (nn.Module,)
    handles = [m.register_forward_hook(on_call) for m in model.modules()
               if isinstance(m, counted) and not any(True for _ in m.children())]
    # BN and activations keep the shape: their forward is skipped (hooks still see the call), a meta
    # forward is then ~10x faster
    skipped = [m for m in model.modules() if isinstance(m, _shape_keeping()) and "forward" not in vars(m)]
    for m in skipped:
        m.forward = _identity
    try:
        with torch.no_grad():
            model(torch.zeros(shape, device=device))
    finally:
        for h in handles:
            h.remove()
        for m in skipped:
            del m.forward
    return int(total[0])


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


# --- per-(layer, op) tables -----------------------------------------------------------------------------------

def _meta_build(space: SearchSpace, arch: tuple[int, ...]) -> nn.Module:
    """The arch's network as `build_for_proxy` makes it (`_make_module`), on the meta device when it can be."""
    import torch

    try:
        with torch.device("meta"):
            return space._make_module(arch)
    except (RuntimeError, NotImplementedError):  # an op without a meta kernel: build it for real
        return space._make_module(arch)


# measures read from one build: the shape ones need no forward, the counting ones one forward each
SHAPE_KINDS: tuple[str, ...] = ("tpc", "tpc-table8", "conv_depth", "params")
KINDS: tuple[str, ...] = SHAPE_KINDS + COUNTINGS


def _measures(space: SearchSpace, module: nn.Module, arch: tuple[int, ...], kinds: Sequence[str]) -> np.ndarray:
    values = []
    for kind in kinds:
        if kind == "tpc":
            values.append(tpc_value(module, shortcuts=False, fc=False))
        elif kind == "tpc-table8":
            values.append(tpc_value(module, shortcuts=True, fc=True))
        elif kind == "conv_depth":
            values.append(float(conv_count(module)))
        elif kind == "params":
            values.append(float(param_count(module)))
        elif kind in COUNTINGS:
            values.append(float(count_flops(module, space.input_shape_of(arch, 1), kind)))
        else:
            raise ValueError(f"unknown measure {kind!r} (known: {', '.join(KINDS)})")
    return np.array(values)


def measure_arch(space: SearchSpace, arch: Sequence[int], kind: str) -> float:
    """One arch's measure `kind` from its (meta) build: what the table must reproduce."""
    arch = tuple(int(a) for a in arch)
    return float(_measures(space, _meta_build(space, arch), arch, (kind,))[0])


def _layout(space: SearchSpace) -> tuple[tuple[int, ...], Callable[[tuple[int, ...]], Sequence[int]]]:
    """(the table's base arch, the layers of an arch that are built): random_search's layout."""
    from hwsearch.random_search import _layout as layout

    base, built, _ = layout(space)
    return base, built


@lru_cache(maxsize=32)
def _group_tables(space_name: str, config_json: str, kinds: tuple[str, ...]
                  ) -> dict[str, tuple[float, np.ndarray] | None]:
    """For each measure of `kinds` (read from the same builds): (the base arch's value, [L, K] increments of
    each layer's op over the base's), or None when a check arch's direct value differs from the table's (the
    measure does not add up per layer in this space)."""
    space = create_space(space_name, **json.loads(config_json))
    base_arch, built = _layout(space)

    def measure(arch: tuple[int, ...]) -> np.ndarray:
        return _measures(space, _meta_build(space, arch), arch, kinds)

    base = measure(base_arch)
    table = np.zeros((len(kinds), space.n_layers, space.n_ops))
    for layer in range(space.n_layers):
        for op in range(space.n_ops):
            if op != base_arch[layer]:
                table[:, layer, op] = measure(base_arch[:layer] + (op,) + base_arch[layer + 1:]) - base
    additive = np.ones(len(kinds), dtype=bool)
    for arch in space.sample_unique(min(_CHECKS, space.size), np.random.default_rng(0)):
        layers = list(built(arch))
        got = base + table[:, layers, [arch[i] for i in layers]].sum(axis=1)
        additive &= np.isclose(got, measure(arch), rtol=_REL_TOL, atol=_REL_TOL)
    return {kind: (float(base[k]), table[k]) if additive[k] else None for k, kind in enumerate(kinds)}


def _table(space_name: str, config_json: str, kind: str) -> tuple[float, np.ndarray] | None:
    """The table of one measure: the shape measures are built together, each counting from its own forwards."""
    if kind not in KINDS:
        raise ValueError(f"unknown measure {kind!r} (known: {', '.join(KINDS)})")
    group = SHAPE_KINDS if kind in SHAPE_KINDS else (kind,)
    return _group_tables(space_name, config_json, group)[kind]


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


def table_values(space: SearchSpace, archs: Sequence[Sequence[int]] | np.ndarray, kind: str,
                 effective: bool = False) -> np.ndarray:
    """Measure `kind` of every arch (float [N]): from the space's per-(layer, op) table, vectorised, or, where
    the measure is not additive in this space, from one meta build per arch. With `effective`, NB201 counts
    only the edges on an input-to-output path (`built_mask`): an edge fed by a node the input never reaches
    computes on a constant, opens no path from the input and adds no useful work."""
    codes = np.asarray(archs, dtype=np.int64).reshape(-1, space.n_layers)
    table = _table(space.name, json.dumps(space.config, sort_keys=True), kind)
    if table is None:
        return np.array([measure_arch(space, a, kind) for a in codes.tolist()], dtype=float)
    base, increments = table
    per_layer = increments[np.arange(space.n_layers), codes]
    mask = built_mask(space, codes, effective)
    if mask is not None:
        per_layer = np.where(mask, per_layer, 0.0)
    return base + per_layer.sum(axis=1)


def layer_table(space: SearchSpace, kind: str) -> tuple[float, np.ndarray] | None:
    """(the base arch's value, [L, K] increments per layer and op) of measure `kind` in `space`, or None where
    it is not additive (then `table_values` builds each arch). NB201's base is the all-skip cell."""
    return _table(space.name, json.dumps(space.config, sort_keys=True), kind)
