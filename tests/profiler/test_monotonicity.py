"""Performance-monotonicity grouping (profiler.monotonicity) on synthetic latencies: the ratio fit, the R^2
definition, complete linkage, unknown pairs, representatives, the JSON form."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from profiler.monotonicity import (
    PairFit,
    centred_r2,
    complete_linkage,
    group_devices,
    medoid,
    pairwise_fits,
    ratio_fit,
)
from spaces.errors import UserInputError

RNG = np.random.default_rng(7)
BASE = RNG.uniform(1.0, 10.0, 200)  # 200 archs' latency on a reference device
IDS = [f"a{i}" for i in range(BASE.size)]


def noisy(scale: float, rel: float = 0.01, seed: int = 0) -> np.ndarray:
    return scale * BASE * (1 + np.random.default_rng(seed).normal(0, rel, BASE.size))


def test_ratio_fit_recovers_gamma_exactly() -> None:
    gamma, r2 = ratio_fit(2.5 * BASE, BASE)
    assert gamma == pytest.approx(2.5, rel=1e-12) and r2 == pytest.approx(1.0, abs=1e-12)
    gamma, _ = ratio_fit(BASE, 2.5 * BASE)
    assert gamma == pytest.approx(0.4, rel=1e-12)


def test_r2_is_the_centred_one_and_an_offset_fails_it() -> None:
    """A fixed overhead (a + c) ranks the archs the same but is not proportional: the centred R^2 punishes it
    (the uncentred one, the squared cosine, would not); the value is 1 - SSE/sum((a - mean a)^2)."""
    a = BASE + 5.0  # latencies 1-10 ms plus a 5 ms overhead
    gamma, r2 = ratio_fit(a, BASE)
    sse = float(np.sum((a - gamma * BASE) ** 2))
    assert r2 == pytest.approx(1 - sse / float(np.sum((a - a.mean()) ** 2)), rel=1e-12)
    uncentred = 1 - sse / float(np.sum(a ** 2))
    assert uncentred > 0.95 and r2 < 0.5
    assert centred_r2(np.full(5, 3.0), np.full(5, 3.0)) == 1.0
    assert centred_r2(np.full(5, 3.0), np.arange(5.0)) == -math.inf


def test_pair_r2_is_the_worse_direction() -> None:
    a, b = BASE + 5.0, 3.0 * BASE  # a has the smaller relative spread
    (fit,) = pairwise_fits({"a": (IDS, a), "b": (IDS, b)}, min_common=30)
    assert fit.r2 == min(fit.r2_ab, fit.r2_ba) and fit.r2_ab < fit.r2_ba
    assert fit.rho == pytest.approx(1.0) and fit.n == BASE.size
    assert fit.gamma == pytest.approx(ratio_fit(a, b)[0])


def test_non_proportional_device_splits_off_and_gammas_relate_to_the_representative() -> None:
    data = {"g1": (IDS, noisy(1.0, seed=1)), "g2": (IDS, noisy(2.0, seed=2)), "g3": (IDS, noisy(0.5, seed=3)),
            "launch": (IDS, BASE + 5.0)}  # the same ranking plus a fixed overhead: not proportional
    g = group_devices(data, "s", threshold=0.9, min_common=30)
    assert [sorted(x.members) for x in g.groups] == [["g1", "g2", "g3"], ["launch"]]
    top = g.groups[0]
    assert top.min_r2 is not None and top.min_r2 > 0.99
    rep = data[top.representative][1]
    for m, gamma in top.gamma.items():
        assert gamma * rep == pytest.approx(data[m][1], rel=0.06)
    alone = g.groups[1]
    assert alone.gamma == {} and alone.min_r2 is None
    worst = min(p.r2 for p in g.pairs if "launch" in (p.a, p.b))
    assert alone.nearest == (top.representative, worst) and worst < 0.9
    assert g.order()[:3] == top.members and top.members[0] == top.representative


def fit(a: str, b: str, r2: float | None) -> PairFit:
    return PairFit(a, b, 100 if r2 is not None else 5, 1.0 if r2 is not None else None, r2, r2, r2)


def test_complete_linkage_does_not_chain() -> None:
    """x~y and y~z hold, x~z fails: connected components would give {x, y, z}; complete linkage keeps the
    best pair together and leaves the chain's far end out."""
    fits = [fit("x", "y", 0.95), fit("y", "z", 0.92), fit("x", "z", 0.5)]
    assert complete_linkage(["x", "y", "z"], fits, 0.9) == [["x", "y"], ["z"]]
    fits = [fit("x", "y", 0.91), fit("y", "z", 0.97), fit("x", "z", 0.5)]
    assert complete_linkage(["x", "y", "z"], fits, 0.9) == [["x"], ["y", "z"]]
    fits = [fit("x", "y", 0.95), fit("y", "z", 0.92), fit("x", "z", 0.91)]
    assert complete_linkage(["x", "y", "z"], fits, 0.9) == [["x", "y", "z"]]


def test_unknown_pair_blocks_a_merge() -> None:
    fits = [fit("x", "y", 0.95), fit("y", "z", 0.99), fit("x", "z", None)]
    assert complete_linkage(["x", "y", "z"], fits, 0.9) == [["x"], ["y", "z"]]


def test_too_few_common_archs_is_unknown_never_grouped() -> None:
    few = IDS[:10] + [f"other{i}" for i in range(100)]
    data = {"a": (IDS, BASE), "b": (few, np.concatenate([2 * BASE[:10], RNG.uniform(1, 2, 100)]))}
    g = group_devices(data, "s", threshold=0.9, min_common=30)
    (p,) = g.pairs
    assert (p.n, p.known, p.r2, p.gamma) == (10, False, None, None)
    assert len(g.groups) == 2
    assert g.to_dict()["pairs"][0]["status"] == "unknown"
    g = group_devices(data, "s", threshold=0.9, min_common=10)  # the 10 common archs are exactly 2x
    assert len(g.groups) == 1 and g.pairs[0].gamma == pytest.approx(0.5)


def test_medoid_is_the_member_closest_to_the_others() -> None:
    fits = [fit("a", "b", 0.91), fit("a", "c", 0.93), fit("b", "c", 0.99)]
    assert medoid(["a", "b", "c"], fits, {"a": 10, "b": 30, "c": 10}) == "c"  # mean R^2 first
    fits = [fit("a", "b", 0.92), fit("a", "c", 0.92), fit("b", "c", 0.99)]  # b and c tie
    assert medoid(["a", "b", "c"], fits, {"a": 10, "b": 10, "c": 20}) == "c"  # more archs measured
    assert medoid(["a", "b", "c"], fits, {"a": 10, "b": 10, "c": 10}) == "b"  # then the name


def test_json_is_strict_and_bad_arguments_refused() -> None:
    data = {"a": (IDS, BASE), "flat": (IDS, np.full(BASE.size, 4.0))}  # a constant device: R^2 = -inf
    g = group_devices(data, "s")
    text = json.dumps(g.to_dict(), allow_nan=False)
    assert json.loads(text)["pairs"][0]["r2"] is None and len(g.groups) == 2
    with pytest.raises(UserInputError, match="at least 2 devices"):
        group_devices({"a": (IDS, BASE)}, "s")
    with pytest.raises(UserInputError, match="<= 1"):
        group_devices(data, "s", threshold=1.5)
    with pytest.raises(UserInputError, match="at least 2"):
        group_devices(data, "s", min_common=1)
