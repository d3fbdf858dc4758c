"""The SurgeNAS layer-wise MBConv space (thesis Table 3.1): 21 searchable layers, 7 ops each, 7^21 archs.

Macro-structure: stem 3x3 conv s2 (40) -> fixed MBConv k3 e1 (24) -> six searchable stages
(out channels, repeats, stride of the first layer) = (32,4,2) (56,4,2) (112,4,2) (128,4,1) (256,4,2) (432,1,1)
-> 1x1 conv (1728) -> global average pool -> FC. Convs are followed by BN, and by ReLU6 except for the
linear 1x1 projection of an MBConv; MBConv adds its input back when stride is 1 and channels are kept.

Choices the thesis leaves open (spec §8.2), decided here:
- `skip` is the identity where a layer keeps its shape. In a shape-changing layer (the first of a stage:
  stride 2 or new channel count) an identity is impossible, so, as FBNet does, `skip` there is a 1x1 conv
  with the layer's stride plus BN (no activation). Skip is thus allowed in all 21 layers, matching 7^21.
- Width scaling (`width_mult`) multiplies every channel count, stem and head included, rounded to the
  nearest multiple of 8 (at least 8); the expansion width is e times the (rounded) input width.

Registered configs:
- `mbconv`: the paper setting, width 1.0, 224x224 input, 1000 classes.
- `mbconv-small`: width 0.75, 224x224 input, 10 classes; the same 21 layers, so encodings match the paper
  space. Measured with onnxruntime 1.32 (CPUExecutionProvider, default session options) on the 2-core dev
  CPU (AMD EPYC, AVX-512), batch 1: 12 archs from `sample_unique(12, default_rng(0))`, each the median of
  50 timed runs after 20 warm-ups: 1.7-2.6 ms per arch, 2.0-2.2 ms median over the archs (three repeats).
  That CPU is fast, so the usual "tiny" settings are far below the 1-10 ms target: width 0.25 at 64x64 gave
  0.12-0.35 ms, width 0.5 at 128x128 0.4-1.0 ms; the paper config itself (1000 classes) takes about 6 ms.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from spaces.base import Arch, SearchSpace, check_int, check_phi, lazy_module, lazy_names
from spaces.errors import UserInputError
from spaces.registry import register_space

if TYPE_CHECKING:
    from torch import nn

OPS: tuple[str, ...] = ("mb_k3_e3", "mb_k3_e6", "mb_k5_e3", "mb_k5_e6", "mb_k7_e3", "mb_k7_e6", "skip")
TOKENS: tuple[str, ...] = ("k3e3", "k3e6", "k5e3", "k5e6", "k7e3", "k7e6", "skip")
SKIP = OPS.index("skip")
# (kernel, expansion) per MBConv op, in OPS order
_MB_SPECS: tuple[tuple[int, int], ...] = ((3, 3), (3, 6), (5, 3), (5, 6), (7, 3), (7, 6))

STEM_CHANNELS = 40
FIRST_CHANNELS = 24
HEAD_CHANNELS = 1728
# (out channels, stride of the first layer) per searchable stage; repeats come from the config
STAGES: tuple[tuple[int, int], ...] = ((32, 2), (56, 2), (112, 2), (128, 1), (256, 2), (432, 1))
DEFAULT_REPEATS: tuple[int, ...] = (4, 4, 4, 4, 4, 1)
SMALL_CONFIG: dict[str, Any] = {"width_mult": 0.75, "resolution": 224, "num_classes": 10}


def scale_channels(channels: int, width_mult: float) -> int:
    """Channels times width_mult, rounded half-up to the nearest multiple of 8, at least 8."""
    return max(8, math.floor(channels * width_mult / 8 + 0.5) * 8)


def layer_plan(width_mult: float, stage_repeats: Sequence[int]) -> list[tuple[int, int, int]]:
    """(in channels, out channels, stride) of each searchable layer, in order."""
    plan = []
    c_in = scale_channels(FIRST_CHANNELS, width_mult)
    for (out, stride), repeats in zip(STAGES, stage_repeats, strict=True):
        c_out = scale_channels(out, width_mult)
        for i in range(repeats):
            plan.append((c_in, c_out, stride if i == 0 else 1))
            c_in = c_out
    return plan


# The network's modules (spaces/mbconv_net.py) load with torch on first use.
_net = lazy_module("spaces.mbconv_net")
__getattr__ = lazy_names(__name__, _net, ("conv_bn", "MBConv", "make_layer", "mbconv_network"))


class MBConvSpace(SearchSpace):
    """Table 3.1 space with a configurable width, input size, class count and stage depths."""

    def __init__(
        self,
        name: str = "mbconv",
        width_mult: float = 1.0,
        resolution: int = 224,
        num_classes: int = 1000,
        stage_repeats: Sequence[int] = DEFAULT_REPEATS,
    ) -> None:
        self.name = name
        real = isinstance(width_mult, numbers.Real) and not isinstance(width_mult, bool)
        if not (real and math.isfinite(width_mult) and width_mult > 0):
            raise UserInputError(f"{name}: width_mult must be a positive finite number, got {width_mult!r}")
        self.width_mult = float(width_mult)
        self.resolution = check_int(name, "resolution", resolution)
        self.num_classes = check_int(name, "num_classes", num_classes)
        if (
            isinstance(stage_repeats, str)
            or not isinstance(stage_repeats, Sequence)
            or len(stage_repeats) != 6
        ):
            raise UserInputError(f"{name}: stage_repeats must be a sequence of 6 ints, got {stage_repeats!r}")
        self.stage_repeats = tuple(
            check_int(name, f"stage_repeats[{i}]", r) for i, r in enumerate(stage_repeats)
        )
        self._plan = layer_plan(self.width_mult, self.stage_repeats)

    @property
    def ops(self) -> tuple[str, ...]:
        return OPS

    @property
    def n_layers(self) -> int:
        return len(self._plan)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "width_mult": self.width_mult,
            "resolution": self.resolution,
            "num_classes": self.num_classes,
            "stage_repeats": list(self.stage_repeats),
        }

    def arch_id(self, arch: Sequence[int]) -> str:
        return self.dashed_id(arch, TOKENS)

    def parse(self, arch_id: str) -> Arch:
        return self.parse_dashed(arch_id, TOKENS)

    def to_graph(self, arch: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Nodes = searchable layers with op one-hot features; edges = the chain l -> l+1 (thesis §3.3.4)."""
        feats = self.to_onehot(arch).reshape(self.n_layers, self.n_ops)
        adj = np.eye(self.n_layers, k=1, dtype=np.float32)
        return adj, feats

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (check_int(self.name, "batch", batch), 3, self.resolution, self.resolution)

    def _top_level_label(self, arch: Sequence[int], part: str) -> str:
        """Sequential index -> stem, fixed, L<i>:<op> for the searchable layers, head, pool, classifier."""
        if not part.isdigit():
            return part
        i, n = int(part), self.n_layers
        if i >= 2 and i < 2 + n:
            return f"L{i - 2:02d}:{TOKENS[arch[i - 2]]}" if len(arch) == n else f"L{i - 2:02d}"
        return {0: "stem", 1: "fixed", 2 + n: "head", 3 + n: "pool", 4 + n: "flatten", 5 + n: "classifier"}.get(
            i, part)

    def widened(self, phi: float) -> MBConvSpace:
        """width_mult times phi; the channels keep this space's rounding to multiples of 8, so a small phi
        may leave some layers (or all) as they were."""
        return MBConvSpace(self.name, self.width_mult * check_phi(self.name, phi), self.resolution,
                           self.num_classes, self.stage_repeats)

    def _make_module(self, arch: Arch) -> nn.Module:
        return _net().mbconv_network(arch, self._plan, self.width_mult, self.num_classes)


@register_space("mbconv")
def mbconv(
    width_mult: float = 1.0,
    resolution: int = 224,
    num_classes: int = 1000,
    stage_repeats: Sequence[int] = DEFAULT_REPEATS,
) -> MBConvSpace:
    """The paper setting (Table 3.1): width 1.0, 224x224 input, 1000 classes."""
    return MBConvSpace("mbconv", width_mult, resolution, num_classes, stage_repeats)


@register_space("mbconv-small")
def mbconv_small(
    width_mult: float = SMALL_CONFIG["width_mult"],
    resolution: int = SMALL_CONFIG["resolution"],
    num_classes: int = SMALL_CONFIG["num_classes"],
    stage_repeats: Sequence[int] = DEFAULT_REPEATS,
) -> MBConvSpace:
    """Same 21 layers, narrower and 10 classes: 1-10 ms per network on a CPU with onnxruntime."""
    return MBConvSpace("mbconv-small", width_mult, resolution, num_classes, stage_repeats)
