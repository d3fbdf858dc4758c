"""Domino's ResNet-50 grafting space: torchvision's ResNet-50 v1.5 with one graft bit per bottleneck (L = 16).

The network is torchvision's (stem 7x7/2 conv + BN + ReLU + 3x3/2 max pool, bottlenecks 3 + 4 + 6 + 3 with the
stride on the 3x3, projection shortcut `downsample` = 1x1 conv + BN where the shape changes, global pool, fc)
with its module and state-dict names (conv1, bn1, layer{1-4}.{i}.conv1/bn1/conv2/bn2/conv3/bn3/downsample.0/.1,
fc), so an all-ones mask is torchvision's resnet50. A grafted bottleneck (bit 0) has per-channel affine maps
(`act1`, `act2`) where the two inner ReLUs were and keeps the ReLU after the residual add; merged, it is one
dense 3x3 conv (the shortcut folded in as a centre tap) + ReLU. `width_mult` scales the stem and every
bottleneck width (rounded to multiples of 8, expansion 4 kept).

Registered configs:
- `resnet50`: width 1.0, 224x224 input, 1000 classes (the thesis' network).
- `resnet50-small`: width 0.25, 96x96 input, 10 classes. Merged networks measured with onnxruntime 1.32
  (CPUExecutionProvider, one intra-op thread) on the 2-core dev CPU (AMD EPYC), batch 1, median of 40 runs after
  10 warm-ups: all kept 0.9-1.0 ms, all grafted 9.2-9.3 ms, four stratified masks 3.5-8.9 ms.

Grafting a bottleneck makes it slower on a CPU, unlike MobileNetV2: the merged 3x3 maps 4w to 4w channels,
(9 x 16) w^2 weights against the bottleneck's 17 w^2, so FLOPs and weight traffic grow about 8x (the full
all-grafted resnet50 has 158M parameters against 25.6M, and merging it takes ~8 s in float64). Domino's
ResNet-50 gains rely on a board where depth, not FLOPs, dominates; measure before assuming either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from spaces.base import Arch, lazy_module, lazy_names
from spaces.grafting import GraftingSpace, make_divisible
from spaces.registry import register_space

if TYPE_CHECKING:
    from torch import nn

# torchvision's resnet50: (planes, blocks, stride of the first) per stage; a bottleneck outputs 4 x planes
STAGES: tuple[tuple[int, int, int], ...] = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
EXPANSION = 4
STEM_CHANNELS = 64
SMALL_CONFIG: dict[str, Any] = {"width_mult": 0.25, "resolution": 96, "num_classes": 10}

_net = lazy_module("spaces.resnet50_net")
__getattr__ = lazy_names(__name__, _net, ("Bottleneck", "GraftedBottleneck", "ResNet50"))


def block_plan(width_mult: float) -> list[tuple[int, int, int, int]]:
    """(in channels, width, out channels, stride) of the 16 bottlenecks."""
    plan = []
    c_in = make_divisible(STEM_CHANNELS * width_mult)
    for planes, blocks, stride in STAGES:
        width = make_divisible(planes * width_mult)
        for i in range(blocks):
            plan.append((c_in, width, width * EXPANSION, stride if i == 0 else 1))
            c_in = width * EXPANSION
    return plan


class ResNet50Space(GraftingSpace):
    """Grafting masks over torchvision's ResNet-50 with a width multiplier, input size and class count."""

    block_plan = staticmethod(block_plan)  # (in, width, out, stride) per bottleneck.

    def layer_label(self, arch: Sequence[int], name: str) -> str:
        """layer<s>.<i> -> B<index>:graft|keep; conv1/bn1/relu/maxpool -> stem; avgpool -> pool; fc -> classifier."""
        first = name.split(" + ")[0]
        found = re.search(r"layer(\d)\.(\d+)", first)
        if found is None:
            part = super().layer_label(arch, name)
            return {"conv1": "stem", "bn1": "stem", "relu": "stem", "maxpool": "stem", "avgpool": "pool",
                    "fc": "classifier", "Flatten": "pool"}.get(part, part)
        stage, i = int(found.group(1)), int(found.group(2))
        index = sum(blocks for _, blocks, _ in STAGES[: stage - 1]) + i
        tag = f":{self.ops[arch[index]]}" if len(arch) == self.n_layers else ""
        return f"B{index:02d}{tag}"

    def _make_grafted(self, arch: Arch, bias_pad: bool, pro_width: int, pro_extra: int) -> nn.Module:
        return _net().ResNet50(arch, self._plan, self.width_mult, self.num_classes, bias_pad, pro_width, pro_extra)


@register_space("resnet50")
def resnet50(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> ResNet50Space:
    """torchvision's ResNet-50 v1.5 (width 1.0, 224x224, 1000 classes), one graft bit per bottleneck."""
    return ResNet50Space("resnet50", width_mult, resolution, num_classes)


@register_space("resnet50-small")
def resnet50_small(width_mult: float = SMALL_CONFIG["width_mult"], resolution: int = SMALL_CONFIG["resolution"],
                   num_classes: int = SMALL_CONFIG["num_classes"]) -> ResNet50Space:
    """The same 16 bottlenecks sized for a CPU (milliseconds per merged network with ONNX Runtime, one thread)."""
    return ResNet50Space("resnet50-small", width_mult, resolution, num_classes)
