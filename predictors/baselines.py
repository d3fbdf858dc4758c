"""Baseline predictors the learned ones are measured against: FLOPs, params, a per-layer LUT and GBDT.

- `flops` / `params`: latency as a linear function of one cost count (HELP's "FLOPs" row). Counts come
  from the space's own counter, run on the meta device (shapes only, about 4x faster than a real forward)
  and cached per arch, so only the archs actually used are ever counted.
- `lut`: the additive per-layer model of FBNet/ProxylessNAS-style lookup tables: y ≈ b + Σ_l w[l, op_l],
  fitted by least squares on the one-hot. `offset_ms_` is b, the part no layer choice explains (the
  thesis' LUT shows such an offset against end-to-end latency, ch. 4 §2.1).
- `gbdt`: scikit-learn's GradientBoostingRegressor on the one-hot. It is persisted as arrays (tree
  structure, thresholds, leaf values, init value, learning rate), never pickled, and predicts from those
  arrays with numpy, so a loaded predictor needs neither pickle nor scikit-learn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import torch

from predictors.base import Constraint, check_targets
from predictors.common import (
    SPACE_CONSTRAINTS,
    TARGETS,
    SupervisedPredictor,
    TargetScaler,
    float_above,
    float_in,
    int_at_least,
    one_of,
)
from predictors.nn import forget_fit
from predictors.registry import register_predictor
from spaces import count_costs, create_space

COST_KEYS: tuple[str, ...] = ("flops", "params", "mem_access", "intensity")


@lru_cache(maxsize=65536)
def _arch_costs(space: str, config_json: str, arch_id: str) -> tuple[float, ...]:
    sp = create_space(space, **json.loads(config_json))
    arch = sp.parse(arch_id)
    try:
        with torch.device("meta"):
            costs = count_costs(sp._make_module(arch), sp.input_shape_of(arch, 1))
    except (RuntimeError, NotImplementedError):  # an op without a meta kernel: count for real
        costs = sp.costs(arch)
    return tuple(float(costs[k]) for k in COST_KEYS)


def arch_costs(space: str, space_config: dict[str, Any] | None, arch_id: str) -> dict[str, float]:
    """The space's cost counts (batch 1) of one arch id, cached per (space, config, arch)."""
    config = json.dumps(create_space(space, **(space_config or {})).config, sort_keys=True)
    return dict(zip(COST_KEYS, _arch_costs(space, config, arch_id), strict=True))


class _CostPredictor(SupervisedPredictor):
    """ms = a + b * cost: ordinary least squares on one cost count."""

    cost: ClassVar[str] = "flops"
    _parameter_constraints: ClassVar[dict[str, Constraint]] = dict(SPACE_CONSTRAINTS)

    def _x(self, arch_ids: Sequence[str]) -> np.ndarray:
        sp = self.space_obj()
        for a in arch_ids:
            sp.parse(a)  # InvalidArchError naming the bad part, before any counting
        return np.array([arch_costs(self.space, self.space_config, a)[self.cost] for a in arch_ids])

    def fit(self, arch_ids: Sequence[str], y_ms: np.ndarray) -> _CostPredictor:
        self._validate()
        forget_fit(self)
        y = check_targets(arch_ids, y_ms)
        x = self._x(arch_ids)
        scale = float(np.max(np.abs(x))) or 1.0  # counts reach 1e9: solve on a unit scale
        design = np.column_stack([np.ones_like(x), x / scale])
        (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
        self.coef_ = np.array([a, b / scale])
        self.fitted_ = True
        return self

    def predict(self, arch_ids: Sequence[str]) -> np.ndarray:
        self.check_is_fitted()
        return self.coef_[0] + self.coef_[1] * self._x(arch_ids)

    def feature_spec(self) -> dict[str, Any]:
        return {"encoding": "costs", "cost": self.cost, "length": 1, "counter": "spaces.costs (batch 1)"}

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.check_is_fitted()
        return {"coef": self.coef_.copy()}, {"cost": self.cost, "model": "ms = coef[0] + coef[1] * cost"}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], extra: dict[str, Any]
                   ) -> _CostPredictor:
        pred = cls(**params)
        pred._validate()
        pred.coef_ = np.asarray(arrays["coef"], dtype=np.float64).reshape(2)
        pred.fitted_ = True
        return pred


@register_predictor("flops")
class FlopsPredictor(_CostPredictor):
    """Latency linear in FLOPs (multiply-accumulates)."""

    cost = "flops"


@register_predictor("params")
class ParamsPredictor(_CostPredictor):
    """Latency linear in the parameter count."""

    cost = "params"


@register_predictor("lut")
class LUTPredictor(SupervisedPredictor):
    """Additive per-(layer, op) table plus an offset, fitted by least squares on the one-hot.

    The one-hot of each layer sums to 1, so the table is defined up to a constant per layer; we report it
    with the cheapest op of every layer at 0, which makes `offset_ms_` the predicted latency of the arch
    with the cheapest op everywhere. A (layer, op) never seen in training gets its layer's mean entry.
    Being linear in ms, it can predict <= 0 ms far from its training data (no clipping: a baseline).
    """

    _parameter_constraints: ClassVar[dict[str, Constraint]] = dict(SPACE_CONSTRAINTS)

    def fit(self, arch_ids: Sequence[str], y_ms: np.ndarray) -> LUTPredictor:
        self._validate()
        forget_fit(self)
        y = check_targets(arch_ids, y_ms)
        sp = self.space_obj()
        x = self.encode(arch_ids).astype(np.float64)
        coef, *_ = np.linalg.lstsq(np.column_stack([np.ones(len(x)), x]), y, rcond=None)
        table = coef[1:].reshape(sp.n_layers, sp.n_ops)
        seen = x.sum(axis=0).reshape(sp.n_layers, sp.n_ops) > 0
        for layer in range(sp.n_layers):
            if seen[layer].any():
                table[layer, ~seen[layer]] = table[layer, seen[layer]].mean()
        shift = table.min(axis=1)
        self.table_ms_ = table - shift[:, None]
        self.offset_ms_ = float(coef[0] + shift.sum())
        self.unseen_ = int((~seen).sum())
        self.fitted_ = True
        return self

    def predict(self, arch_ids: Sequence[str]) -> np.ndarray:
        self.check_is_fitted()
        if len(arch_ids) == 0:
            return np.empty(0)
        return self.offset_ms_ + self.encode(arch_ids).astype(np.float64) @ self.table_ms_.reshape(-1)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.check_is_fitted()
        return ({"table_ms": self.table_ms_.copy(), "offset_ms": np.array([self.offset_ms_])},
                {"offset_ms": self.offset_ms_, "unseen": self.unseen_})

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], extra: dict[str, Any]
                   ) -> LUTPredictor:
        pred = cls(**params)
        pred._validate()
        sp = pred.space_obj()
        pred.table_ms_ = np.asarray(arrays["table_ms"], dtype=np.float64).reshape(sp.n_layers, sp.n_ops)
        pred.offset_ms_ = float(np.asarray(arrays["offset_ms"]).reshape(-1)[0])
        pred.unseen_ = int(extra.get("unseen", 0))
        pred.fitted_ = True
        return pred


def export_gbdt(est: Any) -> dict[str, np.ndarray]:
    """A fitted GradientBoostingRegressor (squared error) as flat arrays: every tree's nodes concatenated.

    Child indices are global (offset per tree), -1 marks a leaf; `roots` holds each tree's first node.
    """
    left, right, feature, threshold, value, roots = [], [], [], [], [], []
    offset = 0
    for stage in est.estimators_[:, 0]:
        tree = stage.tree_
        lc, rc = tree.children_left.astype(np.int64), tree.children_right.astype(np.int64)
        left.append(np.where(lc < 0, -1, lc + offset))
        right.append(np.where(rc < 0, -1, rc + offset))
        feature.append(tree.feature.astype(np.int64))
        threshold.append(tree.threshold.astype(np.float64))
        value.append(tree.value[:, 0, 0].astype(np.float64))
        roots.append(offset)
        offset += tree.node_count
    init = np.asarray(est.init_.constant_, dtype=np.float64).reshape(-1)[:1]
    return {"left": np.concatenate(left), "right": np.concatenate(right), "feature": np.concatenate(feature),
            "threshold": np.concatenate(threshold), "value": np.concatenate(value),
            "roots": np.asarray(roots, dtype=np.int64), "init": init,
            "learning_rate": np.array([float(est.learning_rate)])}


def predict_gbdt(arrays: dict[str, np.ndarray], x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Raw GBDT output from exported arrays, summed stage by stage in scikit-learn's order (so equal)."""
    left, right, feature = arrays["left"], arrays["right"], arrays["feature"]
    threshold, value, roots = arrays["threshold"], arrays["value"], arrays["roots"]
    lr, init = float(arrays["learning_rate"][0]), float(arrays["init"][0])
    x = np.asarray(x, dtype=np.float32)  # scikit-learn compares float32 features with float64 thresholds
    out = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), chunk):
        xb = x[start:start + chunk]
        rows = np.arange(len(xb))[:, None]
        node = np.broadcast_to(roots, (len(xb), len(roots))).copy()
        while True:
            nxt = left[node]
            inner = nxt >= 0
            if not inner.any():
                break
            go_left = xb[rows, np.where(inner, feature[node], 0)] <= threshold[node]
            node = np.where(inner, np.where(go_left, nxt, right[node]), node)
        leaf = value[node]
        raw = np.full(len(xb), init)
        for t in range(leaf.shape[1]):
            raw += lr * leaf[:, t]
        out[start:start + chunk] = raw
    return out


@register_predictor("gbdt")
class GBDTPredictor(SupervisedPredictor):
    """Gradient-boosted trees on the one-hot (squared error on the standardised target)."""

    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **SPACE_CONSTRAINTS, "n_estimators": int_at_least(1), "learning_rate": float_above(0.0),
        "max_depth": int_at_least(1), "subsample": float_in(0.0, 1.0), "target": one_of(*TARGETS)}

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0,
                 n_estimators: int = 500, learning_rate: float = 0.1, max_depth: int = 4,
                 subsample: float = 1.0, target: str = "log") -> None:
        super().__init__(space=space, space_config=space_config, seed=seed)
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.target = target

    def fit(self, arch_ids: Sequence[str], y_ms: np.ndarray) -> GBDTPredictor:
        from sklearn.ensemble import GradientBoostingRegressor  # only fitting needs scikit-learn

        self._validate()
        forget_fit(self)
        y = check_targets(arch_ids, y_ms)
        scaler = TargetScaler.fit(self.target, y)
        est = GradientBoostingRegressor(loss="squared_error", n_estimators=self.n_estimators,
                                        learning_rate=self.learning_rate, max_depth=self.max_depth,
                                        subsample=self.subsample, random_state=self.seed)
        est.fit(self.encode(arch_ids), scaler.apply(y))
        self.estimator_ = est  # kept for inspection; predict() uses the exported arrays
        self.trees_ = export_gbdt(est)
        self.scaler_ = scaler
        self.fitted_ = True
        return self

    def predict(self, arch_ids: Sequence[str]) -> np.ndarray:
        self.check_is_fitted()
        if len(arch_ids) == 0:
            return np.empty(0)
        return self.scaler_.invert(predict_gbdt(self.trees_, self.encode(arch_ids)))

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.check_is_fitted()
        return ({f"tree.{k}": v.copy() for k, v in self.trees_.items()},
                {"target": self.scaler_.to_json(), "n_trees": len(self.trees_["roots"])})

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], extra: dict[str, Any]
                   ) -> GBDTPredictor:
        pred = cls(**params)
        pred._validate()
        keys = ("left", "right", "feature", "threshold", "value", "roots", "init", "learning_rate")
        missing = [k for k in keys if f"tree.{k}" not in arrays]
        if missing:
            raise ValueError(f"GBDTPredictor: saved state lacks tree arrays {', '.join(missing)}")
        pred.trees_ = {k: np.asarray(arrays[f"tree.{k}"]) for k in keys}
        pred.scaler_ = TargetScaler.from_json(extra["target"])
        pred.fitted_ = True
        return pred
