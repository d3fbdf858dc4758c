"""SurgeNAS: its schedules and β bisection (pure), the identity term of the supernets, fairness of the ordered
sampling inside a real search, the latency term's pull, the target's bisection, parameter errors, the result's
contract, JSON and plot."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from search_helpers import NB_CONFIG, random_data

from hwsearch import create_search, lut_cost_model
from hwsearch.supernet import build_supernet
from hwsearch.surgenas import SurgeNAS
from hwsearch.surgenas_engine import next_beta, phi_at, tau_at
from predictors.base import InvalidParameterError
from spaces import create_space

# A latency table where convs cost and skip / none / pool are cheap: β pulls the arch to cheap ops.
COST = np.tile(np.array([0.0, 0.05, 1.0, 2.0, 0.2]), (6, 1))


def tiny_search(**kw) -> SurgeNAS:
    params = {"space": "nb201", "space_config": NB_CONFIG, "epochs": 3, "warmup_epochs": 1, "batch_size": 16,
              "data_resolution": None}
    params.update(kw)
    if params.get("predictor") is not None:
        params.pop("space"), params.pop("space_config")
    return SurgeNAS(**params)


def test_schedules_are_the_documented_ones():
    assert phi_at(None, 10, 2.0) == 2.0  # warm-up
    assert phi_at(0, 10, 2.0) == 2.0 and phi_at(9, 10, 2.0) == 0.0
    assert phi_at(5, 11, 2.0) == pytest.approx(1.0)  # linear: half-way is 1
    assert tau_at(None, 10, 1.0, 0.05) == 1.0
    assert tau_at(0, 10, 1.0, 0.05) == 1.0 and tau_at(9, 10, 1.0, 0.05) == pytest.approx(0.05)
    taus = [tau_at(k, 10, 1.0, 0.05) for k in range(10)]
    assert all(a > b for a, b in zip(taus, taus[1:], strict=False))


def test_next_beta_brackets_then_bisects():
    target = 4.0
    assert next_beta([], target) == 0.0
    assert next_beta([(0.0, 6.0)], target) == pytest.approx(0.25)  # 1/T after β = 0 was too slow
    assert next_beta([(0.0, 2.0)], target) == pytest.approx(-0.25)  # −1/T after β = 0 was too fast
    assert next_beta([(0.0, 6.0), (0.25, 5.0)], target) == pytest.approx(1.0)  # still too slow: x4
    assert next_beta([(0.0, 2.0), (-0.25, 3.0)], target) == pytest.approx(-1.0)  # still too fast: x4 below 0
    # bracketed by 0.25 (slow) and 1.0 (fast): the geometric midpoint
    assert next_beta([(0.0, 6.0), (0.25, 5.0), (1.0, 3.0)], target) == pytest.approx(0.5)
    # bracketed by 0 (slow) and 1/T (fast): 0 stands for 1e-4/T, so the next tries are 1e-2/T, then 1e-3/T
    first = next_beta([(0.0, 6.0), (0.25, 3.0)], target)
    assert first == pytest.approx(1e-2 / target)
    assert next_beta([(0.0, 6.0), (0.25, 3.0), (first, 3.5)], target) == pytest.approx(1e-3 / target)
    # below 0: β = 0 too fast, −1/T too slow
    assert next_beta([(0.0, 3.0), (-0.25, 5.0)], target) == pytest.approx(-1e-2 / target)


@pytest.mark.parametrize("space_name,config", [("nb201", NB_CONFIG),
                                               ("mbconv-small", {"width_mult": 0.25, "resolution": 16})])
def test_identity_term_is_added_where_shapes_match(space_name, config):
    space = create_space(space_name, **config)
    net = build_supernet(space, 0).eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    arch = space.sample(np.random.default_rng(1))
    paths = torch.nn.functional.one_hot(torch.tensor(arch), space.n_ops).float()
    with torch.no_grad():
        plain, zero, with_phi = net(x, paths), net(x, paths, 0.0), net(x, paths, 1.5)
    torch.testing.assert_close(plain, zero)
    assert not torch.allclose(plain, with_phi)
    if space_name == "mbconv-small":  # no identity on the first layer of a stage (stride 2 or a new width)
        assert net.same_shape[0] is False and any(net.same_shape)


def test_search_without_a_predictor_is_fair_and_meets_the_contract(tmp_path):
    search = tiny_search(seed=3)
    result = search.search(random_data(48, seed=0), random_data(16, seed=1))
    result.check()
    assert result.predicted is None and result.target is None and result.relative_error is None
    # every (layer, op) was trained once per iteration: 3 epochs x 3 batches
    assert result.fairness == {"iterations": 9, "min": 9, "max": 9, "equal": True}
    assert len(result.epochs_log) == 4 and result.epochs_log[0]["epoch"] == -1
    assert result.log[0]["phi"] == 2.0 and result.log[-1]["phi"] == 0.0  # warm-up at 2, decayed to 0
    alpha_steps = [row for row in result.log if row["alpha_step"] is not None]
    assert len(alpha_steps) == 6 and all(row["alpha_grad_norm"] > 0 for row in alpha_steps)
    assert result.arch == list(torch.tensor(result.alpha).argmax(-1).tolist())
    assert 0.0 <= result.heldout_accuracy <= 100.0
    assert result.choices["identity"].startswith("phi*X")
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["search"] == "surgenas" and data["beta"] == 0.0 and data["trials"][0]["chosen"]
    png = result.plot(tmp_path / "s.png")
    assert png.stat().st_size > 10_000


def test_without_identity_phi_stays_zero():
    result = tiny_search(identity=False, epochs=2).search(random_data(32), None)
    assert {row["phi"] for row in result.log} == {0.0}
    assert result.choices["identity"] == "off (ablation)" and result.heldout_accuracy is None


def test_beta_pulls_the_arch_to_cheap_ops(nb_space):
    cost = lut_cost_model(COST, nb_space, base=1.0)
    data = random_data(48)
    free = tiny_search(predictor=cost, beta=0.0, epochs=4).search(data, None)
    pulled = tiny_search(predictor=cost, beta=5.0, epochs=4).search(data, None)
    assert pulled.predicted < free.predicted
    assert pulled.predicted <= 1.0 + 6 * 0.2 + 1e-6  # every edge on a cheap op (none, skip or pool)
    assert pulled.log[-1]["predicted_sampled_mean"] is not None


def test_target_sets_beta_by_bisection(nb_space):
    cost = lut_cost_model(COST, nb_space, base=1.0)
    target = 2.0
    search = tiny_search(predictor=cost, target=target, epochs=4, max_trials=5, alpha_lr=0.05)
    result = search.search(random_data(48), None)
    result.check()
    trials = result.trials
    assert 1 <= len(trials) <= 5 and trials[0]["beta"] == 0.0
    chosen = [t for t in trials if t["chosen"]]
    assert len(chosen) == 1 and chosen[0]["arch"] == result.arch and chosen[0]["beta"] == result.beta
    # the returned arch is the trial nearest the target
    assert abs(math.log1p(result.relative_error)) == pytest.approx(min(abs(math.log1p(t["error_vs_target"]))
                                                                     for t in trials))
    assert trials[0]["predicted"] > target  # β = 0 is too slow here: β = 1/T next, then bracketed
    assert len(trials) >= 2 and trials[1]["beta"] == pytest.approx(1 / target)
    assert result.predicted < trials[0]["predicted"]
    # a target above what β = 0 finds: β goes below 0 (a reward for latency) and the result moves up
    high = tiny_search(predictor=cost, target=6.0, epochs=4, max_trials=3, alpha_lr=0.05).search(random_data(48), None)
    assert high.trials[0]["predicted"] < 6.0 and high.trials[1]["beta"] == pytest.approx(-1 / 6.0)
    assert max(t["predicted"] for t in high.trials[1:]) > high.trials[0]["predicted"]


def test_parameter_errors_name_the_problem(nb_space):
    cost = lut_cost_model(COST, nb_space, base=1.0)
    with pytest.raises(InvalidParameterError, match="needs a predictor"):
        SurgeNAS(space="nb201", beta=1.0)._validate()
    with pytest.raises(InvalidParameterError, match="needs the space"):
        SurgeNAS()._validate()
    with pytest.raises(InvalidParameterError, match="not both"):
        SurgeNAS(cost, beta=1.0, target=3.0)._validate()
    with pytest.raises(InvalidParameterError, match="warmup_epochs"):
        SurgeNAS(space="nb201", epochs=3, warmup_epochs=3)._validate()
    with pytest.raises(InvalidParameterError, match="beta"):
        SurgeNAS(space="nb201", beta=-1.0)._validate()
    assert isinstance(create_search("surgenas", space="nb201"), SurgeNAS)


def test_unreachable_target_is_refused(nb_space):
    from spaces.errors import UserInputError

    cost = lut_cost_model(COST, nb_space, base=1.0)
    with pytest.raises(UserInputError, match="outside what the space can reach"):
        tiny_search(predictor=cost, target=0.5).search(random_data(16), None)


def test_alpha_gets_a_gradient_at_full_identity_weight_on_the_default_nb201():
    """φ = 2 at the first α-step on NB201's 15 cells: plain φ·X summed at the nodes grew the activations ~10^19
    and the gradient reaching α was exactly zero; the convex mix keeps it finite and non-zero."""
    result = SurgeNAS(space="nb201", epochs=2, warmup_epochs=0, batch_size=8, data_resolution=8).search(
        random_data(8, resolution=8), None)
    first = result.log[0]
    assert first["phi"] == 2.0 and math.isfinite(first["alpha_grad_norm"]) and first["alpha_grad_norm"] > 1e-6
