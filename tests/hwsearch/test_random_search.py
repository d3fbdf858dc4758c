"""hwsearch.random_search: the sample it draws, the network it keeps (against brute force over the same
sample), the infeasible case, the accuracy-predictor proxy, and the result contract and closed loop."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from search_helpers import NB_BASE, NB_CONFIG, NB_TABLE

from hwsearch import (
    InfeasibleTargetWarning,
    RandomSearch,
    RandomSearchResult,
    create_search,
    list_searches,
    lut_cost_model,
    param_counts,
    pipeline,
)
from hwsearch.pipeline import VerifyPlan, check_result, verify_result
from predictors.base import InvalidParameterError
from predictors.registry import create_predictor
from spaces import create_space
from spaces.errors import UserInputError


@pytest.fixture(scope="module")
def lut(nb_space):
    """The tiny NB201 space's synthetic latency as an exact lookup-table cost model."""
    return lut_cost_model(NB_TABLE, nb_space, base=NB_BASE)


def _latency(arch) -> float:
    return NB_BASE + float(NB_TABLE[np.arange(6), list(arch)].sum())


def _search(lut, **kw) -> RandomSearchResult:
    with warnings.catch_warnings():
        warnings.simplefilter("error", InfeasibleTargetWarning)  # a feasible search warns of nothing
        return RandomSearch(predictor=lut, **{"target": 2.5, "n": 60, "seed": 3, **kw}).search()


def test_registered_and_created_by_name(lut) -> None:
    assert "random" in list_searches()
    search = create_search("random", predictor=lut, target=2.5, n=10)
    assert isinstance(search, RandomSearch) and "n=10" in repr(search)


def test_keeps_the_most_parameters_within_the_target_as_brute_force_does(lut, nb_space) -> None:
    res = _search(lut)
    check_result("random", res)  # the contract the pipeline verifies
    archs = nb_space.sample_unique(60, np.random.default_rng(3))  # the same sample
    lat = np.array([_latency(a) for a in archs])
    params = np.array([_effective_params(nb_space, a) for a in archs], dtype=float)  # counted for real
    ok = np.flatnonzero(lat <= 2.5)
    assert 0 < ok.size < 60  # the target cuts the sample
    best = params[ok].max()
    ties = [i for i in ok if params[i] == best]
    want = min(ties, key=lambda i: (lat[i], i))  # equal counts: the cheapest
    assert res.arch == list(archs[want]) and res.arch_id == nb_space.arch_id(archs[want])
    assert res.predicted == pytest.approx(lat[want], rel=1e-5) and res.predicted <= res.target
    assert res.proxy == "params" and res.proxy_value == best
    assert res.feasible and res.n == res.evaluations == 60 and res.n_feasible == ok.size and res.seed == 3
    d = res.to_dict()
    assert d["search"] == "random" and d["space_config"] == nb_space.config
    assert d["predictor"]["source"] == "lookup table"
    assert d["params"]["n"] == 60 and d["params"]["accuracy"] is None


def _effective_params(space, arch) -> float:
    """Brute force: the network with every edge off an input-to-output path set to none (searched both ways
    over the cell's node graph), counted by spaces.costs."""
    from spaces.nb201 import EDGES, NONE

    on = [(s, d) for e, (s, d) in enumerate(EDGES) if arch[e] != NONE]
    fwd, back = {0}, {3}
    for _ in range(4):
        fwd |= {d for s, d in on if s in fwd}
        back |= {s for s, d in on if d in back}
    kept = tuple(op if (EDGES[e][0] in fwd and EDGES[e][1] in back) else NONE for e, op in enumerate(arch))
    return space.costs(kept)["params"]


def test_param_counts_are_the_spaces_own(nb_space) -> None:
    """Every parameter: the per-edge table (over NB201's built edges) gives what spaces.costs counts on the
    built network (an edge into a node that feeds nothing is not built)."""
    archs = nb_space.sample_unique(8, np.random.default_rng(7)) + [(0,) * 6, (3,) * 6, (3, 3, 3, 0, 0, 0)]
    assert param_counts(nb_space, archs, effective=False).tolist() == [nb_space.costs(a)["params"] for a in archs]
    mb = create_space("mbconv-small", resolution=32, num_classes=10)
    archs = mb.sample_unique(3, np.random.default_rng(0))
    assert param_counts(mb, archs).tolist() == [mb.costs(a)["params"] for a in archs]


def test_effective_param_counts_leave_out_edges_cut_off_from_the_input(nb_space) -> None:
    cut = (0, 0, 3, 0, 3, 2)  # nothing leaves the input: the 3x3, 3x3, 1x1 behind it see a constant
    built, effective = param_counts(nb_space, [cut], effective=False)[0], param_counts(nb_space, [cut])[0]
    assert built == nb_space.costs(cut)["params"] > effective == nb_space.costs((0,) * 6)["params"]
    archs = nb_space.sample_unique(10, np.random.default_rng(5)) + [cut, (1, 0, 3, 0, 0, 3), (0, 3, 3, 1, 3, 0)]
    assert param_counts(nb_space, archs).tolist() == [_effective_params(nb_space, a) for a in archs]


def test_deterministic_under_the_seed(lut) -> None:
    a, b = _search(lut), _search(lut)
    assert {**a.to_dict(), "wall_s": 0} == {**b.to_dict(), "wall_s": 0}
    s1 = RandomSearch(predictor=lut, target=2.5, n=60, seed=3).fit()
    s2 = RandomSearch(predictor=lut, target=2.5, n=60, seed=4).fit()
    assert not np.array_equal(s1.predicted_, s2.predicted_)  # another seed, another sample


def test_none_feasible_returns_the_cheapest_and_says_so(lut, nb_space) -> None:
    with pytest.warns(InfeasibleTargetWarning, match="none of the 40 sampled networks"):
        res = RandomSearch(predictor=lut, target=0.5, n=40, seed=1).search()
    archs = nb_space.sample_unique(40, np.random.default_rng(1))
    lat = [_latency(a) for a in archs]
    assert not res.feasible and res.n_feasible == 0 and res.arch == list(archs[int(np.argmin(lat))])
    assert res.predicted == pytest.approx(min(lat), rel=1e-5) and res.predicted > res.target
    check_result("random", res)  # still a network to verify


def test_an_accuracy_predictor_ranks_instead_of_params(lut, nb_space) -> None:
    ids = [nb_space.arch_id(a) for a in nb_space.sample_unique(80, np.random.default_rng(0))]
    pool = 4  # a made-up task on which avg_pool edges help: the opposite of what #params prefers
    acc = np.array([50.0 + 5.0 * nb_space.parse(i).count(pool) for i in ids])
    acc_pred = create_predictor("lut", space="nb201", space_config=NB_CONFIG).fit(ids, acc)
    s = RandomSearch(predictor=lut, target=2.5, n=60, seed=3, accuracy=acc_pred)
    res = s.fit().result_
    within = np.flatnonzero(s.predicted_ <= 2.5)
    expected = acc_pred.predict([nb_space.arch_id(a) for a in nb_space.sample_unique(60, np.random.default_rng(3))])
    assert res.proxy == "lut predictor" and res.proxy_value == pytest.approx(expected[within].max())
    assert res.params["accuracy"] == "lut"
    assert res.arch != _search(lut).arch  # not what #params picks


def test_saved_accuracy_predictor_by_path_and_latency_one_refused(lut, nb_space, tmp_path: Path) -> None:
    from predictors.io import save_predictor

    ids = [nb_space.arch_id(a) for a in nb_space.sample_unique(40, np.random.default_rng(0))]
    y = np.array([60.0 + nb_space.parse(i).count(4) for i in ids])
    fitted = create_predictor("lut", space="nb201", space_config=NB_CONFIG).fit(ids, y)
    acc = save_predictor(fitted, tmp_path / "acc", devices=["somewhere-else"], quantity="accuracy",
                         task="cifar100", metric="test_accuracy")
    res = RandomSearch(predictor=lut, target=2.5, n=30, accuracy=acc).search()
    assert res.proxy == f"{acc} (cifar100)" and res.params["accuracy"] == str(acc)  # its device is not checked
    lat = save_predictor(fitted, tmp_path / "lat", quantity="latency")
    with pytest.raises(UserInputError, match=r"lat predicts latency, not accuracy"):
        RandomSearch(predictor=lut, target=2.5, n=30, accuracy=str(lat)).search()
    other = create_predictor("lut", space="nb201").fit(
        [create_space("nb201").arch_id(a) for a in nb_space.sample_unique(20, np.random.default_rng(0))],
        np.arange(1.0, 21.0))
    with pytest.raises(UserInputError, match="is for space 'nb201'.*but the search is over"):
        RandomSearch(predictor=lut, target=2.5, n=30, accuracy=other).search()


@pytest.mark.parametrize(("kw", "word"), [({"n": 0}, "'n'"), ({"target": -1.0}, "'target'"),
                                          ({"metric": "power"}, "'metric'"), ({"seed": -2}, "'seed'"),
                                          ({"predictor": None}, "needs a predictor")])
def test_bad_parameters_are_named(lut, kw, word) -> None:
    with pytest.raises(InvalidParameterError, match=word):
        RandomSearch(**{"predictor": lut, "target": 2.5, **kw}).fit()


def test_more_networks_than_the_space_holds_is_refused(lut) -> None:
    with pytest.raises(UserInputError, match="cannot draw 20000 distinct archs"):
        RandomSearch(predictor=lut, target=2.5, n=20_000).fit()


def test_a_fitted_predictor_and_the_closed_loop(nb_mlp, lut, tmp_path: Path, monkeypatch) -> None:
    """With a real (MLP) predictor the result verifies and has its loop closed like LightNAS's."""
    res = RandomSearch(predictor=nb_mlp, target=2.5, n=50, seed=0).search()
    assert res.predictor["source"] == "mlp predictor" and res.feasible
    board = {}

    def fake_rounds(config, space, arch, metric, rounds, store, log, progress, protocol):
        return [board.setdefault(tuple(arch), _latency(arch) * 1.3)] * rounds  # the board is 30% slower

    monkeypatch.setattr(pipeline, "measure_rounds", fake_rounds)
    out = verify_result(res, VerifyPlan("local-cpu", tmp_path / "d.db", rounds=1, correct=4, tolerance=0.05), lut)
    loop = out["closed_loop"]
    assert out["search"] == "random" and loop["probes"][0]["arch"] == res.arch  # the found network first
    assert loop["met"] or loop["measurements"] == 5
    assert out["verify"]["median"] == pytest.approx(board[tuple(out["arch"])])


def test_n_1000_takes_seconds(lut, nb_space) -> None:
    import time

    from hwsearch.random_search import _param_table

    _param_table.cache_clear()  # the parameter table is built within the time
    t = time.perf_counter()
    res = RandomSearch(predictor=lut, target=2.5, n=1000, seed=0).search()
    assert time.perf_counter() - t < 10.0 and res.n_feasible > 0
