"""NASWOT (Mellor et al., "Neural Architecture Search without Training", ICML 2021; NASLib's `nwot`).

Each ReLU unit splits the batch into the samples that switch it on and those that do not. With c_r the binary
code [B, units] of ReLU r's input (1 where > 0), K = Σ_r c_r c_rᵀ + (1 − c_r)(1 − c_r)ᵀ counts, for each pair of
samples, the units on which they agree (N_A − Hamming distance); the score is log|det K| (slogdet, the sign
dropped as the reference does). A network that separates the samples well has a K close to diagonal-dominant
and a large log-determinant; a singular K scores -inf (the reference's value). Forward only (the reference's
backward only flags visited ReLUs).

Which units: every module whose class name contains "ReLU", NASLib's test, so the MBConv spaces' ReLU6 count
with the same x > 0 code (the upper kink at 6 is ignored, as NASLib does). Codes are read by a forward
pre-hook, before an inplace ReLU overwrites its input. Functional relus (`F.relu`) are invisible; our spaces
build every ReLU as a module, and a network with none is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwsearch.proxies import register_proxy
from hwsearch.proxies.base import Proxy, ProxyBatch

if TYPE_CHECKING:
    import torch
    from torch import nn


def naswot_kernel(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """K [B, B] (float64): for each pair of samples, the ReLU units of `model(x)` on which their codes agree."""
    import torch

    from hwsearch.proxies._activations import relu_codes

    b = int(x.shape[0])
    k = torch.zeros((b, b), dtype=torch.float64)

    def add(code: torch.Tensor) -> None:
        # c cᵀ + (1 − c)(1 − c)ᵀ = 2 c cᵀ + units − s_i − s_j (s the row sums): one matmul, and in float32 while
        # the counts stay below 2^24 (exact integers), accumulated in float64
        units = code.shape[1]
        c = code.to(torch.float32 if units < 2**24 else torch.float64)
        s = c.sum(1, dtype=torch.float64)
        k.add_(2.0 * (c @ c.T).to(torch.float64) + units - s[:, None] - s[None, :])

    with relu_codes(model, add) as count, torch.no_grad():
        if count == 0:
            raise ValueError(f"{type(model).__name__} has no ReLU module (NASWOT reads ReLU codes; a functional "
                             f"relu cannot be seen)")
        model(x)
    return k


@register_proxy("naswot")
class NASWOT(Proxy):
    """log|det K| of the ReLU-code agreement kernel over the batch (Mellor et al.; NASLib `nwot`)."""

    data_free = False
    needs_labels = False
    higher_is_better = True
    summary = "log|det| of the B x B kernel of agreeing ReLU codes (Mellor et al. 2021), forward only"

    def score(self, model: nn.Module, batch: ProxyBatch) -> float:
        import torch

        k = naswot_kernel(model, batch.x)
        # a singular K (two samples with the same code on every unit, e.g. an NB201 cell whose output is cut
        # off from its input: every ReLU sees zeros) gives -inf, as the reference's numpy slogdet does: the
        # lowest score, not a failure
        return float(torch.linalg.slogdet(k)[1])
