"""LightNAS's open-loop remedy (issue 16): refine's κ pick on hand-made ensemble cost models, the candidate
neighbourhood, the parameter checks, and a search with an mlp-ensemble predictor recording what it did."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from search_helpers import NB_BASE, NB_CONFIG, NB_TABLE, random_data

from hwsearch import CostModel, as_cost_model, lut_cost_model, refine_arch
from hwsearch.cost import LUTCost, distance_to_known, is_ensemble, known_archs, member_predictions, neighbourhood
from hwsearch.lightnas import DEFAULT_KAPPA, DEFAULT_TRUST, LightNAS, refine_settings
from predictors.base import InvalidParameterError
from predictors.ensemble import EnsembleHead
from spaces.errors import UserInputError

BASE = np.tile(np.arange(5.0), (6, 1))  # cost = sum of op indices


def ensemble_model(nb_space, spread: float = 1.0) -> CostModel:
    """Two LUT members whose mean is BASE; they disagree by ±spread on op 3 of layers 0-4, agree on layer 5."""
    delta = np.zeros((6, 5))
    delta[:5, 3] = spread
    return CostModel(EnsembleHead([LUTCost(BASE + delta), LUTCost(BASE - delta)]), nb_space.name, nb_space.config)


def alpha_preferring_layer0():
    alpha = torch.zeros(6, 5)
    alpha[:, 2] = 1.0  # derived arch: op 2 everywhere, cost 12
    alpha[0, 3] = 0.9  # the most probable change to cost 13: layer 0 to op 3
    return alpha


def test_kappa_zero_keeps_the_plain_pick(nb_space):
    ens, plain = ensemble_model(nb_space), lut_cost_model(BASE, nb_space)
    alpha = alpha_preferring_layer0()
    a, info = refine_arch((2,) * 6, alpha, ens, nb_space, target=13.0, tolerance=0.02, kappa=0.0)
    b, _ = refine_arch((2,) * 6, alpha, plain, nb_space, target=13.0, tolerance=0.02)
    assert a == b == (3, 2, 2, 2, 2, 2)
    assert info["after_disagreement"] == pytest.approx(1.0 / 13.0)  # recorded even at κ = 0


def test_kappa_picks_the_candidate_the_members_agree_on(nb_space):
    ens = ensemble_model(nb_space)
    arch, info = refine_arch((2,) * 6, alpha_preferring_layer0(), ens, nb_space, target=13.0, tolerance=0.02,
                             kappa=50.0)
    assert arch == (2, 2, 2, 2, 2, 3)  # as near the target as layer 0's change, but no disagreement
    assert info["changed"] and info["after_disagreement"] == 0.0 and info["kappa"] == 50.0
    assert info["ranked"][0]["arch"] == list(arch) and info["within_tolerance"] == 6
    # a small κ does not outweigh α's preference (0.9 nat against 0.1 * 1/13)
    small, _ = refine_arch((2,) * 6, alpha_preferring_layer0(), ens, nb_space, target=13.0, tolerance=0.02,
                           kappa=0.1)
    assert small == (3, 2, 2, 2, 2, 2)


def test_equal_probability_tie_goes_to_agreement(nb_space):
    alpha = torch.zeros(6, 5)
    alpha[:, 2] = 1.0
    arch, _ = refine_arch((2,) * 6, alpha, ensemble_model(nb_space), nb_space, target=13.0, tolerance=0.02,
                          kappa=1.0)
    assert arch == (2, 2, 2, 2, 2, 3)


def test_kappa_needs_an_ensemble_and_valid_values(nb_space):
    plain = lut_cost_model(BASE, nb_space)
    assert not is_ensemble(plain) and member_predictions(plain, nb_space, [(0,) * 6]) is None
    with pytest.raises(ValueError, match="ensemble"):
        refine_arch((2,) * 6, torch.zeros(6, 5), plain, nb_space, 13.0, 0.02, kappa=1.0)
    with pytest.raises(ValueError, match="kappa"):
        refine_arch((2,) * 6, torch.zeros(6, 5), plain, nb_space, 13.0, 0.02, kappa=-1.0)
    with pytest.raises(ValueError, match="radius"):
        refine_arch((2,) * 6, torch.zeros(6, 5), plain, nb_space, 13.0, 0.02, radius=3)


def test_neighbourhood_radius_two():
    cands = neighbourhood((0,) * 6, 5, 2)
    assert cands[0] == (0,) * 6 and len(cands) == 1 + 6 * 4 + 15 * 16 == len(set(cands))
    assert max(sum(x != 0 for x in c) for c in cands) == 2
    assert len(neighbourhood((0,) * 6, 5, 1)) == 25


def test_radius_two_reaches_two_layer_changes(nb_space):
    alpha = torch.zeros(6, 5)
    alpha[:, 2] = 1.0
    arch, info = refine_arch((2,) * 6, alpha, lut_cost_model(BASE, nb_space), nb_space, target=14.0,
                             tolerance=0.01, radius=2)
    assert sum(a != 2 for a in arch) in (1, 2) and sum(arch) == 14 and info["candidates"] == 265


def test_distance_to_known_is_the_fewest_differing_layers_capped():
    known = np.array([[0, 0, 0, 0], [1, 1, 1, 1]])
    cands = np.array([[0, 0, 0, 0], [0, 0, 0, 2], [1, 1, 2, 2], [2, 2, 2, 2]])
    assert distance_to_known(cands, known, cap=3).tolist() == [0, 1, 2, 3]
    assert distance_to_known(cands, known, cap=1).tolist() == [0, 1, 1, 1]


def test_trust_region_prefers_the_training_arch(nb_space):
    plain = lut_cost_model(BASE, nb_space)
    alpha = alpha_preferring_layer0()
    known = np.array([(2, 2, 2, 2, 3, 2), (0,) * 6])  # layer 4's change to op 3 was trained on
    arch, info = refine_arch((2,) * 6, alpha, plain, nb_space, target=13.0, tolerance=0.02, mu=5.0, known=known)
    assert arch == (2, 2, 2, 2, 3, 2) and info["after_from_known"] == 0 and info["mu"] == 5.0
    same, info = refine_arch((2,) * 6, alpha, plain, nb_space, target=13.0, tolerance=0.02, mu=0.0, known=known)
    assert same == (3, 2, 2, 2, 2, 2) and info["after_from_known"] == 2  # μ = 0: the plain pick
    with pytest.raises(ValueError, match="fitted on"):
        refine_arch((2,) * 6, alpha, plain, nb_space, target=13.0, tolerance=0.02, mu=1.0)


def test_saved_predictor_brings_its_training_archs(nb_space, nb_mlp, tmp_path):
    from predictors.io import save_predictor

    ids = [nb_space.arch_id((2, 2, 2, 2, 3, 2)), nb_space.arch_id((0,) * 6)]
    folder = save_predictor(nb_mlp, tmp_path / "mlp", train_archs=ids)
    cost = as_cost_model(str(folder))
    assert sorted(map(tuple, known_archs(cost, nb_space).tolist())) == [(0,) * 6, (2, 2, 2, 2, 3, 2)]
    assert known_archs(as_cost_model(nb_mlp), nb_space) is None  # an in-memory MLP does not list them


@pytest.mark.parametrize(("params", "match"), [
    ({"refine_kappa": -1.0}, "'refine_kappa'"), ({"refine_radius": 3}, "'refine_radius'"),
    ({"refine_trust": -1.0}, "'refine_trust'"), ({"refine_trust": 1.0, "refine": False}, "refine is off"),
    ({"refine_kappa": 1.0, "refine": False}, "refine is off")])
def test_bad_remedy_parameters_fail_before_any_work(nb_space, params, match):
    search = LightNAS(lut_cost_model(BASE, nb_space), target=12.0, epochs=1, **params)
    with pytest.raises(InvalidParameterError, match=match):
        search.search(random_data(4))


@pytest.mark.parametrize(("params", "match"), [({"refine_kappa": 1.0}, "not an ensemble"),
                                               ({"refine_trust": 1.0}, "does not list them")])
def test_remedy_without_what_it_needs_is_refused_before_training(nb_space, params, match):
    search = LightNAS(lut_cost_model(BASE, nb_space), target=12.0, epochs=1, warmup_epochs=0, **params)
    with pytest.raises(UserInputError, match=match):
        search.search(random_data(16), random_data(16, seed=1))


def test_refine_settings_default_to_the_remedy_for_an_ensemble_only():
    assert refine_settings(None, None, None, ensemble=False, known=True) == (0.0, 0.0, 1)  # the thesis' pick
    assert refine_settings(None, None, None, ensemble=True, known=True) == (DEFAULT_KAPPA, DEFAULT_TRUST, 2)
    assert refine_settings(None, None, None, ensemble=True, known=False) == (DEFAULT_KAPPA, 0.0, 2)
    assert refine_settings(0.0, 1.0, 1, ensemble=True, known=True) == (0.0, 1.0, 1)  # given values win


def test_plain_predictor_keeps_the_thesis_pick_by_default(nb_space):
    result = LightNAS(lut_cost_model(BASE, nb_space), target=12.0, epochs=1, warmup_epochs=0,
                      batch_size=16).search(random_data(16), random_data(16, seed=1))
    assert (result.refine["kappa"], result.refine["mu"], result.refine["radius"]) == (0.0, 0.0, 1)
    assert result.disagreement is None


def test_search_with_an_ensemble_records_the_remedy(nb_space):
    from predictors.registry import create_predictor

    archs = nb_space.sample_unique(60, np.random.default_rng(0))
    y = [NB_BASE + float(NB_TABLE[np.arange(6), list(a)].sum()) for a in archs]
    ens = create_predictor("mlp-ensemble", space="nb201", space_config=NB_CONFIG, epochs=10, members=2,
                           hidden=(16,)).fit([nb_space.arch_id(a) for a in archs], np.array(y))
    target = float(np.median(ens.predict([nb_space.arch_id(a) for a in archs])))  # reachable by its mean
    result = LightNAS(ens, target=target, epochs=1, warmup_epochs=0, batch_size=16).search(
        random_data(16), random_data(16, seed=1))  # defaults: the remedy, the ensemble knows its training archs
    assert (result.refine["kappa"], result.refine["mu"], result.refine["radius"]) == (DEFAULT_KAPPA, DEFAULT_TRUST, 2)
    assert result.disagreement is not None and result.disagreement >= 0
    assert result.to_dict()["disagreement"] == result.disagreement
    if result.refine["within_tolerance"]:
        assert result.disagreement == pytest.approx(result.refine["after_disagreement"])
        assert abs(result.predicted / target - 1) <= 0.02
