"""SynFlow (Tanaka et al.) as the zero-cost reference code computes it, data-free (spec §3.3 item 3): in a
float64 copy of the network whose parameters and buffers are all replaced by their absolute values, feed one
all-ones input [1, C, H, W] (the batch's shape, or the network's input shape), take R = Σ output and score
Σ |θ ⊙ ∂R/∂θ| over the Conv2d/Linear weights. The model itself is left untouched (the reference restores the
signs of its copy).

Variant: `bn=False` (default) is the original, BN-free SynFlow that zero-cost-nas and NASLib register as
`synflow` (their copy makes BatchNorm a no-op; ours swaps it for nn.Identity); `bn=True` is their `synflow_bn`
(BN kept, in train mode, over a batch of one; NaN-prone).

Returned form: with `log=True` (default) the natural log of the sum, which is what NASLib stores in
`zc_nasbench201.json` (its ZeroCost predictor returns log(score); NB201 cells score ~40-50 there, raw sums
~1e17-1e22), with NASLib's convention that a zero sum (a cell that cuts every path) scores 0.0; `log=False`
gives the raw sum. Either way ranks are the same."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from hwsearch.proxies import register_proxy
from hwsearch.proxies._grads import finite, grads_of, layer_weights, without_batchnorm
from hwsearch.proxies.base import Proxy

if TYPE_CHECKING:
    from torch import nn

    from hwsearch.proxies.base import ProxyBatch


@register_proxy("synflow")
class Synflow(Proxy):
    """log Σ |θ ⊙ ∂R/∂θ| of the |θ|-network on an all-ones input (float64; BN removed unless `bn`)."""

    data_free = True
    summary = "SynFlow: log of sum |w * dR/dw|, R = sum of the |w|-network's output on an all-ones input"

    def __init__(self, bn: bool = False, log: bool = True) -> None:
        self.bn = bool(bn)
        self.log = bool(log)

    def score(self, model: nn.Module, batch: ProxyBatch | None) -> float:
        import copy

        import torch

        shape = _input_shape(model, batch)
        net = copy.deepcopy(model) if self.bn else without_batchnorm(model)
        net = net.double()
        with torch.no_grad():
            for tensor in net.state_dict().values():
                if tensor.is_floating_point():
                    tensor.abs_()
        for p in net.parameters():
            p.requires_grad_(True)
        device = next((p.device for p in net.parameters()), torch.device("cpu"))
        out = net(torch.ones((1, *shape), dtype=torch.float64, device=device))
        weights = layer_weights(net)
        grads = grads_of(out.sum(), weights)
        total = float(sum((w.detach() * g).abs().sum().item() for w, g in zip(weights, grads, strict=True)))
        finite(self.name, total)
        if not self.log:
            return total
        return 0.0 if total == 0.0 else math.log(total)


def _input_shape(model: nn.Module, batch: ProxyBatch | None) -> tuple[int, ...]:
    """One sample's shape ([C, H, W]) from the batch, else the model's `input_shape` attribute (data-free
    scoring without a batch)."""
    if batch is not None:
        return tuple(int(s) for s in batch.x.shape[1:])
    shape = getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError("synflow needs the input shape: give it a batch (make_batch) or a model with "
                         "an `input_shape` attribute")
    return tuple(int(s) for s in tuple(shape)[-3:])
