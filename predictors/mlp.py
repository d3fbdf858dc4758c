"""LightNAS's MLP latency predictor (thesis §4.3.2): flat one-hot [L*K] -> 128 -> 64 -> 1, ReLU.

The thesis leaves loss, optimiser and target scaling open; we take the GNN chapter's Adam at lr 1e-3 with
cosine annealing to 0, MSE, and a standardised log(ms) target (predictors.common says why). It is the
predictor a gradient search differentiates: `torch_model()` maps a relaxed one-hot to ms.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from predictors.base import Constraint
from predictors.common import int_tuple
from predictors.nn import TorchPredictor
from predictors.registry import register_predictor
from spaces import SearchSpace


class MLPNet(nn.Module):
    """one-hot [B, D] -> hidden layers with ReLU -> [B]."""

    def __init__(self, d_in: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(d_in, width), nn.ReLU()]
            d_in = width
        layers.append(nn.Linear(d_in, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1)


@register_predictor("mlp")
class MLPPredictor(TorchPredictor):
    """LightNAS MLP; `hidden` defaults to the thesis' (128, 64)."""

    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **TorchPredictor._parameter_constraints, "hidden": int_tuple(1)}

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0,
                 epochs: int = 200, batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 0.0,
                 target: str = "log", hidden: tuple[int, ...] = (128, 64)) -> None:
        super().__init__(space=space, space_config=space_config, seed=seed, epochs=epochs,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay, target=target)
        self.hidden = hidden

    def _make_net(self, sp: SearchSpace) -> nn.Module:
        return MLPNet(sp.n_layers * sp.n_ops, tuple(self.hidden))
