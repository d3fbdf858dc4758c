"""Zen-score (Lin et al., "Zen-NAS", ICCV 2021), in the form of the Zen-NAS / TPC-NAS reference code
(`compute_zen_score.py`), which the survey repo copies; spec §3.3 item 8.

Per repeat: re-initialise every Conv2d/Linear weight N(0, 1) with zero bias and every BatchNorm2d/GroupNorm to
γ = 1, β = 0; draw x, x₂ ~ N(0, 1) shaped like the batch; with BN in train mode, Δ = mean_b Σ_{c,h,w}
|f_e(x) − f_e(x + γ·x₂)| on the pre-GAP feature map (an L1 norm, not the paper's Frobenius), γ = 1e-2; the score is
log Δ + Σ_BN log √mean(running_var), averaged over repeats. Forward only, under no_grad.

What the reference's running_var is: it is read after the two train-mode forwards, so it is not the batch
variance but the BN's running average, moved twice by its own momentum from where it was: from a fresh network's
1, with PyTorch's default momentum 0.1, 0.81 + 0.09·v₁ + 0.1·v₂ (v the unbiased batch variances). The re-init
does not reset it, and over repeats it keeps moving. We do the same and do not reset it either (`build_for_proxy`
hands a fresh network). Zen reads no images: `data_free` is True, but the batch gives x's shape and size; the
weights and x, x₂ come from `seed`, or from torch's global generator (seeded per network by `score_arch`) when
`seed` is None. The network needs a global average pool module (pre-GAP features, found by a hook on the last
one called) and should have BN layers (without, the BN term is 0, as in the reference). Features that do not
move at all (Δ = 0) score -inf, the reference's log 0.
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


def gaussian_reinit(model: nn.Module, gen: torch.Generator) -> None:
    """Zen-NAS's `network_weight_gaussian_init`: conv/linear weights N(0, 1) and zero biases, norms γ = 1, β = 0."""
    import torch
    from torch import nn

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(0.0, 1.0, generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()


def zen_once(model: nn.Module, shape: tuple[int, ...], gen: torch.Generator, mixup_gamma: float) -> float:
    """One repeat of the reference: re-init, two train-mode forwards, log Δ + Σ log √mean(running_var)."""
    import torch
    from torch import nn

    from hwsearch.proxies._activations import pre_gap_features

    gaussian_reinit(model, gen)
    x = torch.randn(shape, generator=gen)
    x2 = torch.randn(shape, generator=gen)
    model.train()
    with torch.no_grad():
        out = pre_gap_features(model, x)
        mixed = pre_gap_features(model, x + mixup_gamma * x2)
        delta = float(torch.sum(torch.abs(out - mixed), dim=tuple(range(1, out.dim()))).mean())
        bn_term = sum(float(torch.log(torch.sqrt(torch.mean(m.running_var))))
                      for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.running_var is not None)
    if math.isnan(delta):
        raise ValueError("the pre-GAP features are NaN (N(0, 1) weights overflowed float32)")
    # Δ = 0 (features that do not move: an NB201 cell cut off from its input outputs zeros) is log 0 = -inf,
    # the reference's value: the lowest score, not a failure
    return math.log(delta) + bn_term if delta > 0.0 else -math.inf


@register_proxy("zen")
class ZenScore(Proxy):
    """Zen-score of the reference code: log of the pre-GAP response to a small Gaussian perturbation plus
    the BN scaling term, with N(0, 1) weights (see the module docstring)."""

    data_free = True
    needs_labels = False
    higher_is_better = True
    summary = "Zen-score (Zen-NAS code form): log L1 pre-GAP response to a 1e-2 mixup + sum log sqrt BN var"

    def __init__(self, mixup_gamma: float = 1e-2, repeat: int = 1, seed: int | None = None) -> None:
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise UserInputError(f"zen: repeat must be an int >= 1, got {repeat!r}")
        if not mixup_gamma > 0:
            raise UserInputError(f"zen: mixup_gamma must be > 0, got {mixup_gamma!r}")
        self.mixup_gamma = float(mixup_gamma)
        self.repeat = repeat
        self.seed = seed

    def score(self, model: nn.Module, batch: ProxyBatch | None) -> float:
        import torch

        if batch is None:
            raise UserInputError("zen reads no images but takes x's shape and size from the batch: give it one "
                                 "(make_batch)")
        gen = torch.Generator()
        gen.manual_seed(int(torch.randint(0, 2**62, (1,)).item()) if self.seed is None else int(self.seed))
        shape = tuple(int(s) for s in batch.x.shape)
        values = [zen_once(model, shape, gen, self.mixup_gamma) for _ in range(self.repeat)]
        return float(sum(values) / len(values))
