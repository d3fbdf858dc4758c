"""#FLOPs, the naive data-free baseline of the zero-shot survey (§3.3 item 15), counted as MACs by default.

counting="macs" (default): multiply-accumulates (no factor 2) of every Conv2d and Linear for one image, by
spaces.costs's formulas: what this project calls FLOPs (thesis eq. 3.18) and what the survey's ptflops
returns. BN, activations, pooling and additions are free.
counting="tensorwatch": NASLib's zero-cost `flops` (NAS-Bench-Suite-Zero, tensorwatch ModelStats `Flops`):
conv MACs plus BN (2 per element when affine), ReLU (1 per element), pooling (kernel ops per output) and the
Linear, a mix of MACs and elementwise ops; NASLib reports it /1e6. Our NB201 cells match NASLib's per-cell
values exactly where the networks are the same (tests/hwsearch/proxies/test_structural_proxies.py).

`score(model, batch)` runs the model once (on its device: meta works) at the batch's image shape, or at
`input_shape` when given; `fast_scores` sums a per-(layer, op) table of the space at its input shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hwsearch.proxies import register_proxy
from hwsearch.proxies._tables import COUNTINGS, count_flops, table_values
from hwsearch.proxies.base import Proxy, ProxyBatch, ProxyFailure
from spaces.errors import UserInputError

if TYPE_CHECKING:
    from torch import nn

    from spaces import SearchSpace

UNITS: dict[str, str] = {
    "macs": "MACs: multiply-accumulates of Conv2d and Linear layers, one image (FLOPs = 2 x MACs)",
    "tensorwatch": "NASLib/tensorwatch Flops: conv and Linear MACs + BN (2/element if affine) + ReLU "
                   "(1/element) + pooling (kernel ops/output), one image",
}


@register_proxy("flops")
class Flops(Proxy):
    """The operation count of one image (higher predicts more accurate)."""

    data_free = True
    summary = "#FLOPs as MACs (multiply-accumulates) of every Conv2d and Linear, one image"

    def __init__(self, input_shape: Sequence[int] | None = None, counting: str = "macs",
                 effective: bool = True) -> None:
        if input_shape is not None:
            shape = list(input_shape)
            if len(shape) not in (3, 4) or not all(isinstance(s, int) and s > 0 for s in shape):
                raise UserInputError(f"flops: input_shape must be [C, H, W] or [1, C, H, W] of positive ints, "
                                     f"got {input_shape!r}")
            input_shape = shape[-3:]
        if counting not in COUNTINGS:
            raise UserInputError(f"flops: counting must be one of {', '.join(COUNTINGS)}, got {counting!r}")
        self.input_shape = input_shape
        self.counting = counting
        self.effective = effective

    def score(self, model: nn.Module, batch: ProxyBatch | None = None) -> float:
        """The count for `model` at the batch's image shape (or `input_shape`); only the shape is read."""
        if batch is not None:
            shape = list(batch.x.shape[1:])
        elif self.input_shape is not None:
            shape = list(self.input_shape)
        else:
            raise ProxyFailure("proxy 'flops' needs an input shape: give a batch or flops(input_shape=[C, H, W])")
        return float(count_flops(model, shape, self.counting))

    def fast_scores(self, space: SearchSpace, archs: Sequence[Sequence[int]]) -> np.ndarray | None:
        """Every arch's count at the space's input shape (None when `input_shape` differs from it); with
        `effective` (default), NB201 leaves out edges fed by no input (they compute on a constant), as #params
        does; `effective=False` is `score` of each build."""
        if self.input_shape is not None and list(space.input_shape(1)[1:]) != list(self.input_shape):
            return None
        return table_values(space, archs, self.counting, self.effective)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["unit"] = UNITS[self.counting]
        return out
