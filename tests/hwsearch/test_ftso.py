"""FTSO on the tiny NB201 config: the top-k rule and its explicit ties, the skip topology's β gradient (what it
can tell on NB201), replace / gradient operators, the latency-budget step against brute force, seeds."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from search_helpers import NB_BASE, NB_CONFIG, NB_TABLE

from hwsearch.cost import lut_cost_model
from hwsearch.data import digits_proxy
from hwsearch.ftso import (
    CANDIDATE_OPS,
    EDGES,
    FTSO,
    OPS,
    STRENGTH,
    InfeasibleBudgetWarning,
    keep_edges,
    replace_ops,
)
from predictors.base import InvalidParameterError

START = [1.0, 0.5, 0.5, 1 / 3, 1 / 3, 1 / 3]  # linear β's start: 1/in-degree
CONV3, NONE = OPS.index("nor_conv_3x3"), OPS.index("none")


@pytest.fixture(scope="module")
def data():
    return digits_proxy(resolution=16, n=60)


def _search(data, **kw):
    return FTSO(space_config=NB_CONFIG, batch_size=16, **kw).search(data)


def _edge(src: int, dst: int) -> int:
    return EDGES.index((src, dst))


# --- the rule ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("beta3", "dropped"), [((0.5, 0.4, 0.3), (2, 3)), ((0.3, 0.5, 0.4), (0, 3)),
                                                ((0.4, 0.3, 0.5), (1, 3))])
def test_clear_beta_keeps_the_two_largest_inputs_of_node_3(beta3, dropped):
    beta = [1.0, 0.5, 0.5, *beta3]
    kept, ties = keep_edges(beta, 2, 0.01, START)
    assert kept == tuple(e for e in range(6) if e != _edge(*dropped))  # node 2 dies if 2->3 goes: β decides
    assert not any(r.get("by_rule") for r in ties)


@pytest.mark.parametrize(("keep", "n_kept"), [(1, 3), (2, 5), (3, 6), (9, 6)])
def test_keep_is_per_node_up_to_its_in_degree(keep, n_kept):
    beta = [1.0, 0.6, 0.4, 0.2, 0.5, 0.3]
    kept, _ = keep_edges(beta, keep, 0.0, START)
    assert len(kept) == n_kept
    per_node = {j: sum(EDGES[e][1] == j for e in kept) for j in (1, 2, 3)}
    assert per_node == {j: min(keep, j) for j in (1, 2, 3)}
    if keep == 1:
        assert kept == (_edge(0, 1), _edge(0, 2), _edge(1, 3))  # the largest β into each node


def test_ties_are_named_and_broken_by_the_stated_rule():
    """Equal β at node 3 (what a skip cell gives): 2->3 stays (node 2 would die), then the shallower 0->3."""
    kept, ties = keep_edges(list(START), 2, 0.01, START)
    assert kept == tuple(e for e in range(6) if e != _edge(1, 3))
    node3 = ties[-1]
    assert node3["node"] == 3 and node3["by_rule"] and sorted(node3["tied"]) == [0, 1, 2] and node3["rule"]
    # within the tolerance of the movement it is a tie; with tie_tol 0 β's order decides
    beta = [0.99, 0.49, 0.49, 0.3231, 0.3232, 0.3230]
    assert keep_edges(beta, 2, 0.01, START)[0] == kept
    assert keep_edges(beta, 2, 0.0, START)[0] == tuple(e for e in range(6) if e != _edge(2, 3))


# --- the search ----------------------------------------------------------------------------------------

def test_replace_keeps_exactly_the_rules_edges_with_conv3x3(data):
    res = _search(data, iterations=3)
    kept, _ = keep_edges(res.beta, 2, 0.01, res.beta_init)
    assert tuple(res.kept) == kept and len(kept) == 5
    assert res.arch == [CONV3 if e in kept else NONE for e in range(6)]
    assert res.operator == "replace" and res.predicted is None and res.target is None
    assert res.iterations == 3 and len([r for r in res.log if r["phase"] == "topology"]) == 3
    res.check()


def test_one_epoch_is_the_w_splits_batches(data):
    res = _search(data)
    assert res.iterations == -(-len(data[0]) // 16)


def test_the_skip_topology_cannot_tell_node_3s_inputs_apart(data):
    """Linear β: the cell is c(β)·x, so the first ∇β is ∂c/∂β at the start, (1/2, 1/3, 1/3, 1, 1, 1) times one
    number; softmax β: the cell is the identity, ∇β is 0 up to rounding. avg-pool makes the nodes differ."""
    lin = np.array(_search(data, iterations=1).beta_grad_first)
    assert abs(lin[3]) > 0 and np.allclose(lin / lin[3], [1 / 2, 1 / 3, 1 / 3, 1, 1, 1], rtol=1e-3)
    soft = np.array(_search(data, iterations=1, beta_form="softmax").beta_grad_first)
    assert np.abs(soft).max() < 1e-6 * np.abs(lin).max()
    pool = np.array(_search(data, iterations=1, topology_op="avg_pool_3x3").beta_grad_first)
    assert not np.allclose(pool[3:] / pool[3], 1.0, rtol=1e-2)


def test_seeds_reproduce(data):
    a, b = _search(data, iterations=2, seed=3), _search(data, iterations=2, seed=3)
    assert a.beta == b.beta and a.arch == b.arch and a.beta_grad_first == b.beta_grad_first
    assert _search(data, iterations=2, seed=4).beta_grad_first != a.beta_grad_first


def test_gradient_puts_an_op_of_its_own_on_every_kept_edge(data):
    res = _search(data, iterations=2, operator="gradient", op_iterations=2)
    assert res.operator == "gradient" and res.op_iterations == 2 and sorted(map(int, res.op_alpha)) == res.kept
    for e in range(6):
        if e in res.kept:
            probs = res.op_alpha[str(e)]
            assert res.ops[e] == max(CANDIDATE_OPS, key=lambda o: (probs[o], STRENGTH[o]))
            assert abs(sum(probs.values()) - 1) < 1e-5
        else:
            assert res.ops[e] == "none"


# --- the latency budget (spec §2.8, ours) --------------------------------------------------------------

def _brute_force(kept, target):
    """The largest strength of any assignment of the four ops to `kept` within `target` under the LUT."""
    best = None
    for combo in itertools.product(CANDIDATE_OPS, repeat=len(kept)):
        arch = list(replace_ops(kept, "skip_connect"))
        for e, op in zip(kept, combo, strict=True):
            arch[e] = OPS.index(op)
        lat = NB_BASE + NB_TABLE[np.arange(6), arch].sum()
        if lat <= target:
            s = sum(STRENGTH[o] for o in combo)
            best = s if best is None else max(best, s)
    return best


@pytest.mark.parametrize("target", [1.6, 2.5, 3.4])
def test_budget_picks_the_strongest_assignment_within_it(data, nb_space, target):
    cost = lut_cost_model(NB_TABLE, nb_space, NB_BASE)
    res = _search(data, iterations=2, predictor=cost, target=target)
    lut = NB_BASE + NB_TABLE[np.arange(6), res.arch].sum()
    assert res.operator == "budget" and res.feasible and res.predicted == pytest.approx(lut, rel=1e-5)
    assert res.predicted <= target
    assert res.budget["strength"] == _brute_force(tuple(res.kept), target)
    assert res.budget["candidates"] == 4 ** 5 and res.budget["queries"] == 1
    assert all(res.ops[e] == "none" for e in range(6) if e not in res.kept)
    assert sum(STRENGTH[res.ops[e]] for e in res.kept) == res.budget["strength"]


def test_a_budget_below_every_assignment_returns_the_cheapest(data, nb_space):
    cost = lut_cost_model(NB_TABLE, nb_space, NB_BASE)
    with pytest.warns(InfeasibleBudgetWarning, match="predicted-cheapest"):
        res = _search(data, iterations=1, predictor=cost, target=1.1)
    assert res.feasible is False and all(res.ops[e] == "skip_connect" for e in res.kept)


def test_a_predictor_without_a_budget_only_predicts(data, nb_space):
    cost = lut_cost_model(NB_TABLE, nb_space, NB_BASE)
    res = _search(data, iterations=1, predictor=cost)
    assert res.operator == "replace" and res.budget is None
    assert res.predicted == pytest.approx(NB_BASE + NB_TABLE[np.arange(6), res.arch].sum(), rel=1e-5)


@pytest.mark.parametrize(("kw", "words"), [
    ({"target": 2.0}, "needs a predictor"),
    ({"topology_op": "sep_conv_3x3"}, "'topology_op'"),
    ({"keep": 0}, "'keep'"),
    ({"operator": "gradient", "target": 2.0, "predictor": "x"}, "gradient operator strategy takes no target"),
    ({"space": "mbconv"}, "NB201"),
])
def test_bad_parameters_are_named(data, kw, words):
    with warnings.catch_warnings(), pytest.raises(InvalidParameterError, match=words):
        FTSO(**kw).fit(data)
