"""NTK condition number (Chen et al., TE-NAS, ICLR 2021; spec §3.3 item 9). Lower is better.

TE-NAS's code: train mode, one batch; for each sample i, backward of its logits with ones gives g_i, the gradient
of Σ_k logit_ik over every parameter whose name contains "weight" (conv, linear and BN γ); G = [g_i] (B × P),
NTK = G Gᵀ, cond = λ_max / λ_min, NaN replaced by 1e5. That is B backward passes; we compute G with torch.func
(functional_call + vmap(grad), or jacrev) instead of a Python loop.

BatchNorm under vmap: a per-sample call in train mode would normalise each sample by its own statistics (a
batch of one), a different function from the sample's inside the batch. `bn="frozen"` (default) first runs the
whole batch once in train mode to get each BN's batch mean and (biased) variance, then makes the per-sample calls
in eval mode with running_mean/var set to those statistics: each sample's output is exactly what it is inside
the batch, and g_i is its gradient with the batch statistics held constant. TE-NAS's own loop differentiates
through the statistics as well (logit_i depends on every sample's weights-dependent contribution to the batch
mean and variance); `bn="batch"` computes that exactly, as the Jacobian (jacrev) of the B per-sample logit sums
of one train-mode forward of the whole batch. Both are deterministic; "frozen" is the per-sample kernel of the
function the batch computes, "batch" the reference's number at the reference's cost (B backward passes: about
140 s against 3 s for "frozen" on a default NB201 cell with a batch of 64, one CPU thread).

The kernel is formed and diagonalised in float64 (eigvalsh). A singular kernel (λ_min at rounding level: two
samples with the same gradient, or all gradients zero) gets the reference's NaN sentinel 1e5 too: the reference
would return NaN (0/0), a negative or an enormous ratio there.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from hwsearch.proxies import register_proxy
from hwsearch.proxies.base import Proxy, ProxyBatch
from spaces.errors import UserInputError

if TYPE_CHECKING:
    import torch
    from torch import nn

NAN_COND = 1e5
BN_MODES: tuple[str, ...] = ("frozen", "batch")


def _split_params(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(the parameters TE-NAS differentiates: names containing "weight", the others), detached."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    weights = {n: p for n, p in params.items() if "weight" in n}
    if not weights:
        raise ValueError(f"{type(model).__name__} has no weight parameters to take gradients of")
    return weights, {n: p for n, p in params.items() if n not in weights}


def _frozen_buffers(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The model's buffers with every BN's running_mean/var replaced by its batch statistics on `x`."""
    from hwsearch.proxies._activations import batchnorm_batch_stats

    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    for name, (mean, var) in batchnorm_batch_stats(model, x).items():
        prefix = f"{name}." if name else ""
        if f"{prefix}running_mean" not in buffers:
            raise ValueError(f"BatchNorm {name!r} keeps no running statistics (track_running_stats=False): its "
                             f"batch statistics cannot be frozen")
        buffers[f"{prefix}running_mean"] = mean
        buffers[f"{prefix}running_var"] = var
    return buffers


def _gradients(model: nn.Module, x: torch.Tensor, bn: str, chunk_size: int | None) -> dict[str, torch.Tensor]:
    """{weight name: [B, *shape]}: the per-sample gradients of `per_sample_gradients`, per parameter."""
    from torch.func import functional_call, grad, jacrev, vmap

    weights, others = _split_params(model)
    was_training = model.training
    try:
        if bn == "frozen":
            buffers = _frozen_buffers(model, x)
            model.eval()

            def one(w: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
                return functional_call(model, {**w, **others, **buffers}, (xi.unsqueeze(0),)).sum()

            g = vmap(grad(one), in_dims=(None, 0), chunk_size=chunk_size)(weights, x)
        elif bn == "batch":
            buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
            model.train()

            def all_rows(w: dict[str, torch.Tensor], bufs: dict[str, torch.Tensor]) -> torch.Tensor:
                out = functional_call(model, {**w, **others, **bufs}, (x,))
                return out.reshape(out.shape[0], -1).sum(1)

            # the buffers are an input (not differentiated) so that train-mode BN may update them in place
            g = jacrev(all_rows, argnums=0, chunk_size=chunk_size)(weights, buffers)
        else:
            raise UserInputError(f"ntk_cond: bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
    finally:
        model.train(was_training)
    return {n: g[n] for n in weights}


def per_sample_gradients(model: nn.Module, x: torch.Tensor, bn: str = "frozen",
                         chunk_size: int | None = None) -> torch.Tensor:
    """G [B, P]: row i is the gradient of sample i's summed logits over the "weight" parameters (TE-NAS),
    with the batch's BN statistics frozen (`bn="frozen"`) or differentiated through (`bn="batch"`)."""
    import torch

    b = int(x.shape[0])
    return torch.cat([t.reshape(b, -1) for t in _gradients(model, x, bn, chunk_size).values()], dim=1)


def ntk_kernel(model: nn.Module, x: torch.Tensor, bn: str = "frozen", chunk_size: int | None = None
               ) -> torch.Tensor:
    """NTK = G Gᵀ [B, B] in float64, summed parameter by parameter (no B x P concatenation or float64 copy)."""
    import torch

    b = int(x.shape[0])
    kernel = torch.zeros((b, b), dtype=torch.float64)
    for t in _gradients(model, x, bn, chunk_size).values():
        g = t.reshape(b, -1).to(torch.float64)
        kernel += g @ g.T
    return kernel


def condition_number(gram: torch.Tensor) -> float:
    """λ_max / λ_min of a symmetric kernel (float64 eigvalsh); 1e5 where it is NaN or singular (λ_min at or
    below numpy's rank tolerance λ_max · B · eps, where the ratio is rounding noise)."""
    import torch

    lam = torch.linalg.eigvalsh(gram.to(torch.float64))
    lo, hi = float(lam[0]), float(lam[-1])
    if math.isnan(lo) or math.isnan(hi) or lo <= hi * len(lam) * torch.finfo(torch.float64).eps:
        return NAN_COND
    cond = hi / lo
    return cond if math.isfinite(cond) else NAN_COND


@register_proxy("ntk_cond")
class NTKCondition(Proxy):
    """Condition number of the empirical NTK of the batch (TE-NAS); lower is better (see the module docstring)."""

    data_free = False
    needs_labels = False
    higher_is_better = False
    summary = "NTK condition number lambda_max/lambda_min of G G^T, per-sample weight gradients (TE-NAS); lower better"

    def __init__(self, bn: str = "frozen", chunk_size: int | None = None) -> None:
        if bn not in BN_MODES:
            raise UserInputError(f"ntk_cond: bn must be one of {', '.join(BN_MODES)}, got {bn!r}")
        if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                       or chunk_size < 1):
            raise UserInputError(f"ntk_cond: chunk_size must be None or an int >= 1, got {chunk_size!r}")
        self.bn = bn
        self.chunk_size = chunk_size

    def score(self, model: nn.Module, batch: ProxyBatch) -> float:
        return condition_number(ntk_kernel(model, batch.x, self.bn, self.chunk_size))
