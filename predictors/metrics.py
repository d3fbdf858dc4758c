"""Latency-predictor metrics, pure functions over (pred, true) arrays of latencies.

The set and the definitions follow the field's published numbers (shared spec, field practice §2 and §7)
so our results compare with them: RMSE, MAE, MAPE, nn-Meter's accuracy within a tolerance
(acc5 / acc10: share of models with |pred - true| <= tol * true), Spearman's rho (HELP, BRP-NAS) and
Kendall's tau. `report` bundles them with the number of target-device samples and the split, which every
published figure depends on and which a bare number would hide.

Inputs are validated once: 1-D, same length, non-empty, finite, and true latencies positive (relative
errors divide by them). Rank correlations are NaN where they are undefined (fewer than two models, or
a constant input), rather than an exception, so a report on a degenerate predictor still comes out.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

ArrayLike = Sequence[float] | np.ndarray

# Relative slack on the acc_within bound: |1.1 - 1.0| is 0.10000000000000009 in floating point, and a
# prediction exactly on the bound must count as within it, as the definition says.
_BOUND_SLACK = 1e-12


def _check(pred: ArrayLike, true: ArrayLike, positive: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(pred, true) as float64 1-D arrays, or a ValueError saying what is wrong with them (`positive`: the
    true values must be > 0, as latencies are and relative errors need)."""
    arrays = []
    for label, values in (("pred", pred), ("true", true)):
        try:
            a = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{label} must be a sequence of numbers") from None
        if a.ndim != 1:
            raise ValueError(f"{label} must be 1-D, got shape {a.shape}")
        arrays.append(a)
    p, t = arrays
    if p.shape != t.shape:
        raise ValueError(f"pred and true must have the same length, got {p.size} and {t.size}")
    if p.size == 0:
        raise ValueError("pred and true are empty")
    for label, a in (("pred", p), ("true", t)):
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise ValueError(f"{label} has {bad.size} non-finite value(s), first at index {bad[0]}: {a[bad[0]]}")
    bad = np.flatnonzero(t <= 0) if positive else np.flatnonzero(t < 0)
    if bad.size:
        what = "true latencies must be positive" if positive else "true values must be >= 0"
        raise ValueError(f"{what}; {bad.size} are not, first at index {bad[0]}: {t[bad[0]]}")
    return p, t


def rmse(pred: ArrayLike, true: ArrayLike) -> float:
    """Root mean squared error, in the latencies' unit."""
    p, t = _check(pred, true)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(pred: ArrayLike, true: ArrayLike) -> float:
    """Mean absolute error, in the latencies' unit."""
    p, t = _check(pred, true)
    return float(np.mean(np.abs(p - t)))


def mape(pred: ArrayLike, true: ArrayLike) -> float:
    """Mean absolute percentage error, in percent (NNLQP / BRP-NAS report it so)."""
    p, t = _check(pred, true)
    return float(np.mean(np.abs(p - t) / t) * 100.0)


def acc_within(pred: ArrayLike, true: ArrayLike, tol: float) -> float:
    """nn-Meter's accuracy: the share (0..1) of models with |pred - true| <= tol * true."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not math.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0 (0.1 for +-10%), got {tol!r}")
    p, t = _check(pred, true)
    return float(np.mean(np.abs(p - t) <= tol * t * (1.0 + _BOUND_SLACK)))


def _rank_corr(fn: Any, pred: ArrayLike, true: ArrayLike, positive: bool = True) -> float:
    p, t = _check(pred, true, positive)
    if p.size < 2 or np.all(p == p[0]) or np.all(t == t[0]):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(p, t).statistic)


def spearman(pred: ArrayLike, true: ArrayLike) -> float:
    """Spearman's rank correlation rho (HELP's and BRP-NAS's headline metric); NaN if undefined."""
    return _rank_corr(stats.spearmanr, pred, true)


def kendall(pred: ArrayLike, true: ArrayLike) -> float:
    """Kendall's tau-b (ties handled); NaN if undefined."""
    return _rank_corr(stats.kendalltau, pred, true)


def report(pred: ArrayLike, true: ArrayLike, n_target_samples: int, split: str, positive: bool = True
           ) -> dict[str, Any]:
    """Every metric plus n, the number of target-device samples the predictor saw, and the split's name.

    Keys: rmse, mae, mape (%), acc5, acc10 (shares), spearman, kendall, n, n_target_samples, split.
    `positive=False` (accuracies: a network that learned nothing scores 0%) admits zero true values; the
    relative metrics (mape, acc5, acc10) are then over the positive ones (NaN when there are none).
    """
    if isinstance(n_target_samples, bool) or not isinstance(n_target_samples, numbers.Integral) \
            or n_target_samples < 0:
        raise ValueError(f"n_target_samples must be an int >= 0, got {n_target_samples!r}")
    if not isinstance(split, str) or not split.strip():
        raise ValueError(f"split must name the evaluation split (a non-empty str), got {split!r}")
    p, t = _check(pred, true, positive)
    pos = t > 0
    rp, rt = p[pos], t[pos]
    nan = float("nan")
    return {
        "rmse": float(np.sqrt(np.mean((p - t) ** 2))),
        "mae": float(np.mean(np.abs(p - t))),
        "mape": mape(rp, rt) if rt.size else nan,
        "acc5": acc_within(rp, rt, 0.05) if rt.size else nan,
        "acc10": acc_within(rp, rt, 0.10) if rt.size else nan,
        "spearman": _rank_corr(stats.spearmanr, p, t, positive),
        "kendall": _rank_corr(stats.kendalltau, p, t, positive),
        "n": int(p.size),
        "n_target_samples": int(n_target_samples),
        "split": split,
    }


def summary_line(m: dict[str, Any]) -> str:
    """A `report` on one line, for people: rank and error metrics, then what it was measured on."""
    return (f"ρ {m['spearman']:.3f}  τ {m['kendall']:.3f}  Acc@10 {100 * m['acc10']:.1f}%  "
            f"Acc@5 {100 * m['acc5']:.1f}%  MAPE {m['mape']:.2f}%  RMSE {m['rmse']:.4f} ms  "
            f"(n={m['n']}, {m['n_target_samples']} target samples, {m['split']})")
