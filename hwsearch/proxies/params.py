"""#params, the naive data-free baseline of the zero-shot survey (§3.3 item 15; NB201 C100 ρ ≈ 0.73).

`score(model)` counts every parameter of the network it is given (BN scale and shift included, buffers not),
as spaces.costs and NASLib's tensorwatch count do. `fast_scores` counts from a per-(layer, op) parameter
table (hwsearch.proxies._tables; the figures of hwsearch.random_search.param_counts), vectorised. With
`effective` (the default, random_search's proxy) it leaves out NB201 edges that are built but fed by a node
the input never reaches (their weights see a constant); `effective=False` equals `score` of every build.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hwsearch.proxies import register_proxy
from hwsearch.proxies._tables import built_mask, layer_table, param_count
from hwsearch.proxies.base import Proxy, ProxyBatch
from spaces.errors import UserInputError

if TYPE_CHECKING:
    from torch import nn

    from spaces import SearchSpace


def param_values(space: SearchSpace, archs: Sequence[Sequence[int]] | np.ndarray, effective: bool = True
                 ) -> np.ndarray:
    """Parameter counts of `archs` (float [N]): random_search.param_counts's figures, vectorised, from the
    per-(layer, op) table that TPC's shape measures share (one pass of meta builds for all of them)."""
    from hwsearch.random_search import param_counts

    codes = np.asarray(archs, dtype=np.int64).reshape(-1, space.n_layers)
    table = layer_table(space, "params")
    if table is None:  # not additive per layer: random_search builds each
        return param_counts(space, codes, effective=effective)
    base, increments = table
    per_layer = increments[np.arange(space.n_layers), codes]
    mask = built_mask(space, codes, effective=effective)
    if mask is not None:
        per_layer = np.where(mask, per_layer, 0.0)
    return np.rint(base + per_layer.sum(axis=1))


@register_proxy("params")
class Params(Proxy):
    """The number of parameters (higher predicts more accurate)."""

    data_free = True
    summary = "#params: every parameter of the network (fast path: effective count, NB201's dead edges out)"

    def __init__(self, effective: bool = True) -> None:
        if not isinstance(effective, bool):
            raise UserInputError(f"params: effective must be a bool, got {effective!r}")
        self.effective = effective

    def score(self, model: nn.Module, batch: ProxyBatch | None = None) -> float:
        """Every parameter of `model` (the batch is ignored; meta-device modules work)."""
        return float(param_count(model))

    def fast_scores(self, space: SearchSpace, archs: Sequence[Sequence[int]]) -> np.ndarray | None:
        return param_values(space, archs, self.effective)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["counts"] = ("parameters on an input-to-output path (NB201 edges fed by no input left out)"
                         if self.effective else "every parameter of the built network")
        return out
