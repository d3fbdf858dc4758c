"""TPC, the total path count score of TPC-NAS (spec §1.2–1.5): data-free, read from the network's shapes.

S = Σ_p ln(C_out,p · k_p² / (stride_p² · groups_p)) over conv layers p (natural log, as the TPC code). The paper
and its Table 8 disagree on which layers count (spec §1.4), so there are two proxies, and each records its
convention in `describe()`:

- `tpc`: Algorithm 1 literally. Every Conv2d on the main path; the convs on residual links (a module path
  with a `shortcut` or `downsample` component: NB201's reductions, ResNet projections) are removed; no FC.
  NB201's cell is a DAG, not a chain: Algorithm 1 sums every built conv, so parallel edges each add their
  term (not the log of a DAG path count). MBConv/FBNet's `skip` op in a shape-changing layer is a 1x1 conv
  that replaces the layer, on the main path, so it counts.
- `tpc-table8`: Table 8's numbers (ResNet-18 140, ResNet-50 340, MobileNetV2 214): every Conv2d, shortcut
  projections included, plus each Linear as C_out = out_features, k = 1.

A separable conv scores as its dense conv: depthwise k² plus pointwise C_out (§3.3). `fast_scores` sums a
per-(layer, op) table of the space (hwsearch.proxies._tables); `conv_depth` counts the main-path convs, the
depth TPC-NAS's layer cap constrains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from hwsearch.proxies import register_proxy
from hwsearch.proxies._tables import conv_count, table_values, tpc_value
from hwsearch.proxies.base import Proxy, ProxyBatch

if TYPE_CHECKING:
    from torch import nn

    from spaces import SearchSpace

CONVENTIONS: dict[str, str] = {
    "algorithm1": "Algorithm 1: every Conv2d on the main path (shortcut/downsample convs of residual links "
                  "removed), no FC; ln(C_out*k^2/(stride^2*groups)), natural log; DAG cells sum every built conv",
    "table8": "Table 8: every Conv2d including shortcut/downsample projections, plus each Linear as "
              "C_out=out_features, k=1; ln(C_out*k^2/(stride^2*groups)), natural log",
}


@register_proxy("tpc")
class TPC(Proxy):
    """TPC under Algorithm 1's convention (no residual-link convs, no FC)."""

    data_free = True
    convention = "algorithm1"
    summary = "total path count: sum of ln(C_out k^2 / (s^2 g)) over main-path convs (TPC-NAS Algorithm 1)"

    def __init__(self, effective: bool = True) -> None:
        self.effective = effective

    @property
    def _table_kind(self) -> str:
        return "tpc" if self.convention == "algorithm1" else "tpc-table8"

    def score(self, model: nn.Module, batch: ProxyBatch | None = None) -> float:
        """The model's TPC (the batch is ignored: shapes only, meta-device modules work)."""
        table8 = self.convention == "table8"
        return tpc_value(model, shortcuts=table8, fc=table8)

    def fast_scores(self, space: SearchSpace, archs: Sequence[Sequence[int]]) -> np.ndarray | None:
        """Every arch's TPC from the space's per-(layer, op) table: `score` of its build, except that with
        `effective` (default) NB201 counts only the convs on an input-to-output path (TPC counts paths from
        the input; a conv fed by a constant opens none), and a cell with no path from its input to its output
        at all scores -inf: its network has zero paths (ln 0), as NASWOT and Zen score it."""
        values = table_values(space, archs, self._table_kind, self.effective)
        if self.effective:  # no input-to-output path at all: zero paths, ln 0
            from hwsearch.proxies._tables import built_mask

            mask = built_mask(space, np.asarray(archs, dtype=np.int64).reshape(-1, space.n_layers), effective=True)
            if mask is not None:
                values = np.where(mask.any(axis=1), values, -np.inf)
        return values

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["convention"] = self.convention
        out["convention_text"] = CONVENTIONS[self.convention]
        return out


@register_proxy("tpc-table8")
class TPCTable8(TPC):
    """TPC under Table 8's convention (shortcut projections and the FC counted)."""

    convention = "table8"
    summary = "total path count as Table 8 counts it: every Conv2d incl. shortcut projections, plus the FC"


def conv_depth(space: SearchSpace, archs: Sequence[Sequence[int]], effective: bool = True) -> np.ndarray:
    """The number of main-path convs (Algorithm 1's layers) of every arch (int [N]), from a per-layer table
    (NB201 with `effective`: those on an input-to-output path)."""
    return np.rint(table_values(space, archs, "conv_depth", effective)).astype(np.int64)


def model_conv_depth(model: nn.Module) -> int:
    """The number of main-path convs of one network."""
    return conv_count(model)
