"""hwsearch.zeroshot (TPC-NAS): the winner never breaks a constraint (recounted from its built network), the
population never exceeds N, the winner is the best score of everything scored, more iterations never lower
it, a seed reproduces, the depth cap holds, an infeasible start warns with the cheapest network, a proxy
without a fast path is scored once per network, a lower-is-better proxy is minimised, and mbconv-small runs."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from search_helpers import NB_BASE, NB_CONFIG, NB_TABLE

from hwsearch import InfeasibleTargetWarning, create_search, list_searches, lut_cost_model
from hwsearch.pipeline import check_result
from hwsearch.proxies import Proxy, create_proxy, register_proxy, unregister_proxy
from hwsearch.zeroshot import ZeroShotSearch, mutate
from predictors.base import InvalidParameterError


@pytest.fixture(scope="module")
def lut(nb_space):
    return lut_cost_model(NB_TABLE, nb_space, base=NB_BASE)


def _latency(arch) -> float:
    return NB_BASE + float(NB_TABLE[np.arange(6), list(arch)].sum())


def _search(lut, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", InfeasibleTargetWarning)
        s = ZeroShotSearch(predictor=lut, **{"target": 2.5, "population": 16, "iterations": 600, "batch": 8,
                                             "seed": 1, **kw})
        return s, s.search()


def _built(space, arch):
    """Params, MACs and main-path convs of the arch's real network (not the search's tables)."""
    from hwsearch.proxies.tpc import model_conv_depth

    model = space.build(arch)
    costs = space.costs(arch)
    return costs["params"], costs["flops"], model_conv_depth(model)


def test_registered_and_validated(lut) -> None:
    assert "zeroshot" in list_searches()
    assert isinstance(create_search("zeroshot", predictor=lut, target=2.0), ZeroShotSearch)
    with pytest.raises(InvalidParameterError, match="needs a target"):
        ZeroShotSearch(predictor=lut).search()
    with pytest.raises(InvalidParameterError, match="needs a constraint"):
        ZeroShotSearch(space="nb201", space_config=NB_CONFIG).search()
    with pytest.raises(InvalidParameterError, match="'population'"):
        ZeroShotSearch(predictor=lut, target=2.0, population=0).search()


def test_mutate_changes_exactly_the_asked_layers() -> None:
    rng = np.random.default_rng(0)
    parents = rng.integers(0, 5, size=(200, 6))
    for k in (1, 2):
        children = mutate(parents, k, 5, rng)
        assert ((children != parents).sum(axis=1) == k).all() and children.max() < 5 and children.min() >= 0


def test_the_winner_meets_every_constraint_and_is_the_best_scored(lut, nb_space) -> None:
    s, res = _search(lut, max_flops=0.5, max_params=0.012, max_depth=12)
    check_result("zeroshot", res)
    assert res.feasible and res.proxy == "tpc"
    params, flops, depth = _built(nb_space, res.arch)
    assert _latency(res.arch) <= 2.5 + 1e-6 and res.predicted == pytest.approx(_latency(res.arch), rel=1e-5)
    assert params <= 0.012e6 and flops <= 0.5e6 and depth <= 12
    assert res.params_m == pytest.approx(params / 1e6) and res.flops_m == pytest.approx(flops / 1e6)
    assert res.depth == depth
    # every candidate kept meets them too, best first
    for c in res.top:
        p, f, d = _built(nb_space, c["arch"])
        assert _latency(c["arch"]) <= 2.5 + 1e-6 and p <= 0.012e6 and f <= 0.5e6 and d <= 12
    assert [c["score"] for c in res.top] == sorted((c["score"] for c in res.top), reverse=True)
    # the best of everything the search scored (all of it passed the constraints)
    assert res.proxy_value == pytest.approx(max(s.scores_.values()))
    tpc = create_proxy("tpc").fast_scores(nb_space, [res.arch])[0]
    assert res.proxy_value == pytest.approx(tpc)
    assert sum(res.rejected.values()) > 0 and res.evaluations > 0 and res.predictor_queries > 0
    assert 0 < res.predictor_ms_per_arch < 0.6


def test_population_never_exceeds_n_and_the_score_never_falls(lut) -> None:
    s, res = _search(lut, population=5, iterations=400)
    assert s.population_max_ == 5 == res.population_final == len(s.population_["score"])
    best = [b for _, b in res.history if b is not None]  # None: no finite score yet (F0 without a path: TPC -inf)
    assert best == sorted(best) and res.history[-1][0] == 400
    scores = []
    for iterations in (50, 150, 400, 1200):
        scores.append(_search(lut, population=5, iterations=iterations)[1].proxy_value)
    assert scores == sorted(scores)


def test_a_seed_reproduces(lut) -> None:
    a, b = _search(lut, seed=7)[1], _search(lut, seed=7)[1]
    assert a.arch == b.arch and a.history == b.history and a.top == b.top and a.evaluations == b.evaluations


def test_the_depth_cap_binds(lut, nb_space) -> None:
    free = _search(lut, target=4.0)[1]
    capped = _search(lut, target=4.0, max_depth=free.depth - 3)[1]
    assert capped.depth <= free.depth - 3 and _built(nb_space, capped.arch)[2] <= free.depth - 3
    assert capped.rejected["depth"] > 0 and capped.proxy_value <= free.proxy_value


def test_the_paper_loop_one_child_at_a_time(lut) -> None:
    _, res = _search(lut, batch=1, iterations=300)
    assert res.generations == 300 and res.feasible and _latency(res.arch) <= 2.5 + 1e-6


def test_an_unreachable_target_warns_with_the_cheapest(lut, nb_space) -> None:
    cheapest = min(_latency(a) for a in itertools.product(range(5), repeat=6))
    with pytest.warns(InfeasibleTargetWarning, match="breaks the constraints"):
        res = ZeroShotSearch(predictor=lut, target=cheapest * 0.9, iterations=100).search()
    assert not res.feasible and res.iterations == 0
    assert res.predicted == pytest.approx(cheapest, rel=1e-5) and res.arch_id == res.init_arch_id


def test_without_a_predictor_params_and_flops_constrain(nb_space) -> None:
    res = ZeroShotSearch(space="nb201", space_config=NB_CONFIG, max_params=0.01, population=16, iterations=400,
                         batch=8).search()
    assert res.predicted is None and res.target is None and res.predictor_queries == 0
    assert _built(nb_space, res.arch)[0] <= 0.01e6


class _Counting(Proxy):
    """No fast path: every network built and scored (counts its calls)."""

    data_free = True
    calls = 0

    def score(self, model, batch=None) -> float:
        type(self).calls += 1
        if batch is None:  # a data-free proxy may read the batch's shape (SynFlow does)
            raise ValueError("no batch")
        return float(sum(p.numel() for p in model.parameters()))


class _Failing(Proxy):
    data_free = True

    def score(self, model, batch=None) -> float:
        raise RuntimeError("always")


class _Fewer(Proxy):
    """Lower is better (fewer parameters), fast path from the params table."""

    data_free = True
    higher_is_better = False

    def fast_scores(self, space, archs):
        return create_proxy("params", effective=False).fast_scores(space, archs)


@pytest.fixture
def toy_proxies():
    register_proxy("zs-counting")(_Counting)
    register_proxy("zs-fewer")(_Fewer)
    register_proxy("zs-failing")(_Failing)
    _Counting.calls = 0
    yield
    for name in ("zs-counting", "zs-fewer", "zs-failing"):
        unregister_proxy(name)


def test_a_slow_proxy_scores_each_network_once(lut, toy_proxies) -> None:
    s, res = _search(lut, proxy="zs-counting", iterations=120, batch=8)
    assert not res.fast_proxy and res.evaluations == _Counting.calls == len(s.scores_) and res.proxy_failures == 0
    assert res.proxy_value == max(s.scores_.values())


def test_a_proxy_failing_everywhere_is_named(lut, toy_proxies) -> None:
    from spaces.errors import RuntimeFailure

    with pytest.raises(RuntimeFailure, match=r"proxy 'zs-failing' failed on all \d+ networks.*always"):
        _search(lut, proxy="zs-failing", iterations=40)


def test_a_lower_is_better_proxy_is_minimised(lut, toy_proxies) -> None:
    s, res = _search(lut, proxy="zs-fewer", iterations=300)
    assert res.proxy_value == pytest.approx(-max(s.scores_.values()))  # the least raw value scored
    assert res.top[0]["score"] == pytest.approx(-res.proxy_value)


def test_mbconv_small_with_a_lut(tmp_path) -> None:
    from spaces import create_space

    space = create_space("mbconv-small")
    table = np.random.default_rng(0).uniform(0.05, 0.3, size=(space.n_layers, space.n_ops))
    table[:, -1] = 0.01  # skip is cheap
    model = lut_cost_model(table, space, base=1.0)
    target = 1.0 + 0.15 * space.n_layers
    res = ZeroShotSearch(predictor=model, target=target, population=32, iterations=3000, batch=64).search()
    assert res.feasible and res.space == "mbconv-small"
    assert 1.0 + table[np.arange(space.n_layers), res.arch].sum() <= target + 1e-4
    assert res.proxy_value > res.history[0][1] and res.depth is not None and res.flops_m > 0
    assert res.plot(tmp_path / "h.png").stat().st_size > 0


class _SlowTable:
    """A fitted-predictor stand-in that takes 1 ms per network (as one that builds each network does)."""

    space, space_config, kind = "nb201", NB_CONFIG, "slow"

    def predict(self, ids):
        import time

        from spaces import create_space

        space = create_space("nb201", **NB_CONFIG)
        time.sleep(1e-3 * len(ids))
        return np.array([_latency(space.parse(i)) for i in ids])


def test_a_slow_predictor_is_named_before_the_search() -> None:
    from hwsearch.zeroshot import SlowPredictorWarning

    with pytest.warns(SlowPredictorWarning, match=r"ms per network .* iterations will take about"):
        res = ZeroShotSearch(predictor=_SlowTable(), target=2.5, population=8, iterations=16, batch=8,
                             init=[0] * 6).search()
    assert res.feasible and res.predictor_ms_per_arch > 0.6 and _latency(res.arch) <= 2.5 + 1e-6


def test_when_only_cells_without_a_path_fit_tpc_says_so(lut) -> None:
    """Under a budget only the all-`none` cell meets (every op but none costs), TPC is -inf everywhere within:
    the result says no network within the constraints has a path from its input, not that the proxy failed."""
    from hwsearch.zeroshot_result import summary_lines

    _, res = _search(lut, target=NB_BASE + 0.01, iterations=200)
    d = res.to_dict()
    assert d["feasible"] and d["proxy_value"] is None and d["proxy_failures"] == 0
    assert d["arch"] == [0] * 6  # the all-none cell: the only one predicted within
    assert "no network found within the constraints has a path" in summary_lines(d)[0]
