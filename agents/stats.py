"""Latency statistics: pure functions, no I/O.

The median is the headline because Jetson latencies have rare 10-30x outliers that wreck the mean. Its
confidence interval comes from order statistics, so it assumes nothing about the distribution.
"""

import math

import numpy as np

# Acklam's rational approximation of the inverse normal CDF (relative error < 1.15e-9 before refinement)
_A = (
    -3.969683028665376e01,
    2.209460984245205e02,
    -2.759285104469687e02,
    1.383577518672690e02,
    -3.066479806614716e01,
    2.506628277459239e00,
)
_B = (
    -5.447609879822406e01,
    1.615858368580409e02,
    -1.556989798598866e02,
    6.680131188771972e01,
    -1.328068155288572e01,
)
_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425


def normal_quantile(p):
    """z such that P(Z <= z) = p for a standard normal Z (Acklam + one Halley step; ~1e-15 accurate)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if p < _P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        x = (((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / (
            (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0
        )
    elif p <= 1.0 - _P_LOW:
        q = p - 0.5
        r = q * q
        x = (
            (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5])
            * q
            / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
        )
    else:
        q = math.sqrt(-2.0 * math.log(1.0 - p))
        x = -(((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]) / (
            (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0
        )
    # one Halley refinement step using the exact CDF via erfc
    e = 0.5 * math.erfc(-x / math.sqrt(2.0)) - p
    u = e * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


def two_sided_z(confidence):
    """The z of a two-sided interval: 1.95996 for 0.95."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return normal_quantile(0.5 + confidence / 2.0)


def median_ci_ranks(n, z):
    """0-based ranks (j, k) of the order statistics bounding the median's CI (clamped to [0, n-1])."""
    half = z * math.sqrt(n) / 2.0
    j = math.floor(n / 2.0 - half)
    k = math.ceil(n / 2.0 + half)
    return max(0, min(n - 1, j)), max(0, min(n - 1, k))


def _median_sorted(xs):
    n = len(xs)
    mid = n // 2
    return float(xs[mid]) if n % 2 else (float(xs[mid - 1]) + float(xs[mid])) / 2.0


def median_ci(sorted_values, z):
    """(median, half-width) of the distribution-free CI of the median; sorted_values must be sorted."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("no samples")
    j, k = median_ci_ranks(n, z)
    return _median_sorted(sorted_values), (float(sorted_values[k]) - float(sorted_values[j])) / 2.0


def relative_ci(sorted_values, z):
    """Half-width / median; inf when it is undefined (median <= 0). Cheap enough to call after every run."""
    median, half = median_ci(sorted_values, z)
    return half / median if median > 0 else float("inf")


def summarize(samples_ms, confidence=0.95):
    """The `latency_ms` block of a result (without `converged`, which only the stop rule knows).

    std uses ddof=1; with a single sample std, cv and the CI are None. Percentiles interpolate linearly
    (numpy's default), iqr_mean is the mean of the values within [Q1, Q3].
    """
    x = np.sort(np.asarray(samples_ms, dtype=np.float64).ravel())
    n = int(x.size)
    if n == 0:
        raise ValueError("summarize() needs at least one sample")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples contain NaN or infinite values")
    mean = float(np.mean(x))
    p10, q1, p50, q3, p90, p99 = (float(v) for v in np.percentile(x, [10, 25, 50, 75, 90, 99]))
    inside = x[(x >= q1) & (x <= q3)]
    out = {
        "median": p50,
        "mean": mean,
        "std": None,
        "min": float(x[0]),
        "max": float(x[-1]),
        "p10": p10,
        "p90": p90,
        "p99": p99,
        "iqr_mean": float(np.mean(inside)) if inside.size else p50,
        "cv": None,
        "n": n,
        "ci_halfwidth": None,
        "ci_rel": None,
        "confidence": float(confidence),
    }
    if n >= 2:
        std = float(np.std(x, ddof=1))
        out["std"] = std
        out["cv"] = std / mean if mean > 0 else None
        _, half = median_ci(x, two_sided_z(confidence))
        out["ci_halfwidth"] = half
        out["ci_rel"] = half / p50 if p50 > 0 else None
    return out


def quartiles(samples):
    """(Q1, Q3) with linear interpolation."""
    q1, q3 = np.percentile(np.asarray(samples, dtype=np.float64), [25, 75])
    return float(q1), float(q3)
