"""Shared steps of the gradient proxies (grad_norm, SNIP, GraSP, Fisher, SynFlow, Jacob_cov).

The reference code (Samsung zero-cost-nas, copied into NASLib's `predictors/utils/pruners/measures/`) scores
only the weights of Conv2d and Linear layers, runs the network in train mode on one batch with a
cross-entropy loss, and works on a copy of the network. Here the proxies take gradients with
`torch.autograd.grad` instead of patching forwards or filling `.grad`, and `preserved` puts the model back
as it was (BN running statistics, mode, grads), so scoring a model twice gives the same value.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hwsearch.proxies.base import ProxyBatch


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """Every Conv2d and Linear module, in module order (the layers the reference code scores)."""
    from torch import nn

    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def layer_weights(model: nn.Module) -> list[torch.Tensor]:
    """The weight tensors of `weight_layers` (one per layer; a shared module is counted once)."""
    return [m.weight for m in weight_layers(model)]


def model_device(model: nn.Module) -> torch.device:
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def inputs_of(model: nn.Module, batch: ProxyBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's images and labels on the model's device, images in the model's float dtype."""
    device = model_device(model)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), batch.x.dtype)
    return batch.x.to(device=device, dtype=dtype), batch.y.to(device=device, dtype=batch.y.dtype)


def require_batch(name: str, batch: ProxyBatch | None, labels: bool = True) -> ProxyBatch:
    """The batch, or a ValueError saying that `name` reads data (and labels)."""
    if batch is None:
        raise ValueError(f"{name} reads a batch of images{' and labels' if labels else ''}; got none")
    return batch


def ce_loss(model: nn.Module, batch: ProxyBatch, temperature: float = 1.0) -> torch.Tensor:
    """The mean cross-entropy of one forward pass on the batch (the reference's `loss_fn`), of the logits
    divided by `temperature` (GraSP's T)."""
    import torch.nn.functional as F

    x, y = inputs_of(model, batch)
    out = model(x)
    if out.shape[-1] <= int(y.max()):
        raise ValueError(f"the network has {out.shape[-1]} outputs but the batch has label {int(y.max())}")
    return F.cross_entropy(out / temperature if temperature != 1.0 else out, y)


def grads_of(value: torch.Tensor, weights: list[torch.Tensor], create_graph: bool = False
             ) -> list[torch.Tensor]:
    """d value / d w for each weight; zeros for a weight the value does not depend on (the reference's
    `torch.zeros_like(layer.weight)` for a None grad)."""
    import torch

    grads = torch.autograd.grad(value, weights, create_graph=create_graph, allow_unused=True)
    return [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads, strict=True)]


def finite(name: str, value: float) -> float:
    """`value`, or an ArithmeticError naming the proxy (score_arch names the network)."""
    if not math.isfinite(value):
        raise ArithmeticError(f"{name} is not finite ({value}): the network's gradients over- or underflowed")
    return float(value)


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[nn.Module]:
    """Run a proxy on `model` and put back its state afterwards: parameters and buffers (BN running
    statistics move in a train-mode forward), train/eval mode of every module, requires_grad and .grad."""
    import torch

    state = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}
    modes = {m: m.training for m in model.modules()}
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    old_grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    try:
        yield model
    finally:
        with torch.no_grad():
            model.load_state_dict(state)
        for m, training in modes.items():
            m.training = training
        for p, flag, g in zip(params, flags, old_grads, strict=True):
            p.requires_grad_(flag)
            p.grad = g


def without_batchnorm(model: nn.Module) -> nn.Module:
    """A deep copy of `model` with every BatchNorm1d/2d/3d replaced by nn.Identity (the reference's
    `copynet(bn=False)`, which turns BN's forward into a no-op: SynFlow's original, BN-free variant)."""
    from torch import nn

    net = copy.deepcopy(model)
    bn_types = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
    for parent in list(net.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, bn_types):
                setattr(parent, child_name, nn.Identity())
    return net
