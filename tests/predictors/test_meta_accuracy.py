"""MetaAccuracyPredictor (Domino's MAML meta-accuracy predictor) on a synthetic family of tasks.

Each task's accuracy is a shared smooth function of the one-hot plus a task-specific linear tilt and
offset, the way a proxy task (ImageNet-tiny) and the target task (ImageNet) share the ranking of
architectures but not the numbers. Adapting with 10 target pairs must beat the meta-init as is.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from predictors.base import InvalidParameterError, NotFittedError
from predictors.meta_accuracy import MetaAccuracyPredictor
from spaces import create_space

SPACE = create_space("nb201")
_rng = np.random.default_rng(0)
IDS = [SPACE.arch_id(SPACE.from_index(int(i))) for i in _rng.choice(SPACE.size, 700, replace=False)]
X = np.stack([SPACE.to_onehot(SPACE.parse(a)) for a in IDS])
W, V = _rng.normal(0, 0.5, X.shape[1]), _rng.normal(0, 0.5, X.shape[1])
TRAIN, SUPPORT, HELD_OUT = slice(0, 400), slice(400, 410), slice(410, 700)
FAST = {"meta_iters": 150, "meta_batch": 4, "n_query": 40, "inner_lr": 0.1, "learn_inner_lr": True}


def task(seed: int) -> np.ndarray:
    r = np.random.default_rng(seed)
    return 70 + 5 * np.tanh(X @ W / 2) + r.normal(0, 1) * (X @ V) + r.normal(0, 3)


PROXY = {f"proxy{i}": (IDS[TRAIN], task(100 + i)[TRAIN]) for i in range(6)}
TARGET = task(999)


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - true) ** 2)))


@pytest.fixture(scope="module")
def meta() -> MetaAccuracyPredictor:
    return MetaAccuracyPredictor(**FAST).meta_fit(PROXY)


def test_adaptation_beats_the_meta_init_as_is(meta: MetaAccuracyPredictor) -> None:
    meta.__dict__.pop("adapted_", None)
    before = rmse(meta.predict(IDS[HELD_OUT]), TARGET[HELD_OUT])
    meta.adapt(list(zip(IDS[SUPPORT], TARGET[SUPPORT], strict=True)))
    after = rmse(meta.predict(IDS[HELD_OUT]), TARGET[HELD_OUT])
    assert after < 0.7 * before


def test_one_inner_step_with_a_fixed_rate_is_domino_and_also_adapts() -> None:
    pred = MetaAccuracyPredictor(**{**FAST, "learn_inner_lr": False}).meta_fit(PROXY)
    assert pred.inner_steps == 1
    before = rmse(pred.predict(IDS[HELD_OUT]), TARGET[HELD_OUT])
    pred.adapt(IDS[SUPPORT], TARGET[SUPPORT])
    assert rmse(pred.predict(IDS[HELD_OUT]), TARGET[HELD_OUT]) < before


def test_pairs_and_two_argument_forms_agree(meta: MetaAccuracyPredictor) -> None:
    a = meta.adapt(list(zip(IDS[SUPPORT], TARGET[SUPPORT], strict=True))).predict(IDS[HELD_OUT])
    b = meta.adapt(IDS[SUPPORT], TARGET[SUPPORT]).predict(IDS[HELD_OUT])
    np.testing.assert_array_equal(a, b)


def test_input_errors_are_clear(meta: MetaAccuracyPredictor) -> None:
    with pytest.raises(ValueError, match="need at least 2"):
        meta.adapt([(IDS[0], 70.0)])
    with pytest.raises(ValueError, match="pass \\[\\(arch id, accuracy\\)"):
        meta.adapt(IDS[:3])
    with pytest.raises(ValueError, match="finite"):
        meta.adapt(IDS[:3], [70.0, float("nan"), 71.0])
    with pytest.raises(ValueError, match="needs n_support"):
        MetaAccuracyPredictor(**FAST).meta_fit({"tiny": (IDS[:5], TARGET[:5])})
    with pytest.raises(NotFittedError, match="meta_fit"):
        MetaAccuracyPredictor().predict(IDS[:2])
    with pytest.raises(InvalidParameterError, match="inner_steps"):
        MetaAccuracyPredictor(inner_steps=-1).meta_fit(PROXY)


def test_state_round_trip(meta: MetaAccuracyPredictor) -> None:
    meta.adapt(IDS[SUPPORT], TARGET[SUPPORT])
    arrays, extra = meta.state()
    json.dumps(extra)
    assert all(isinstance(v, np.ndarray) and "/" not in k for k, v in arrays.items())
    back = MetaAccuracyPredictor.from_state(meta.get_params(), arrays, extra)
    np.testing.assert_allclose(back.predict(IDS[HELD_OUT]), meta.predict(IDS[HELD_OUT]), rtol=1e-6)
    assert MetaAccuracyPredictor.kind == "maml-acc"
