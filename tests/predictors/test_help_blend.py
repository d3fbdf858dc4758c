"""HelpEnsemble's per-target blend (blend="loo"): cross-validated weights on the target's samples and the
additive members' reference-free views, their fallbacks, parameters and persistence.

Synthetic devices as in test_meta_help: latency = scale * (c0 + sum over edges of w_e * cost[op_e]), 2% noise.
The "odd" target is such a device whose reference archs run off the op-cost model (x0.35..x3): what a board
unlike the sources does to a global op-cost fit that takes the references as samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from predictors import io
from predictors.base import InvalidParameterError
from predictors.hardware_adaptive import HELP_NB201_REFERENCE
from predictors.help_ensemble import HelpEnsemble
from predictors.metrics import spearman
from spaces import create_space

SPACE = create_space("nb201")
REFS = [SPACE.arch_id(SPACE.from_index(i)) for i in HELP_NB201_REFERENCE]
_idx = [int(i) for i in np.random.default_rng(1).choice(SPACE.size, 400, replace=False)
        if int(i) not in HELP_NB201_REFERENCE]
POOL = [SPACE.arch_id(SPACE.from_index(i)) for i in _idx[:200]]
QUERY = [SPACE.arch_id(SPACE.from_index(i)) for i in _idx[200:350]]
MLP = {"hidden": (16,), "meta_iters": 20, "meta_batch": 2, "n_query": 32, "inner_steps": 1, "valid_every": 10}
ADDITIVE = {"model": "additive", "hidden": (), "rank": 1, "inner": "gauss-newton", "inner_steps": 1,
            "inner_lr": 100.0, "adapt_params": ["V", "b"], "target": "raw", "meta_iters": 20, "valid_every": 10}


def device(seed: int, ref_distortion: float = 0.0) -> dict[str, float]:
    r = np.random.default_rng(seed)
    cost = np.array([0.02, 0.2, 1.0, 3.0, 0.6]) * np.exp(r.normal(0, 0.4, 5))
    edge = 1 + 0.1 * r.normal(size=6)
    scale, c0 = 10 ** r.uniform(0, 2), r.uniform(0.5, 2)
    out = {a: scale * (c0 + float(edge @ cost[np.asarray(SPACE.parse(a))])) * float(np.exp(r.normal(0, 0.02)))
           for a in POOL + QUERY + REFS}
    for a in REFS:
        out[a] *= float(np.exp(r.uniform(-ref_distortion, ref_distortion)))
    return out


SOURCES = {f"src{i}": device(i) for i in range(4)}
ODD = device(100, ref_distortion=1.1)


@pytest.fixture(scope="module")
def ens() -> HelpEnsemble:
    ids = POOL + REFS
    tasks = {d: (ids, np.array([lat[a] for a in ids])) for d, lat in SOURCES.items()}
    return HelpEnsemble(reference=REFS, members=[MLP, ADDITIVE]).meta_fit(tasks)


def adapt(pred: HelpEnsemble, k: int = 10, target: dict[str, float] = ODD) -> HelpEnsemble:
    support = POOL[:k]
    return pred.adapt(support, np.array([target[a] for a in support]), reference={a: target[a] for a in REFS})


def rho(pred: HelpEnsemble, target: dict[str, float] = ODD) -> float:
    return spearman(pred.predict(QUERY), np.array([target[a] for a in QUERY]))


def test_loo_blend_weights_the_reference_free_view_up_on_an_odd_board(ens: HelpEnsemble) -> None:
    ens.set_params(blend="fixed")
    fixed = rho(adapt(ens))
    assert ens.views_ == [] and np.allclose(ens.adapted_weights_, ens.weights_)
    ens.set_params(blend="loo")
    loo = rho(adapt(ens))
    assert len(ens.views_) == 1 and not ens.views_[0].adapt_on_reference
    assert len(ens.adapted_weights_) == 3 and ens.adapted_weights_.sum() == pytest.approx(1.0)
    assert int(np.argmax(ens.adapted_weights_)) == 2  # the view fits the samples' range best
    assert loo > fixed + 0.02 and loo > 0.9


def test_views_can_be_switched_off_and_members_keep_the_weights(ens: HelpEnsemble) -> None:
    ens.set_params(blend="loo", no_reference_views=False)
    try:
        adapt(ens)
        assert ens.views_ == [] and len(ens.adapted_weights_) == 2
        assert not np.allclose(ens.adapted_weights_, ens.weights_)  # chosen on this target, not meta-valid
    finally:
        ens.set_params(no_reference_views=True)


def test_too_few_samples_fall_back_to_the_meta_valid_weights(ens: HelpEnsemble) -> None:
    ens.set_params(blend="loo")
    for k in (2, 7):  # below loo_min_samples (8): a view fitted on so few samples fits them by chance
        adapt(ens, k=k)
        assert ens.views_ == [] and np.allclose(ens.adapted_weights_, ens.weights_)
    ens.set_params(loo_min_samples=5)
    try:
        adapt(ens, k=5)
        assert len(ens.views_) == 1 and not np.allclose(ens.adapted_weights_[:2], ens.weights_)
    finally:
        ens.set_params(loo_min_samples=8)


def test_given_weights_are_used_as_they_are(ens: HelpEnsemble) -> None:
    ens.set_params(blend="loo", weights=[1.0, 0.0])
    try:
        adapt(ens)
        assert ens.views_ == [] and np.allclose(ens.adapted_weights_, ens.weights_)
    finally:
        ens.set_params(weights=None)


def test_folds_bound_the_readaptations(ens: HelpEnsemble, monkeypatch: pytest.MonkeyPatch) -> None:
    from predictors.help import HelpPredictor
    calls = []
    real = HelpPredictor.adapt
    monkeypatch.setattr(HelpPredictor, "adapt", lambda self, *a, **k: (calls.append(len(a[0])), real(self, *a, **k))[1])
    ens.set_params(blend="loo", loo_folds=3)
    try:
        adapt(ens, k=10)
    finally:
        ens.set_params(loo_folds=10)
    # 3 folds x (2 members + 1 view), then the final fit of the 3 on all 10 samples
    assert len(calls) == 12 and sorted(set(calls[:9])) == [6, 7] and calls[9:] == [10, 10, 10]


def test_blend_parameters_are_checked(ens: HelpEnsemble) -> None:
    for bad, name in (({"blend": "mean"}, "blend"), ({"loo_folds": 1}, "loo_folds"),
                      ({"no_reference_views": "yes"}, "no_reference_views"),
                      ({"loo_min_samples": 2}, "loo_min_samples")):
        with pytest.raises(InvalidParameterError, match=name):
            HelpEnsemble(reference=REFS, members=[MLP], **bad).meta_fit({})


def test_adapted_blend_round_trips_through_io(ens: HelpEnsemble, tmp_path: Path) -> None:
    ens.set_params(blend="loo")
    adapt(ens)
    back = io.load_predictor(io.save_predictor(ens, tmp_path / "ens", devices="odd"))
    assert len(back.views_) == 1 and not back.views_[0].adapt_on_reference
    np.testing.assert_allclose(back.adapted_weights_, ens.adapted_weights_)
    np.testing.assert_allclose(back.predict(QUERY), ens.predict(QUERY), rtol=1e-6)
    # re-adapting the loaded predictor gives the same blend as the original
    np.testing.assert_allclose(adapt(back).predict(QUERY), ens.predict(QUERY), rtol=1e-5)
