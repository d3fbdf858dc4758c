"""hwsearch.pareto against fronts worked by hand, and against brute force on random (tied) sets."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hwsearch.pareto import best_under, hypervolume, pareto_front, regret

# (cost, acc); worked by hand:
#   0 (1, 50) front   1 (2, 60) front   2 (2, 55) dominated by 1   3 (3, 58) dominated by 1
#   4 (4, 70) front   5 (5, 70) dominated by 4 (same accuracy, dearer)   6 (6, 75) front
#   7 (4, 70) equal to 4 in both: on the front once, as 4 (the first)
COST = np.array([1, 2, 2, 3, 4, 5, 6, 4], dtype=float)
ACC = np.array([50, 60, 55, 58, 70, 70, 75, 70], dtype=float)


def test_front_of_the_hand_example():
    front = pareto_front(COST, ACC)
    assert front.tolist() == [0, 1, 4, 6]


def test_front_is_sorted_by_cost_whatever_the_input_order():
    perm = np.array([6, 3, 0, 5, 2, 7, 1, 4])
    front = pareto_front(COST[perm], ACC[perm])
    assert COST[perm][front].tolist() == [1, 2, 4, 6]
    assert ACC[perm][front].tolist() == [50, 60, 70, 75]
    # of the two equal (4, 70) points, the first in the input (old 7 at position 5) is kept
    assert 5 in front and 7 not in front


@pytest.mark.parametrize(("budget", "best"), [
    (0.5, np.nan), (1.0, 50), (1.5, 50), (2.0, 60), (3.9, 60), (4.0, 70), (5.5, 70), (6.0, 75), (100, 75)])
def test_best_under_scalar(budget, best):
    got = best_under(COST, ACC, budget)
    assert isinstance(got, float)
    np.testing.assert_equal(got, best)


def test_best_under_vectorised_matches_scalar():
    budgets = np.array([[0.5, 1.0, 2.0], [3.9, 4.0, 100.0]])
    got = best_under(COST, ACC, budgets)
    assert got.shape == budgets.shape
    want = [[best_under(COST, ACC, float(b)) for b in row] for row in budgets]
    np.testing.assert_equal(got, np.array(want))


def test_regret_by_hand():
    # front points: 0; dominated: 2 -> 60-55, 3 -> 60-58; 5 is only weakly dominated: regret 0
    np.testing.assert_array_equal(regret(COST, ACC, COST, ACC), [0, 0, 5, 2, 0, 0, 0, 0])
    assert regret(2.0, 55.0, COST, ACC) == 5.0
    assert regret(10.0, 80.0, COST, ACC) == -5.0  # a point better than the set: negative
    assert np.isnan(regret(0.5, 40.0, COST, ACC))  # cheaper than everything: nothing to compare with


def test_hypervolume_by_hand():
    # front (1,50) (2,60) (4,70) (6,75) against (cost 7, acc 40), as rectangles between successive costs:
    # [1,2) x 10 + [2,4) x 20 + [4,6) x 30 + [6,7) x 35 = 10 + 40 + 60 + 35
    assert hypervolume(COST, ACC, 7.0, 40.0) == pytest.approx(145.0)
    # against (5, 55): only (2,60) (3,58) (4,70) are inside; front (2,60) (4,70): 2 x 5 + 1 x 15
    assert hypervolume(COST, ACC, 5.0, 55.0) == pytest.approx(25.0)
    # dominated points and duplicates add nothing
    front = pareto_front(COST, ACC)
    assert hypervolume(COST[front], ACC[front], 7.0, 40.0) == pytest.approx(145.0)


def test_hypervolume_points_beyond_the_reference_count_nothing():
    assert hypervolume(COST, ACC, 1.0, 40.0) == 0.0  # nothing cheaper than the reference
    assert hypervolume(COST, ACC, 100.0, 75.0) == 0.0  # nothing more accurate than it
    assert hypervolume([1.0, 20.0], [50.0, 90.0], 10.0, 40.0) == pytest.approx(90.0)


def test_single_point_and_empty_set():
    assert pareto_front([3.0], [10.0]).tolist() == [0]
    assert best_under([3.0], [10.0], 3.0) == 10.0
    assert np.isnan(best_under([3.0], [10.0], 2.9))
    assert regret(3.0, 10.0, [3.0], [10.0]) == 0.0
    assert hypervolume([3.0], [10.0], 5.0, 0.0) == pytest.approx(20.0)
    assert pareto_front([], []).tolist() == []
    assert np.isnan(best_under([], [], 1.0))
    assert np.isnan(best_under([], [], [1.0, 2.0])).all()
    assert hypervolume([], [], 1.0, 0.0) == 0.0


def test_all_duplicates_keep_the_first():
    assert pareto_front([2.0, 2.0, 2.0], [5.0, 5.0, 5.0]).tolist() == [0]


@pytest.mark.parametrize("bad", [
    lambda: pareto_front([1.0, np.nan], [1.0, 2.0]),
    lambda: pareto_front([1.0, 2.0], [1.0, np.nan]),
    lambda: best_under([1.0], [1.0], [np.nan]),
    lambda: regret(1.0, np.nan, [1.0], [1.0]),
    lambda: hypervolume([1.0], [1.0], np.nan, 0.0),
    lambda: pareto_front([1.0, 2.0], [1.0]),
    lambda: pareto_front([[1.0]], [[1.0]]),
])
def test_refused_inputs(bad):
    with pytest.raises(ValueError):
        bad()


def _brute_front(c, a):
    """O(n^2): i is on the front iff no j dominates it, and no equal j comes before it."""
    keep = []
    for i in range(len(c)):
        beaten = False
        for j in range(len(c)):
            if j == i:
                continue
            no_worse = c[j] <= c[i] and a[j] >= a[i]
            better = c[j] < c[i] or a[j] > a[i]
            if no_worse and (better or j < i):
                beaten = True
                break
        if not beaten:
            keep.append(i)
    return set(keep)


@pytest.mark.parametrize("seed", range(20))
def test_front_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    c = rng.integers(0, 8, n).astype(float)  # few values: many ties in cost, accuracy and both
    a = rng.integers(0, 8, n).astype(float)
    front = pareto_front(c, a)
    assert set(front.tolist()) == _brute_front(c, a)
    assert np.all(np.diff(c[front]) > 0)  # sorted by cost, strictly (one point per cost on a front)
    assert np.all(np.diff(a[front]) > 0)
    r = regret(c, a, c, a)
    assert np.all(r >= 0)
    assert np.all(r[front] == 0)
    for i in range(n):  # best_under against a direct maximum
        assert best_under(c, a, c[i]) == a[c <= c[i]].max()


def test_regret_of_a_whole_space_is_fast():
    rng = np.random.default_rng(0)
    c = rng.lognormal(size=15_625)
    a = rng.uniform(0, 100, 15_625)
    t = time.perf_counter()
    r = regret(c, a, c, a)
    assert time.perf_counter() - t < 1.0
    assert r.shape == (15_625,) and np.all(r >= 0)
