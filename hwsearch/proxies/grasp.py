"""GraSP (Wang et al.) as the zero-cost reference code computes it (spec §3.3 item 4): g = ∂L/∂θ without a
graph, then the Hessian-gradient product Hg = ∂⟨g, ∂L/∂θ⟩/∂θ by double backward, score Σ(−θ ⊙ Hg) over the
Conv2d/Linear weights, temperature T = 1, one iteration. The sign is the reference's (flipped because accuracy
"seems to be negatively correlated" with +θ⊙Hg), so higher is better."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwsearch.proxies import register_proxy
from hwsearch.proxies._grads import ce_loss, finite, grads_of, layer_weights, preserved, require_batch
from hwsearch.proxies.base import Proxy

if TYPE_CHECKING:
    from torch import nn

    from hwsearch.proxies.base import ProxyBatch


@register_proxy("grasp")
class Grasp(Proxy):
    """Σ(−θ ⊙ Hg) with g the CE gradient on the batch (two forwards, one double backward; the logits are
    divided by `temperature` before the loss, as in the reference)."""

    needs_labels = True
    summary = "GraSP: sum of -weight * (Hessian x gradient) of the CE loss on one batch (double backward)"

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = float(temperature)

    def score(self, model: nn.Module, batch: ProxyBatch | None) -> float:
        batch = require_batch(self.name, batch)
        with preserved(model):
            weights = layer_weights(model)
            g = [t.detach() for t in grads_of(ce_loss(model, batch, self.temperature), weights)]
            grad_f = grads_of(ce_loss(model, batch, self.temperature), weights, create_graph=True)
            z = sum((gi * fi).sum() for gi, fi in zip(g, grad_f, strict=True) if fi.requires_grad)
            if not hasattr(z, "requires_grad") or not z.requires_grad:
                raise ValueError("the loss does not depend on any Conv2d/Linear weight: no Hessian to take")
            hg = grads_of(z, weights)
            value = sum((-w.detach() * h).sum().item() for w, h in zip(weights, hg, strict=True))
            return finite(self.name, float(value))

