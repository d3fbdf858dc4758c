"""Pareto tools over (cost, accuracy): cost (latency or energy) is minimised, accuracy maximised.

Pure functions on 1-D arrays, used to judge a search on both axes: the non-dominated set of a space,
the best accuracy a budget buys, a network's regret (what it leaves on the table at its own cost) and
the hypervolume of a set against a reference point. NaN is refused: a missing latency or accuracy is a
hole in the data, and silently dropping it would move the front.
"""

from __future__ import annotations

import numpy as np


def _pair(cost, acc) -> tuple[np.ndarray, np.ndarray]:
    """`cost` and `acc` as equal-length float 1-D arrays without NaN."""
    c = np.asarray(cost, dtype=float)
    a = np.asarray(acc, dtype=float)
    if c.ndim != 1 or a.ndim != 1:
        raise ValueError(f"cost and acc must be 1-D (got shapes {c.shape} and {a.shape})")
    if c.shape != a.shape:
        raise ValueError(f"cost and acc differ in length ({c.size} vs {a.size})")
    for name, x in (("cost", c), ("acc", a)):
        bad = np.flatnonzero(np.isnan(x))
        if bad.size:
            raise ValueError(f"{name} has {bad.size} NaN value(s) (first at index {int(bad[0])})")
    return c, a


def _by_cost(c: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Indices sorted by cost ascending, then accuracy descending, then index (stable: the first wins)."""
    return np.lexsort((np.arange(c.size), -a, c))


def pareto_front(cost, acc) -> np.ndarray:
    """Indices of the non-dominated points, sorted by cost ascending.

    A point is dominated if another costs no more and is at least as accurate, better in one of the two.
    Of points equal in both, only the first (lowest index) is kept.
    """
    c, a = _pair(cost, acc)
    if c.size == 0:
        return np.zeros(0, dtype=int)
    order = _by_cost(c, a)
    sa = a[order]
    # on the front iff strictly more accurate than everything cheaper or as cheap and earlier in the order
    before = np.concatenate(([-np.inf], np.maximum.accumulate(sa)[:-1]))
    return order[sa > before]


def best_under(cost, acc, budget):
    """Best accuracy among points with cost <= budget (NaN where none); `budget` a scalar or an array.

    Vectorised: one sort and a running maximum, then a binary search per budget.
    """
    c, a = _pair(cost, acc)
    b = np.asarray(budget, dtype=float)
    if np.isnan(b).any():
        raise ValueError("budget has NaN value(s)")
    if c.size == 0:
        out = np.full(b.shape, np.nan)
    else:
        order = np.argsort(c, kind="stable")
        best = np.maximum.accumulate(a[order])
        idx = np.searchsorted(c[order], b, side="right") - 1
        out = np.where(idx >= 0, best[np.maximum(idx, 0)], np.nan)
    return float(out) if out.ndim == 0 else out


def regret(point_cost, point_acc, cost, acc):
    """Best accuracy achievable at <= the point's cost minus the point's accuracy (>= 0 for points of the set).

    NaN for a point cheaper than everything in the set (nothing to compare with).
    """
    pa = np.asarray(point_acc, dtype=float)
    if np.isnan(pa).any():
        raise ValueError("point_acc has NaN value(s)")
    out = best_under(cost, acc, point_cost) - pa
    return float(out) if np.ndim(out) == 0 else out


def hypervolume(cost, acc, ref_cost: float, ref_acc: float) -> float:
    """Area dominated by the set and bounded by the reference point (cost ref_cost, accuracy ref_acc).

    pymoo's HV indicator on (cost, -acc), both minimised. Points not strictly better than the reference in
    both axes contribute nothing.
    """
    c, a = _pair(cost, acc)
    if np.isnan(ref_cost) or np.isnan(ref_acc):
        raise ValueError("the reference point has NaN")
    inside = (c < ref_cost) & (a > ref_acc)
    if not inside.any():
        return 0.0
    from pymoo.indicators.hv import HV

    front = np.column_stack((c[inside], -a[inside]))
    return float(HV(ref_point=np.array([float(ref_cost), -float(ref_acc)]))(front))
