"""TSE (training speed estimation, Ru et al. 2021) as a proxy: the sum of the training losses of a copy of the
network trained a few epochs on the batch's fixed mini-batches (the same training as the `bte` proxy, see
hwsearch.bte). Lower is better (`higher_is_better` False: rank by `oriented`); +inf when the training diverged.
The baseline the thesis compares BTE with at equal budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwsearch.bte import tse
from hwsearch.proxies import register_proxy
from hwsearch.proxies.bte import TrainingProxy

if TYPE_CHECKING:
    from torch import nn

    from hwsearch.proxies.base import ProxyBatch


@register_proxy("tse")
class TSE(TrainingProxy):
    """Σ_e Σ_n L_e(n): the summed training loss of `epochs` epochs (lower predicts more accurate)."""

    higher_is_better = False
    summary = "TSE: sum of the training losses of a few epochs on the batch's fixed mini-batches (trains)"

    def score(self, model: nn.Module, batch: ProxyBatch | None) -> float:
        return tse(self.losses(model, batch))
