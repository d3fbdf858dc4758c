"""#FLOPs, the naive data-free baseline of the zero-shot survey (§3.3 item 15), counted as MACs.

The value is multiply-accumulates (MACs, no factor 2) of every Conv2d and Linear for one image, by
spaces.costs's formulas (what this project calls FLOPs, thesis eq. 3.18; the survey's ptflops also returns
MACs). BN, activations, pooling and additions are free. NASLib's `flops` (tensorwatch) also counts those
(the test of this module states the difference on NB201). `score(model, batch)` runs the model once on the
meta device (or its own) at the batch's image shape, or at `input_shape` when given; `fast_scores` sums a
per-(layer, op) table of the space at the space's input shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hwsearch.proxies import register_proxy
from hwsearch.proxies._tables import macs, table_values
from hwsearch.proxies.base import Proxy, ProxyBatch, ProxyFailure
from spaces.errors import UserInputError

if TYPE_CHECKING:
    from torch import nn

    from spaces import SearchSpace


@register_proxy("flops")
class Flops(Proxy):
    """MACs of the Conv2d and Linear layers for one image (higher predicts more accurate)."""

    data_free = True
    summary = "#FLOPs as MACs (multiply-accumulates) of every Conv2d and Linear, one image"

    def __init__(self, input_shape: Sequence[int] | None = None) -> None:
        if input_shape is not None:
            shape = list(input_shape)
            if len(shape) not in (3, 4) or not all(isinstance(s, int) and s > 0 for s in shape):
                raise UserInputError(f"flops: input_shape must be [C, H, W] or [1, C, H, W] of positive ints, "
                                     f"got {input_shape!r}")
            input_shape = shape[-3:]
        self.input_shape = input_shape

    def score(self, model: nn.Module, batch: ProxyBatch | None = None) -> float:
        """MACs of `model` at the batch's image shape (or `input_shape`); only the shape is read."""
        if batch is not None:
            shape = list(batch.x.shape[1:])
        elif self.input_shape is not None:
            shape = list(self.input_shape)
        else:
            raise ProxyFailure("proxy 'flops' needs an input shape: give a batch or flops(input_shape=[C, H, W])")
        return float(macs(model, shape))

    def fast_scores(self, space: SearchSpace, archs: Sequence[Sequence[int]]) -> np.ndarray | None:
        """MACs of every arch at the space's input shape (or None when `input_shape` differs from it)."""
        if self.input_shape is not None and list(space.input_shape(1)[1:]) != list(self.input_shape):
            return None
        return table_values(space, archs, "macs")

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["unit"] = "MACs (multiply-accumulates of Conv2d and Linear layers, batch 1; FLOPs = 2 x MACs)"
        return out
