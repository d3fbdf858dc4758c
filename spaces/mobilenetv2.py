"""Domino's MobileNetV2 grafting space: torchvision's MobileNetV2 with one graft bit per inverted residual (L = 17).

The network is torchvision's (`width_mult`, `_make_divisible` to 8, stem 32, head 1280, classifier Dropout(0.2)
+ Linear, stride on the depthwise) with the same module and state-dict names (`features.{i}.conv.{j}...`,
`classifier.1.weight`), so an all-ones mask is torchvision's network. A grafted block (bit 0) keeps its
convs and BNs, has per-channel affine maps where the two ReLU6 were (`features.{i}.conv.{j}.2`), and ends
with the ReLU6 the thesis inserts after the residual add (Fig. 5.10, ablation Fig. 5.16); merged, it is one
dense 3x3 conv + ReLU6 (`features.{i}.0`). The t=1 first block is in the mask too.

Registered configs:
- `mobilenetv2`: width 1.0, 224x224 input, 1000 classes (the thesis' network).
- `mobilenetv2-small`: the same widths at 128x128 input, 10 classes. Merged networks measured with onnxruntime
  1.32 (CPUExecutionProvider, one intra-op thread) on the 2-core dev CPU (AMD EPYC), batch 1, median of 40
  runs after 10 warm-ups: all kept 1.8-2.0 ms, all grafted 1.4-1.5 ms, four stratified masks 1.4-1.7 ms.
  (Width 0.5 at 128 gave 0.5-0.8 ms; the full `mobilenetv2` at 224: 5.3 ms all kept, 3.8 ms all grafted.)
  Training resolution is free: `build_grafted` networks take any input of 32x32 or more (global pooling).
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

# torchvision's inverted_residual_setting: expansion t, channels c, repeats n, stride s of the first
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
SMALL_CONFIG: dict[str, Any] = {"width_mult": 1.0, "resolution": 128, "num_classes": 10}

_net = lazy_module("spaces.mobilenetv2_net")
__getattr__ = lazy_names(__name__, _net, ("InvertedResidual", "GraftedInvertedResidual", "MobileNetV2"))


def block_plan(width_mult: float) -> list[tuple[int, int, int, int]]:
    """(in channels, out channels, stride, expansion) of the 17 inverted residuals, torchvision's rounding."""
    plan = []
    c_in = make_divisible(STEM_CHANNELS * width_mult)
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        c_out = make_divisible(c * width_mult)
        for i in range(n):
            plan.append((c_in, c_out, s if i == 0 else 1, t))
            c_in = c_out
    return plan


class MobileNetV2Space(GraftingSpace):
    """Grafting masks over torchvision's MobileNetV2 with a width multiplier, input size and class count."""

    block_plan = staticmethod(block_plan)  # (in, out, stride, expansion) per block.

    def layer_label(self, arch: Sequence[int], name: str) -> str:
        """features.0 -> stem, features.1..17 -> B<i>:graft|keep, features.18 -> head, classifier."""
        first = name.split(" + ")[0]
        found = re.search(r"features\.(\d+)", first)
        if found is None:
            return "classifier" if "classifier" in first else super().layer_label(arch, name)
        i = int(found.group(1))
        if i == 0:
            return "stem"
        if i > self.n_layers:
            return "head"
        tag = f":{self.ops[arch[i - 1]]}" if len(arch) == self.n_layers else ""
        return f"B{i - 1:02d}{tag}"

    def _make_grafted(self, arch: Arch, bias_pad: bool, pro_width: int, pro_extra: int) -> nn.Module:
        return _net().MobileNetV2(arch, self._plan, self.width_mult, self.num_classes, bias_pad, pro_width,
                                  pro_extra)


@register_space("mobilenetv2")
def mobilenetv2(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> MobileNetV2Space:
    """torchvision's MobileNetV2 (width 1.0, 224x224, 1000 classes), one graft bit per block."""
    return MobileNetV2Space("mobilenetv2", width_mult, resolution, num_classes)


@register_space("mobilenetv2-small")
def mobilenetv2_small(width_mult: float = SMALL_CONFIG["width_mult"], resolution: int = SMALL_CONFIG["resolution"],
                      num_classes: int = SMALL_CONFIG["num_classes"]) -> MobileNetV2Space:
    """The same 17 blocks sized for a CPU (milliseconds per merged network with ONNX Runtime, one thread)."""
    return MobileNetV2Space("mobilenetv2-small", width_mult, resolution, num_classes)
