"""Grad_norm (Abdelfattah et al., zero-cost proxies): the sum over Conv2d/Linear layers of the L2 norm of
the weight gradient of the cross-entropy on one labelled batch (spec §3.3 item 1, the reference code's form)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwsearch.proxies import register_proxy
from hwsearch.proxies._grads import ce_loss, finite, grads_of, layer_weights, preserved, require_batch
from hwsearch.proxies.base import Proxy

if TYPE_CHECKING:
    from torch import nn

    from hwsearch.proxies.base import ProxyBatch


@register_proxy("grad_norm")
class GradNorm(Proxy):
    """Σ_layers ‖∂L/∂W‖₂ (L = mean CE on the batch; train mode; the model is restored afterwards)."""

    needs_labels = True
    summary = "sum of Conv2d/Linear weight-gradient L2 norms of the CE loss on one batch"

    def score(self, model: nn.Module, batch: ProxyBatch | None) -> float:
        batch = require_batch(self.name, batch)
        with preserved(model):
            weights = layer_weights(model)
            grads = grads_of(ce_loss(model, batch), weights)
            return finite(self.name, float(sum(g.norm().item() for g in grads)))
