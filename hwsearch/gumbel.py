"""Gumbel-softmax single-path sampling and the argmax derivation (pure functions; the temperature schedule
is in hwsearch.schedule, re-exported here).

LightNAS (thesis eq. 4.7-4.9) draws one path per step: a hard one-hot per layer whose gradient reaches
the architecture logits α through the straight-through estimator (STE). The noise comes from a caller's
`torch.Generator`, so a search with a given seed samples the same paths every run (and every rank of a
distributed search samples the same path).
"""

from __future__ import annotations

import math
import numbers

import torch

from hwsearch.schedule import FBNET_DECAY, tau_schedule

__all__ = ["FBNET_DECAY", "arch_onehot", "derive_arch", "gumbel_noise", "hard_gumbel", "ordered_samples",
           "tau_schedule"]

_EPS = 1e-10


def gumbel_noise(shape: torch.Size | tuple[int, ...], generator: torch.Generator,
                 like: torch.Tensor | None = None) -> torch.Tensor:
    """Gumbel(0, 1) samples G = -log(-log U), drawn on the generator's device, returned on `like`'s."""
    u = torch.rand(shape, generator=generator, device=generator.device)
    g = -torch.log(-torch.log(u.clamp(_EPS, 1.0 - _EPS)))
    return g if like is None else g.to(device=like.device, dtype=like.dtype)


def hard_gumbel(alpha: torch.Tensor, tau: float, generator: torch.Generator,
                literal: bool = False) -> torch.Tensor:
    """A hard one-hot [L, K] (one op per row) that is differentiable w.r.t. `alpha` by straight-through.

    Standard form (default): soft = softmax((α + G)/τ), the `F.gumbel_softmax(hard=True)` sample; its
    argmax is distributed as softmax(α). `literal=True` is the thesis' eq. 4.7 as printed, with the noise
    added to the probabilities P = softmax(α): soft = softmax((P + G)/τ). That form samples from
    softmax(softmax(α)), so even a converged row (P one-hot, K = 7) picks its top op only ~31% of the time;
    it is kept to reproduce the text, not as a recommendation. Either way the forward value is the hard
    one-hot and the backward is the soft sample's gradient (hard - soft.detach() + soft).
    """
    if not (isinstance(tau, numbers.Real) and not isinstance(tau, bool) and math.isfinite(tau) and tau > 0):
        raise ValueError(f"hard_gumbel: tau must be a positive finite number, got {tau!r}")
    if alpha.dim() != 2:
        raise ValueError(f"hard_gumbel: alpha must be [layers, ops], got shape {tuple(alpha.shape)}")
    g = gumbel_noise(alpha.shape, generator, like=alpha)
    base = torch.softmax(alpha, dim=-1) if literal else alpha
    soft = torch.softmax((base + g) / tau, dim=-1)
    index = soft.detach().argmax(dim=-1, keepdim=True)
    hard = torch.zeros_like(soft).scatter_(-1, index, 1.0)
    return hard - soft.detach() + soft


def ordered_samples(alpha: torch.Tensor, tau: float, generator: torch.Generator) -> list[torch.Tensor]:
    """SurgeNAS's ordered differentiable sampling (thesis Algorithm 1, eq. 3.9-3.11): K = |O| hard one-hots
    [L, K], drawn without replacement per layer, so that every (layer, op) is in exactly one of them.

    Sample i is the hard Gumbel-softmax of log P^i, where P^i is softmax(α) with the ops already drawn in
    each layer masked out and the rest renormalised (log-space: masked entries are -inf, which softmax maps
    to 0 without NaNs). Nothing is detached: the gradient of sample i flows through its soft sample, the
    renormalisation and the masking to α (straight-through, ∂P̄/∂P̂ = 1). The last sample has one op left
    per layer, so its soft sample is exactly 1 and it passes no gradient to α: its ops get their α-gradient
    as competitors in the earlier samples.
    """
    if not (isinstance(tau, numbers.Real) and not isinstance(tau, bool) and math.isfinite(tau) and tau > 0):
        raise ValueError(f"ordered_samples: tau must be a positive finite number, got {tau!r}")
    if alpha.dim() != 2:
        raise ValueError(f"ordered_samples: alpha must be [layers, ops], got shape {tuple(alpha.shape)}")
    log_p = torch.log_softmax(alpha, dim=-1)  # log P^1
    taken = torch.zeros(alpha.shape, dtype=torch.bool, device=alpha.device)
    samples = []
    for _ in range(alpha.shape[-1]):
        masked = log_p.masked_fill(taken, -math.inf)
        log_pi = masked - torch.logsumexp(masked, dim=-1, keepdim=True)  # renormalised log P^i
        soft = torch.softmax((log_pi + gumbel_noise(alpha.shape, generator, like=alpha)) / tau, dim=-1)
        index = soft.detach().argmax(dim=-1, keepdim=True)
        hard = torch.zeros_like(soft).scatter_(-1, index, 1.0)
        samples.append(hard - soft.detach() + soft)
        taken = taken | hard.bool()
    return samples


def derive_arch(alpha: torch.Tensor) -> tuple[int, ...]:
    """The final architecture: the strongest op (largest α, i.e. largest softmax(α)) of every layer."""
    if alpha.dim() != 2:
        raise ValueError(f"derive_arch: alpha must be [layers, ops], got shape {tuple(alpha.shape)}")
    return tuple(int(k) for k in alpha.detach().argmax(dim=-1).tolist())


def arch_onehot(arch: tuple[int, ...] | list[int], n_ops: int,
                like: torch.Tensor | None = None) -> torch.Tensor:
    """The [L, K] float one-hot of an arch (on `like`'s device and dtype when given)."""
    index = torch.as_tensor(list(arch), dtype=torch.long)
    out = torch.nn.functional.one_hot(index, n_ops).float()
    return out if like is None else out.to(device=like.device, dtype=like.dtype)
