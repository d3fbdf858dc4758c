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

# How the members are blended on a target (HelpEnsemble.blend): per-target cross-validated, or meta-valid's.
BLENDS = ("loo", "fixed")


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

    `blend="loo"` (default) re-weights per target instead: at `adapt`, each member (and each view, below)
    is re-adapted leaving out one of up to `loo_folds` folds of the non-reference samples and scored on
    it; weights are proportional to 1 / mean squared log error. Why: a target unlike the source devices
    is exactly where weights fitted on meta-valid devices mislead (leave-one-device-out, phones held out:
    samsung_s7 rho 0.759 with fixed weights, 0.835 so). `no_reference_views`: also blend each additive
    member adapted on the samples alone, without the reference archs as samples (they stay its
    embedding); on some boards the reference archs, extremes of the latency range, bend a global
    op-cost fit away from the range the samples cover. `blend="fixed"` (the earlier behaviour), given
    `weights`, or fewer than `loo_min_samples` (8) non-reference samples: the meta-valid (or given) weights,
    no views. Why 8: at K = 5 the view (an op-cost table fitted on 5 samples) predicted its left-out
    samples well by chance and took 0.99 of the weight on titan_rtx_1 while ranking it at rho -0.58
    (benchmarks/fewshot_transfer.py, NB201 leave-one-device-out: K = 5 mean 0.913, worst 0.443 with the
    per-target blend; 0.945, 0.682 with the meta-valid weights), while from K = 10 the blend gains (K = 10
    mean 0.952 -> 0.954, samsung_s7 0.799 -> 0.825; a draw of 10 pool archs may hold a reference or two,
    which are never held out, hence 8 rather than 10).
    """

    kind: ClassVar[str] = "help-ensemble"
    _parameter_constraints: ClassVar = {
        "members": (lambda v: isinstance(v, list | tuple) and len(v) >= 1 and all(isinstance(m, Mapping) for m in v),
                    "a non-empty list of HelpPredictor parameter dicts"),
        "weights": (lambda v: v is None or (isinstance(v, list | tuple) and all(
            isinstance(w, int | float) and w >= 0 for w in v) and sum(v) > 0), "None or non-negative floats"),
        "blend": (lambda v: v in BLENDS, f"one of {BLENDS}"),
        "loo_folds": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 2, "an int >= 2"),
        "no_reference_views": (lambda v: isinstance(v, bool), "True or False"),
        "loo_min_samples": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 3, "an int >= 3"),
    }

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0,
                 reference: Sequence[str] | None = None, members: Sequence[Mapping[str, Any]] = (),
                 weights: Sequence[float] | None = None, blend: str = "loo", loo_folds: int = 10,
                 no_reference_views: bool = True, loo_min_samples: int = 8, verbose: bool = False):
        super().__init__(space=space, space_config=space_config, seed=seed)
        self.reference = reference
        self.members = members
        self.weights = weights
        self.blend = blend
        self.loo_folds = loo_folds
        self.no_reference_views = no_reference_views
        self.loo_min_samples = loo_min_samples
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
        for k in ("fitted_", "adapted_", "adapted_params_", "views_", "adapted_weights_"):
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
        """Adapt every member (see HelpPredictor.adapt) and, with `blend="loo"`, choose this target's
        weights by cross-validation on its samples (`adapted_weights_`, members then views)."""
        self.check_is_fitted()
        self._validate_params()
        arch_ids, y = list(arch_ids), np.asarray(y_ms, dtype=np.float64)
        refs = set(self.reference_ids())
        rest = [i for i, a in enumerate(arch_ids) if a not in refs]
        loo = self.blend == "loo" and self.weights is None and len(rest) >= self.loo_min_samples
        views = [self._view(m) for m in self.members_
                 if loo and self.no_reference_views and m.model == "additive" and m.adapt_on_reference]
        preds = [*self.members_, *views]
        if loo:
            err = self._fold_errors(preds, arch_ids, y, reference, rest)
            w = 1.0 / np.maximum(err, 1e-12)
        else:
            w = np.asarray(self.weights_, dtype=np.float64)
        for p in preds:
            p.adapt(arch_ids, y, reference)
        self.views_ = views
        self.adapted_weights_ = w / w.sum()
        self.n_target_samples_ = len(arch_ids)
        self.adapted_ = True
        self._log(f"[help-ensemble] target weights {np.round(self.adapted_weights_, 3).tolist()}")
        return self

    def _view(self, member: HelpPredictor) -> HelpPredictor:
        """A copy of `member` that adapts on the samples alone (reference archs only as its embedding)."""
        view = member.copy_sharing_features()
        view.adapt_on_reference = False
        self.share_features(view)
        return view

    def _fold_errors(self, preds: Sequence[HelpPredictor], arch_ids: list[str], y: np.ndarray,
                     reference: Mapping[str, float] | None, rest: list[int]) -> np.ndarray:
        """Mean squared log error of each predictor on held-out folds of the non-reference samples
        (leave-one-out up to `loo_folds` samples; reference archs among the samples are never held out)."""
        order = np.random.default_rng(self.seed).permutation(rest)
        folds = np.array_split(order, min(self.loo_folds, len(rest)))
        sq = np.zeros(len(preds))
        for fold in folds:
            held = set(fold.tolist())
            keep = [i for i in range(len(arch_ids)) if i not in held]
            for j, p in enumerate(preds):
                p.adapt([arch_ids[i] for i in keep], y[keep], reference)
                out = np.maximum(p.predict([arch_ids[i] for i in fold]), 1e-12)
                sq[j] += float(np.sum((np.log(out) - np.log(y[fold])) ** 2))
        return sq / len(rest)

    def predict(self, arch_ids: Sequence[str]) -> np.ndarray:
        """Weighted geometric mean of the members' (and views') latencies (ms)."""
        self.check_is_adapted()
        preds = [*self.members_, *getattr(self, "views_", [])]
        w = getattr(self, "adapted_weights_", self.weights_)
        logs = np.stack([np.log(np.maximum(p.predict(arch_ids), 1e-12)) for p in preds])
        return np.exp(w @ logs)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.check_is_fitted()
        arrays: dict[str, np.ndarray] = {}

        def flatten(preds: Sequence[HelpPredictor], tag: str) -> list[dict[str, Any]]:
            """Each predictor's arrays into `arrays` under "{tag}{i}.", its params and JSON state listed
            (what from_state's `rebuild` reads back)."""
            out = []
            for i, p in enumerate(preds):
                a, e = p.state()
                arrays.update({f"{tag}{i}.{k}": x for k, x in a.items()})
                out.append({"params": jsonable_params(p.get_params()), "extra": e})
            return out

        extras = flatten(self.members_, "m")
        adapted = bool(getattr(self, "adapted_", False))
        blend = ({"views": flatten(getattr(self, "views_", []), "v"),
                  "adapted_weights": self.adapted_weights_.tolist()} if adapted else {})
        return arrays, {"kind": self.kind, "weights": self.weights_.tolist(), "members": extras, **blend,
                        "target": {"transform": "weighted geometric mean of the members' ms"},
                        "valid_score": getattr(self, "valid_score_", None),
                        "adapted": adapted,
                        "n_target_samples": getattr(self, "n_target_samples_", 0)}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], extra: dict[str, Any]
                   ) -> HelpEnsemble:
        self = cls(**params)

        def rebuild(key: str, tag: str) -> list[HelpPredictor]:
            out = []
            for i, m in enumerate(extra.get(key, [])):
                prefix = f"{tag}{i}."
                sub = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
                out.append(HelpPredictor.from_state(m["params"], sub, m["extra"]))
                self.share_features(out[-1])
            return out

        self.members_ = rebuild("members", "m")
        self.weights_ = np.asarray(extra["weights"], dtype=np.float64)
        self.valid_score_ = extra.get("valid_score")
        self.fitted_ = True
        if extra.get("adapted"):
            self.views_ = rebuild("views", "v")
            # a folder saved before per-target weights: the meta-valid weights, no views
            self.adapted_weights_ = np.asarray(extra.get("adapted_weights", extra["weights"]), dtype=np.float64)
            if len(self.adapted_weights_) != len(self.members_) + len(self.views_):
                raise ValueError(f"adapted_weights has {len(self.adapted_weights_)} entries for "
                                 f"{len(self.members_)} members and {len(self.views_)} views")
            self.n_target_samples_ = int(extra.get("n_target_samples", 0))
            self.adapted_ = True
        return self


def _simplex_grid(n: int, steps: int) -> list[np.ndarray]:
    """Weight vectors of n non-negative entries summing to 1, in multiples of 1/steps."""
    return [np.array(c, dtype=np.float64) / steps for c in itertools.product(range(steps + 1), repeat=n)
            if sum(c) == steps]
