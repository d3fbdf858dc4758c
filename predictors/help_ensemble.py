"""The HELP ensemble, kind "help-ensemble": several `HelpPredictor`s meta-trained apart and blended, and the
default members per space (what `edgeprof train meta` and the HELP benchmarks build)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from predictors.base import InvalidParameterError
from predictors.common import jsonable_params
from predictors.fewshot import FewShotTask, rank_score
from predictors.hardware_adaptive import HardwareAdaptivePredictor, Tasks
from predictors.help import HelpPredictor
from predictors.registry import register_predictor

# Members of the default HelpEnsemble per space, chosen on HELP's meta-valid devices (benchmarks/help_*.py).
# The MLP member is HelpPredictor's default (Meta-SGD, 5 inner steps, log target); the additive member is
# an op-cost table V[op] shared by all edges (rank 1), solved exactly by one Gauss-Newton step with a wide
# prior (100), on raw latency, where a sum of op costs is what a device computes. On FBNet, whose test
# devices are sums of per-layer tables with 198 entries, the additive member alone got rho 0.88 and 0.1 of
# the weight on meta-valid, lowering the blend; three MLPs blend best there.
MLP_MEMBER: dict[str, Any] = {"meta_iters": 1000}
ADDITIVE_MEMBER: dict[str, Any] = {"model": "additive", "hidden": [], "rank": 1, "inner": "gauss-newton",
                                   "inner_steps": 1, "inner_lr": 100.0, "adapt_params": ["V", "b"],
                                   "target": "raw", "meta_iters": 300}
DEFAULT_MEMBERS: dict[str, list[dict[str, Any]]] = {
    "nb201": [MLP_MEMBER, MLP_MEMBER, ADDITIVE_MEMBER],
    "fbnet": [MLP_MEMBER, MLP_MEMBER, MLP_MEMBER],
}


def default_members(space: str) -> list[dict[str, Any]]:
    """The ensemble members for `space` (three MLP members where no choice was measured)."""
    return [dict(m) for m in DEFAULT_MEMBERS.get(space, [MLP_MEMBER] * 3)]


@register_predictor("help-ensemble")
class HelpEnsemble(HardwareAdaptivePredictor):
    """Several `HelpPredictor`s meta-trained apart and blended: prediction = exp(sum_i w_i log ms_i).

    Why: members with different inductive biases fail on different devices (an additive op-cost model is
    exact where latency is a sum of op costs, an MLP catches interactions and what the embedding says),
    and their errors partly cancel. `members` are HelpPredictor parameter dicts (space, reference and
    seed come from the ensemble; member i gets seed + i). `weights` None: chosen on the meta-valid
    tasks (grid over the simplex, step 0.05), else equal weights when meta_fit gets no valid tasks.
    """

    kind: ClassVar[str] = "help-ensemble"
    _parameter_constraints: ClassVar = {
        "members": (lambda v: isinstance(v, list | tuple) and len(v) >= 1 and all(isinstance(m, Mapping) for m in v),
                    "a non-empty list of HelpPredictor parameter dicts"),
        "weights": (lambda v: v is None or (isinstance(v, list | tuple) and all(
            isinstance(w, int | float) and w >= 0 for w in v) and sum(v) > 0), "None or non-negative floats"),
    }

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0,
                 reference: Sequence[str] | None = None, members: Sequence[Mapping[str, Any]] = (),
                 weights: Sequence[float] | None = None, verbose: bool = False):
        super().__init__(space=space, space_config=space_config, seed=seed)
        self.reference = reference
        self.members = members
        self.weights = weights
        self.verbose = verbose

    def _member(self, i: int) -> HelpPredictor:
        shared = {"space": self.space, "space_config": self.space_config, "reference": self.reference,
                  "seed": self.seed + i, "verbose": self.verbose}
        clash = sorted(set(shared) & set(self.members[i]) - {"verbose"})
        if clash:
            raise InvalidParameterError(f"member {i} sets {clash}; the ensemble sets those")
        return HelpPredictor(**{**shared, **dict(self.members[i])})

    def meta_fit(self, tasks: Tasks, valid: Mapping[str, FewShotTask] | None = None,
                 on_iter: Callable[[int, int], None] | None = None) -> HelpEnsemble:
        """Meta-train every member; `on_iter(done, total)` counts the members' iterations together."""
        self._validate_params()
        for k in ("fitted_", "adapted_", "adapted_params_"):
            self.__dict__.pop(k, None)
        self.valid_score_: float | None = None
        if self.weights is not None and len(self.weights) != len(self.members):
            raise InvalidParameterError(f"weights has {len(self.weights)} entries for {len(self.members)} members")
        members = [self._member(i) for i in range(len(self.members))]
        for m in members:
            self.share_features(m)  # the members see the same archs: encode each once
        total, done = sum(m.meta_iters for m in members), 0
        self.members_ = []
        for m in members:
            def step(k: int, _n: int, base: int = done) -> None:
                if on_iter is not None:
                    on_iter(base + k, total)
            self.members_.append(m.meta_fit(tasks, valid, on_iter=step))
            done += m.meta_iters
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)
        elif valid:
            w = self._choose_weights(valid)  # sets valid_score_
        else:
            w = np.ones(len(self.members))
        self.weights_ = w / w.sum()
        self.fitted_ = True
        self._log(f"[help-ensemble] weights {np.round(self.weights_, 3).tolist()}")
        return self

    def _choose_weights(self, valid: Mapping[str, FewShotTask]) -> np.ndarray:
        logs = []  # per task: [members, query] log predictions
        for t in valid.values():
            logs.append(np.stack([np.log(m.adapt(t.support_ids, t.support_y, t.reference).predict(t.query_ids))
                                  for m in self.members_]))
        for m in self.members_:
            m.__dict__.pop("adapted_", None)
        best, best_w = -math.inf, np.ones(len(self.members_))
        for w in _simplex_grid(len(self.members_), 20):
            score = float(np.mean([rank_score(w @ lg, t.query_y) for lg, t in zip(logs, valid.values(), strict=True)]))
            if score > best + 1e-9:
                best, best_w = score, w
        self.valid_score_ = best
        return best_w

    def adapt(self, arch_ids: Sequence[str], y_ms: np.ndarray,
              reference: Mapping[str, float] | None = None) -> HelpEnsemble:
        """Adapt every member (see HelpPredictor.adapt)."""
        self.check_is_fitted()
        for m in self.members_:
            m.adapt(arch_ids, y_ms, reference)
        self.n_target_samples_ = len(arch_ids)
        self.adapted_ = True
        return self

    def predict(self, arch_ids: Sequence[str]) -> np.ndarray:
        """Weighted geometric mean of the members' latencies (ms)."""
        self.check_is_adapted()
        logs = np.stack([np.log(np.maximum(m.predict(arch_ids), 1e-12)) for m in self.members_])
        return np.exp(self.weights_ @ logs)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.check_is_fitted()
        arrays: dict[str, np.ndarray] = {}
        extras = []
        for i, m in enumerate(self.members_):
            a, e = m.state()
            arrays.update({f"m{i}.{k}": v for k, v in a.items()})
            extras.append({"params": jsonable_params(m.get_params()), "extra": e})
        return arrays, {"kind": self.kind, "weights": self.weights_.tolist(), "members": extras,
                        "target": {"transform": "weighted geometric mean of the members' ms"},
                        "valid_score": getattr(self, "valid_score_", None),
                        "adapted": bool(getattr(self, "adapted_", False)),
                        "n_target_samples": getattr(self, "n_target_samples_", 0)}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], extra: dict[str, Any]
                   ) -> HelpEnsemble:
        self = cls(**params)
        self.members_ = []
        for i, m in enumerate(extra["members"]):
            prefix = f"m{i}."
            sub = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            self.members_.append(HelpPredictor.from_state(m["params"], sub, m["extra"]))
            self.share_features(self.members_[-1])
        self.weights_ = np.asarray(extra["weights"], dtype=np.float64)
        self.valid_score_ = extra.get("valid_score")
        self.fitted_ = True
        if extra.get("adapted"):
            self.n_target_samples_ = int(extra.get("n_target_samples", 0))
            self.adapted_ = True
        return self


def _simplex_grid(n: int, steps: int) -> list[np.ndarray]:
    """Weight vectors of n non-negative entries summing to 1, in multiples of 1/steps."""
    return [np.array(c, dtype=np.float64) / steps for c in itertools.product(range(steps + 1), repeat=n)
            if sum(c) == steps]
