"""Jacob_cov (Mellor et al.'s first NASWOT score, as in zero-cost-nas / NASLib `jacov`; spec §3.3 item 7):
J_i = ∂(Σ y)/∂x_i, the input gradient of the sum of the outputs, flattened per sample (one backward of
ones_like(y)); Σ_J = corrcoef(J) (B×B); score −Σ_i [log(λ_i + k) + 1/(λ_i + k)], k = 1e-5, over Σ_J's
eigenvalues. The survey's printed equation drops the log; the code's form is used. No labels. In train mode
BatchNorm couples the samples, so J_i is the gradient of the whole batch's output sum with respect to x_i, as
in the reference (one backward, not B per-sample ones)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwsearch.proxies import register_proxy
from hwsearch.proxies._grads import finite, inputs_of, preserved, require_batch
from hwsearch.proxies.base import Proxy

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from hwsearch.proxies.base import ProxyBatch


def jacob_cov_score(jacobian: np.ndarray, k: float = 1e-5) -> float:
    """−Σ[log(λ + k) + 1/(λ + k)] over the eigenvalues of corrcoef(rows of `jacobian`) [B, D]; a ValueError
    when the correlation is undefined (a sample whose input gradient is constant) or an eigenvalue is below −k."""
    import numpy as np

    jac = np.asarray(jacobian, dtype=np.float64).reshape(len(jacobian), -1)
    spread = jac.std(axis=1)
    if not np.all(spread > 0):
        raise ValueError(f"the input gradient of {int(np.sum(spread <= 0))} of {len(jac)} samples is constant "
                         f"(the output does not depend on the input): corrcoef is undefined")
    corr = np.corrcoef(jac)
    eig = np.linalg.eigvalsh((corr + corr.T) / 2)
    if np.any(eig + k <= 0):
        raise ValueError(f"the Jacobian correlation has eigenvalue {eig.min():.3g} <= -{k}: log undefined")
    return float(-np.sum(np.log(eig + k) + 1.0 / (eig + k)))


@register_proxy("jacob_cov")
class JacobCov(Proxy):
    """−Σ[log(λ + k) + 1/(λ + k)] of the per-sample input-gradient correlation (train mode; restored after)."""

    summary = "Jacob_cov: eigenvalues of the correlation of per-sample input gradients (B x B)"

    def __init__(self, k: float = 1e-5) -> None:
        self.k = float(k)

    def score(self, model: nn.Module, batch: ProxyBatch | None) -> float:
        import torch

        batch = require_batch(self.name, batch, labels=False)
        with preserved(model):
            x, _ = inputs_of(model, batch)
            x = x.clone().requires_grad_(True)
            y = model(x)
            (jac,) = torch.autograd.grad(y, x, grad_outputs=torch.ones_like(y), allow_unused=True)
        jac = torch.zeros_like(x) if jac is None else jac  # an output cut off from the input
        return finite(self.name, jacob_cov_score(jac.detach().cpu().double().numpy(), self.k))
