"""What every few-shot (meta-trained, then adapted) predictor shares: the base class, held-out tasks,
an encoding cache and the parameter checks.

Few-shot predictors are "fitted" (`check_is_fitted`, what saving needs) once meta-trained; `predict` also
needs `adapt` (`check_is_adapted`), except for the accuracy predictor, which answers with its meta-init
before. Meta-training touches the same archs again and again (every source device, every ensemble member,
every validation round), so features come from a `FeatureCache` that encodes each distinct arch once and
that an ensemble shares with its members.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np

from predictors.base import LatencyPredictor, NotFittedError
from predictors.metrics import spearman
from spaces import SearchSpace


class NotAdaptedError(NotFittedError):
    """Meta-trained but not adapted to a target yet, so it cannot predict: a NotFittedError for library
    callers; the commands turn it into advice to run `edgeprof adapt` (`predictors.evaluation`)."""


class FewShotTask(NamedTuple):
    """A held-out task for model selection: adapt on the support, score Spearman on the query."""

    support_ids: Sequence[str]
    support_y: np.ndarray
    query_ids: Sequence[str]
    query_y: np.ndarray
    reference: Mapping[str, float] | None = None


class FeatureCache:
    """One-hot rows of a space's archs, each arch parsed and encoded once (parsing costs ~20 µs an arch,
    and meta-training an ensemble on four 15,625-arch devices asked for 140k encodings)."""

    def __init__(self, space: SearchSpace, key: tuple[str, str]) -> None:
        self.space = space
        self.key = key
        self.rows: dict[str, int] = {}
        self.table = np.zeros((0, space.n_layers * space.n_ops), dtype=np.float32)

    def encode(self, arch_ids: Sequence[str]) -> np.ndarray:
        """[N, L*K] float32 one-hot of `arch_ids` (validated by the space on first sight)."""
        new = [a for a in dict.fromkeys(arch_ids) if a not in self.rows]
        if new:
            sp = self.space
            enc = np.stack([sp.to_onehot(sp.parse(a)) for a in new]).astype(np.float32)
            base = len(self.rows)
            self.rows.update((a, base + i) for i, a in enumerate(new))
            self.table = np.concatenate([self.table, enc])
        return self.table[[self.rows[a] for a in arch_ids]]


class FewShotPredictor(LatencyPredictor):
    """`meta_fit(tasks)` once across source tasks, then `adapt(...)` per target, then `predict`.

    `fit` is not offered: a few-shot predictor needs source tasks first, and folding both steps into one
    call would hide which data the target contributed (published figures depend on it).
    """

    kind: ClassVar[str] = "few-shot"

    def fit(self, arch_ids: Sequence[str], y_ms: np.ndarray) -> FewShotPredictor:
        raise NotImplementedError(f"{type(self).__name__} is few-shot: call meta_fit(tasks) on source tasks, "
                                  f"then adapt(...) with the target's samples")

    def check_is_fitted(self) -> None:
        """Meta-trained (what `io.save_predictor` needs: a meta-trained predictor is worth storing)."""
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"This {type(self).__name__} is not meta-trained yet; call meta_fit() first.")

    def check_is_adapted(self) -> None:
        self.check_is_fitted()
        if not getattr(self, "adapted_", False):
            raise NotAdaptedError(f"This {type(self).__name__} is not adapted to a target yet; call adapt() first.")

    def features(self) -> FeatureCache:
        """This predictor's encoding cache (rebuilt when the space or its config changed)."""
        key = (self.space, json.dumps(self.space_config or {}, sort_keys=True))
        cache = self.__dict__.get("_features")
        if cache is None or cache.key != key:
            cache = self._features = FeatureCache(self.space_obj(), key)
        return cache

    def copy_sharing_features(self) -> FewShotPredictor:
        """A deep copy that shares this predictor's encoding cache (append-only, keyed by space): copying the
        meta-trained weights is cheap, copying a 15,625-arch one-hot table per copy is not needed. What
        leave-one-out re-adaptation, an ensemble's views and acquisition's reference-only adaptation copy."""
        cache = self.__dict__.get("_features")
        return copy.deepcopy(self, memo={} if cache is None else {id(cache): cache})

    def share_features(self, other: FewShotPredictor) -> None:
        """Let `other` (an ensemble member of the same space) use this predictor's encoding cache."""
        other._features = self.features()

    def encode(self, arch_ids: Sequence[str]) -> np.ndarray:
        return self.features().encode(list(arch_ids))

    def _log(self, msg: str) -> None:
        if getattr(self, "verbose", False):
            print(msg, file=sys.stderr, flush=True)


def rank_score(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rho, 0 where it is undefined (a constant prediction ranks nothing)."""
    r = spearman(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return 0.0 if math.isnan(r) else r


def is_pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def is_nonneg_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def is_pos_float(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def is_hidden(v: Any) -> bool:
    return isinstance(v, list | tuple) and all(is_pos_int(w) for w in v)
