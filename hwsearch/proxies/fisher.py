"""Fisher (Theis et al.; Turner et al.'s channel saliency) as the zero-cost reference code computes it (spec
§3.3 item 6). For each output channel k of every Conv2d/Linear (the pre-BN activation z):
g_nk = Σ_spatial z·∂L/∂z for sample n, Δ_k = 0.5·mean_n g_nk². The reference then broadcasts Δ_k to every
weight of channel k and sums, so a layer counts Σ_k |Δ_k| × fan-in (C_in/groups · k_h · k_w, or in_features):
a code artefact replicated here to stay comparable with the published and NASLib numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwsearch.proxies import register_proxy
from hwsearch.proxies._grads import ce_loss, finite, preserved, require_batch, weight_layers
from hwsearch.proxies.base import Proxy

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hwsearch.proxies.base import ProxyBatch


@register_proxy("fisher")
class Fisher(Proxy):
    """Σ_layers fan-in · Σ_k |0.5·mean_n(Σ_spatial z·∂L/∂z)²| (CE on the batch, train mode; hooks removed and
    the model restored afterwards)."""

    needs_labels = True
    summary = "Fisher channel saliency: 0.5*mean_n(sum act*grad)^2 per output channel, times fan-in, summed"

    def score(self, model: nn.Module, batch: ProxyBatch | None) -> float:
        import torch

        batch = require_batch(self.name, batch)
        layers = weight_layers(model)
        saliency: dict[int, torch.Tensor] = {}
        handles = []

        def on_output(index: int) -> object:
            def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
                if not output.requires_grad:
                    return
                act = output.detach()

                def on_grad(grad: torch.Tensor) -> None:
                    prod = act * grad.detach()
                    g_nk = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
                    delta = g_nk.pow(2).mean(0).mul(0.5)
                    saliency[index] = saliency[index] + delta if index in saliency else delta

                output.register_hook(on_grad)

            return hook

        with preserved(model):
            try:
                handles = [layer.register_forward_hook(on_output(i)) for i, layer in enumerate(layers)]
                params = [p for p in model.parameters() if p.requires_grad]
                torch.autograd.grad(ce_loss(model, batch), params, allow_unused=True)
            finally:
                for h in handles:
                    h.remove()
        total = 0.0
        for i, layer in enumerate(layers):
            if i in saliency:
                fan_in = int(layer.weight[0].numel())
                total += float(saliency[i].abs().sum().item()) * fan_in
        return finite(self.name, total)
