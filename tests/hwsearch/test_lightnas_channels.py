"""LightNAS stage 2 (hwsearch.lightnas_channels): Algorithm 2's operators and bookkeeping under an additive
made-up latency (no training: a cheap score), then the search end to end with real BTE on a tiny base, its
determinism and cache, and its refusals (an unreachable target, a predictor of another space or base)."""

from __future__ import annotations

import numpy as np
import pytest

from hwsearch.cost import lut_cost_model, predict_archs
from hwsearch.lightnas_channels import LightNASChannels
from hwsearch.lightnas_channels_engine import Cached, Sampler, crossover, evolve, mutate
from predictors.base import InvalidParameterError
from spaces import create_space
from spaces.errors import UserInputError
from spaces.mbconv_channels import ONE, SCALES, channel_space_for

TINY = {"width_mult": 0.25, "resolution": 32, "num_classes": 10, "stage_repeats": [2, 2, 1, 1, 1, 1]}
BASE_ARCH = (0, 1, 2, 3, 6, 1, 0, 4)  # one skip: 7 live layers
# BTE on a handful of 8 px digits: a few hundredths of a second per network
SMALL = {"population": 4, "iterations": 2, "top_k": 2, "resolution": 8, "images": 32, "batch_size": 16, "epochs": 2}


def found(arch=BASE_ARCH) -> dict:
    """A stage-1 LightNAS result as `search lightnas --out` writes it (the fields the channel space reads)."""
    base = create_space("mbconv-small", **TINY)
    return {"search": "lightnas", "space": "mbconv-small", "space_config": base.config, "arch_id": base.arch_id(arch)}


def lut(space, base: float = 1.0):
    """A cost model whose latency grows with each layer's scale (layers weigh 0.1..0.3 ms per unit scale)."""
    table = np.outer(np.linspace(0.1, 0.3, space.n_layers), np.array(SCALES))
    return lut_cost_model(table, space, base=base), base + float(table[:, ONE].sum())


@pytest.fixture(scope="module")
def tiny():
    space = channel_space_for(found())
    cost, base_ms = lut(space)
    return space, cost, base_ms


@pytest.mark.parametrize("rate", [0.2, 0.35])
def test_operators_honour_the_rate(rate: float) -> None:
    rng = np.random.default_rng(0)
    L, n = 60, 3000
    top = np.array([np.zeros(L, dtype=np.int64), np.full(L, 6)])
    kids = crossover(top, n, rate, rng)
    minority = np.minimum((kids == 6).mean(1), (kids == 0).mean(1))  # each child is mostly its first parent
    assert set(np.unique(kids)) <= {0, 6} and abs(minority.mean() - rate) < 0.01
    assert abs((kids[:, 0] == 6).mean() - 0.5) < 0.05  # the first parent is either member
    assert all((row == 0).all() or (row == 6).all() for row in crossover(top, 50, 0.0, rng))
    mutants = mutate(top[:1], n, rate, 7, rng)
    assert abs((mutants != 0).mean() - rate * 6 / 7) < 0.01  # resampled over all 7 scales
    assert (mutate(top[:1], 10, 0.0, 7, rng) == 0).all()


def test_algorithm_2_bookkeeping() -> None:
    """P_0 starts with the base, every population has P members predicted within the tolerance, P_i holds the
    k best scored so far plus (P-k)/2 crossover and (P-k)/2 mutation children never scored before, each
    configuration is scored once (21 live layers; nothing is trained)."""
    full = create_space("mbconv-small")
    space = channel_space_for({"space": "mbconv-small", "space_config": full.config,
                               "arch_id": full.arch_id((1,) * 21)})
    cost, base_ms = lut(space)
    P, Q, k, tol = 8, 6, 3, 0.02
    sampler = Sampler(space, cost, base_ms, tol, max_draws=5000, draw_batch=64)
    weights = np.random.default_rng(1).normal(size=space.n_layers)
    score = Cached(lambda a: float(np.dot(weights, a)))
    base = (ONE,) * space.n_layers
    ev = evolve(space, sampler, score, population=P, iterations=Q, top_k=k, rate=0.5,
                rng=np.random.default_rng(0), seeds=[base])
    pops = ev.populations
    assert len(pops) == Q and tuple(pops[0][0]) == base and ev.seeded == [True]
    assert all(len(p) == P for p in pops)
    every = np.concatenate(pops)
    assert (np.abs(predict_archs(cost, space, every) / base_ms - 1) <= tol + 1e-6).all()
    seen: set[bytes] = set()
    for i, pop in enumerate(pops):
        keys = [r.tobytes() for r in pop]
        assert len(set(keys)) == P  # no duplicate within a population
        if i:
            best = sorted(seen, key=lambda key: (-ev.scores[key], ev.order[key]))[:k]
            assert keys[-k:] == best  # Topk carried over
            assert not set(keys[:-k]) & seen  # the children are new
        seen |= set(keys)
    assert ev.top == sorted(seen, key=lambda key: (-ev.scores[key], ev.order[key]))[:k]
    assert score.evaluations == len(seen) == len(ev.order) and score.hits == P * Q - len(seen)
    c = sampler.counts
    assert all(x.short == 0 for x in c.values()) and c["init"].accepted == P - 1
    assert c["crossover"].accepted == (P - k) // 2 * (Q - 1) and c["mutation"].accepted == (P - k + 1) // 2 * (Q - 1)
    assert [h["best_bte"] for h in ev.history] == sorted(h["best_bte"] for h in ev.history)


def test_a_base_off_the_target_is_not_seeded(tiny) -> None:
    space, cost, base_ms = tiny
    sampler = Sampler(space, cost, base_ms * 1.1, 0.02, max_draws=5000, draw_batch=64)
    ev = evolve(space, sampler, Cached(lambda a: float(sum(a))), population=4, iterations=1, top_k=2, rate=0.5,
                rng=np.random.default_rng(0), seeds=[(ONE,) * space.n_layers])
    assert ev.seeded == [False] and (ONE,) * space.n_layers not in {tuple(r) for r in ev.populations[0]}


def test_the_search_end_to_end_is_deterministic_and_cached(tiny) -> None:
    space, cost, base_ms = tiny
    res = LightNASChannels(predictor=cost, target=base_ms, base=found(), seed=3, **SMALL).search()
    res.check()
    d = res.to_dict()
    assert d["space"] == "mbconv-channels" and d["space_config"] == space.config
    assert d["base"]["in_population"] and d["base"]["arch_id"] == space.base_id
    assert d["bte"] >= d["base"]["bte"] and d["bte"] == max(t["bte"] for t in d["top"])
    assert abs(d["predicted"] / base_ms - 1) <= 0.02 and d["scales"] == list(space.scales(d["arch"]))
    assert len(d["history"]) == SMALL["iterations"] and d["history"][0]["population"] == SMALL["population"]
    assert d["cache_hits"] >= SMALL["top_k"] * (SMALL["iterations"] - 1)  # the top-k is never retrained
    again = LightNASChannels(predictor=cost, target=base_ms, base=found(), seed=3, **SMALL).fit()
    assert again.result_.arch_id == res.arch_id and again.result_.bte == res.bte
    assert len(again.scores_) == again.result_.evaluations  # one training per configuration


def test_an_unreachable_target_names_the_range(tiny) -> None:
    space, cost, base_ms = tiny
    lo, hi = (float(v) for v in predict_archs(cost, space, [(0,) * space.n_layers, (6,) * space.n_layers]))
    with pytest.raises(UserInputError, match=rf"cannot be met.*{lo:.4g}-{hi:.4g} ms"):
        LightNASChannels(predictor=cost, target=hi * 1.5, base=found(), **SMALL).search()


def test_a_reachable_target_that_no_draw_meets_is_refused(tiny) -> None:
    space, cost, base_ms = tiny
    with pytest.raises(UserInputError, match=r"no channel configuration .* in \d+ draws: the predictor's range"):
        LightNASChannels(predictor=cost, target=base_ms * 1.013, base=found(), tolerance=1e-9, max_draws=2,
                         seed_base=False, **SMALL).search()


def test_a_predictor_of_another_base_or_space_is_refused(tiny) -> None:
    space, _, base_ms = tiny
    other = channel_space_for(found((1,) * 8))
    with pytest.raises(UserInputError, match=rf"base {other.base_id}.*base {space.base_id}"):
        LightNASChannels(predictor=lut(other)[0], target=base_ms, base=found(), **SMALL).search()
    small = create_space("mbconv-small", **TINY)
    macro = lut_cost_model(np.ones((small.n_layers, small.n_ops)), small)
    with pytest.raises(UserInputError, match="'mbconv-small'.*mbconv-channels"):
        LightNASChannels(predictor=macro, target=base_ms, base=found(), **SMALL).search()


@pytest.mark.parametrize(("change", "word"), [({"top_k": 5}, "top_k"), ({"rate": 1.5}, "'rate'"),
                                              ({"epochs": 1}, "'epochs'"), ({"images": 8}, "full batch"),
                                              ({"tolerance": 0.0}, "'tolerance'")])
def test_bad_parameters_are_named(tiny, change: dict, word: str) -> None:
    space, cost, base_ms = tiny
    with pytest.raises(InvalidParameterError, match=word):
        LightNASChannels(predictor=cost, target=base_ms, base=found(), **{**SMALL, **change}).fit()
