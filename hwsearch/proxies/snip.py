"""SNIP (Lee et al.) as the zero-cost reference code computes it: Σ |θ ⊙ ∂L/∂θ| elementwise over the
Conv2d/Linear weights (spec §3.3 item 2). The code's weight-mask trick gives |∂L/∂mask| at mask = 1, which is
|θ ⊙ ∂L/∂θ|; the survey's printed per-layer |⟨θ, ∂L/∂θ⟩| is a different number and is not used."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwsearch.proxies import register_proxy
from hwsearch.proxies._grads import ce_loss, finite, grads_of, layer_weights, preserved, require_batch
from hwsearch.proxies.base import Proxy

if TYPE_CHECKING:
    from torch import nn

    from hwsearch.proxies.base import ProxyBatch


@register_proxy("snip")
class Snip(Proxy):
    """Σ |θ ⊙ ∂L/∂θ| (L = mean CE on the batch; train mode; the model is restored afterwards)."""

    needs_labels = True
    summary = "elementwise sum |weight * grad| of the CE loss on one batch (connection sensitivity)"

    def score(self, model: nn.Module, batch: ProxyBatch | None) -> float:
        batch = require_batch(self.name, batch)
        with preserved(model):
            weights = layer_weights(model)
            grads = grads_of(ce_loss(model, batch), weights)
            return finite(self.name, float(sum((w.detach() * g).abs().sum().item()
                                               for w, g in zip(weights, grads, strict=True))))
