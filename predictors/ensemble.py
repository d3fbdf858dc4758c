"""A deep ensemble of LightNAS MLPs, kind "mlp-ensemble": K MLPs (seeds seed..seed+K-1), each fitted on a
bootstrap resample of the training archs, predicting their mean; their spread says where they disagree.

Why (issue 16, open loop): LightNAS lands on its target by the predictor, so what it returns is off by the
predictor's error exactly where the search went. Averaging K members lowers that error, and where the members
disagree the mean is least trustworthy: `disagreement` (std/mean of the members, relative) is what the search's
final pick penalises (`hwsearch.cost.refine_arch`, `refine_kappa`). `torch_model()` is differentiable through
the mean, so the α-gradient of a search sees the ensemble as one predictor; `member_predictions` gives every
member's ms for the pick. Saved like any predictor (`predictors.io`): member i's weights as `m{i}.net.*`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from predictors.base import Constraint, check_targets
from predictors.mlp import MLPPredictor
from predictors.nn import LatencyHead, forget_fit
from predictors.registry import register_predictor


class EnsembleHead(nn.Module):
    """one-hot [B, L*K] -> the members' mean ms [B] (differentiable); `member_predictions` -> [K, B]."""

    def __init__(self, heads: Sequence[LatencyHead]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def member_predictions(self, onehot: torch.Tensor) -> torch.Tensor:
        return torch.stack([h(onehot) for h in self.heads])

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return self.member_predictions(onehot).mean(0)


def relative_spread(members: np.ndarray) -> np.ndarray:
    """Disagreement of member predictions [K, N]: their std over their mean, per arch (pure)."""
    members = np.asarray(members, dtype=np.float64)
    return members.std(axis=0) / np.abs(members.mean(axis=0))


@register_predictor("mlp-ensemble")
class MLPEnsemble(MLPPredictor):
    """`members` LightNAS MLPs (the MLP's hyper-parameters; member i seeded seed + i), each trained on a
    bootstrap resample of the archs (`bootstrap`; False: all members see every arch and differ by seed
    only). Predicts the members' mean in ms. Default 5 members: the ensemble's error and the rank
    correlation of its disagreement with the error were measured at K = 5."""

    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **MLPPredictor._parameter_constraints,
        "members": ((lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2),
                    "an int >= 2 (one member has no disagreement)"),
        "bootstrap": ((lambda v: isinstance(v, bool)), "a bool"),
    }

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0,
                 epochs: int = 200, batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 0.0,
                 target: str = "log", hidden: tuple[int, ...] = (128, 64), members: int = 5,
                 bootstrap: bool = True) -> None:
        super().__init__(space=space, space_config=space_config, seed=seed, epochs=epochs,
                         batch_size=batch_size, lr=lr, weight_decay=weight_decay, target=target, hidden=hidden)
        self.members = members
        self.bootstrap = bootstrap

    def _member(self, i: int) -> MLPPredictor:
        p = {k: getattr(self, k) for k in MLPPredictor._param_names()}
        return MLPPredictor(**{**p, "seed": self.seed + i})

    def fit(self, arch_ids: Sequence[str], y_ms: np.ndarray,
            on_epoch: Callable[[int, int, float], None] | None = None) -> MLPEnsemble:
        """Fit every member from scratch; `on_epoch(done, total, loss)` counts all members' epochs."""
        self._validate()
        forget_fit(self)
        y = check_targets(arch_ids, y_ms, allow_zero=self.target == "linear")
        ids = list(arch_ids)
        rng = np.random.default_rng(self.seed)
        total = self.members * self.epochs
        fitted = []
        for i in range(self.members):
            rows = rng.integers(0, len(ids), len(ids)) if self.bootstrap else np.arange(len(ids))

            def step(done: int, _n: int, loss: float, base: int = i * self.epochs) -> None:
                if on_epoch is not None:
                    on_epoch(base + done, total, loss)
            fitted.append(self._member(i).fit([ids[r] for r in rows], y[rows], on_epoch=step))
        self.members_ = fitted
        self.n_train_ = len(y)
        self.train_archs_ = sorted(set(ids))  # what refine's trust region measures distance to
        self.loss_history_ = [float(np.mean([m.loss_history_[-1] for m in fitted]))]
        self.fitted_ = True
        return self

    def member_predictions_onehot(self, onehot: np.ndarray | torch.Tensor) -> np.ndarray:
        """Every member's ms for pre-encoded archs: [members, N]."""
        self.check_is_fitted()
        return np.stack([m.predict_onehot(onehot) for m in self.members_])

    def member_predictions(self, arch_ids: Sequence[str]) -> np.ndarray:
        """Every member's ms for the archs: [members, N]."""
        self.check_is_fitted()
        if len(arch_ids) == 0:
            return np.empty((len(self.members_), 0))
        return self.member_predictions_onehot(self.encode(arch_ids))

    def disagreement(self, arch_ids: Sequence[str]) -> np.ndarray:
        """Std over mean of the members' ms, per arch (0: they agree)."""
        return relative_spread(self.member_predictions(arch_ids))

    def predict_onehot(self, onehot: np.ndarray | torch.Tensor) -> np.ndarray:
        return self.member_predictions_onehot(onehot).mean(axis=0)

    def torch_model(self) -> EnsembleHead:
        """Copies of the members' nets as one module: one-hot [B, L*K] -> mean ms [B], in eval mode."""
        self.check_is_fitted()
        return EnsembleHead([m.torch_model() for m in self.members_]).eval()

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.check_is_fitted()
        arrays: dict[str, np.ndarray] = {}
        extras = []
        for i, m in enumerate(self.members_):
            a, e = m.state()
            arrays.update({f"m{i}.{k}": v for k, v in a.items()})
            extras.append(e)
        return arrays, {"members": extras, "n_train": self.n_train_}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], extra: dict[str, Any]
                   ) -> MLPEnsemble:
        pred = cls(**params)
        pred._validate()
        saved = extra["members"]
        if len(saved) != pred.members:
            raise ValueError(f"{len(saved)} saved members for members={pred.members}")
        members = []
        for i, e in enumerate(saved):
            own = {k[len(f"m{i}."):]: v for k, v in arrays.items() if k.startswith(f"m{i}.")}
            members.append(MLPPredictor.from_state(pred._member(i).get_params(), own, e))
        pred.members_ = members
        pred.n_train_ = int(extra.get("n_train", 0))
        pred.loss_history_ = [float(np.mean([m.loss_history_[-1] for m in members if m.loss_history_] or [0.0]))]
        pred.fitted_ = True
        return pred
