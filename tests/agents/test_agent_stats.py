import math

import numpy as np
import pytest

from agents.stats import median_ci, median_ci_ranks, normal_quantile, relative_ci, summarize, two_sided_z


def test_z_of_095():
    assert two_sided_z(0.95) == pytest.approx(1.959963984540054, abs=1e-9)
    assert two_sided_z(0.99) == pytest.approx(2.5758293035489, abs=1e-9)


def test_normal_quantile_matches_scipy():
    from scipy.stats import norm
    for p in [1e-12, 1e-6, 0.001, 0.01, 0.02425, 0.1, 0.3, 0.5, 0.7, 0.9, 0.975, 0.99, 0.999, 1 - 1e-9]:
        assert normal_quantile(p) == pytest.approx(norm.ppf(p), rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError):
        normal_quantile(1.0)


def test_ranks_known_values():
    assert median_ci_ranks(20, 1.959964) == (5, 15)
    assert median_ci_ranks(100, 1.959964) == (40, 60)
    assert median_ci_ranks(3, 1.959964) == (0, 2)  # clamped
    assert median_ci_ranks(1, 1.959964) == (0, 0)


def test_order_statistic_interval_covers_the_median_at_the_confidence():
    """Exact coverage of [x_(j), x_(k)] for a continuous distribution: P(j+1 <= B <= k), B ~ Bin(n, 1/2)."""
    from scipy.stats import binom
    z = two_sided_z(0.95)
    for n in (20, 30, 57, 100, 200):
        j, k = median_ci_ranks(n, z)
        coverage = binom.cdf(k, n, 0.5) - binom.cdf(j, n, 0.5)
        assert 0.94 <= coverage <= 0.99, (n, coverage)


def test_summarize_1_to_100():
    x = np.arange(1, 101, dtype=float)
    s = summarize(np.random.default_rng(0).permutation(x))
    assert s["median"] == 50.5 and s["mean"] == 50.5
    assert s["min"] == 1.0 and s["max"] == 100.0
    assert s["std"] == pytest.approx(np.std(x, ddof=1))
    assert s["p10"] == pytest.approx(np.percentile(x, 10))
    assert s["p90"] == pytest.approx(np.percentile(x, 90))
    assert s["p99"] == pytest.approx(np.percentile(x, 99))
    assert s["iqr_mean"] == pytest.approx(np.mean(np.arange(26, 76)))  # Q1 = 25.75, Q3 = 75.25
    assert s["cv"] == pytest.approx(s["std"] / 50.5)
    assert s["ci_halfwidth"] == pytest.approx((61 - 41) / 2)  # ranks 40 and 60 (0-based)
    assert s["ci_rel"] == pytest.approx(10 / 50.5)
    assert s["n"] == 100 and s["confidence"] == 0.95
    assert all(isinstance(v, (int, float)) for v in s.values())


def test_summarize_matches_numpy_on_skewed_data():
    x = np.random.default_rng(3).lognormal(0.0, 0.3, size=57)
    s = summarize(x.tolist(), confidence=0.9)
    assert s["median"] == pytest.approx(np.median(x))
    assert s["mean"] == pytest.approx(np.mean(x))
    assert s["std"] == pytest.approx(np.std(x, ddof=1))
    q1, q3 = np.percentile(x, [25, 75])
    assert s["iqr_mean"] == pytest.approx(np.mean(x[(x >= q1) & (x <= q3)]))
    xs = np.sort(x)
    j, k = median_ci_ranks(57, two_sided_z(0.9))
    assert s["ci_halfwidth"] == pytest.approx((xs[k] - xs[j]) / 2)
    assert s["confidence"] == 0.9


def test_single_sample_and_errors():
    s = summarize([2.0])
    assert s["median"] == 2.0 and s["n"] == 1
    assert s["std"] is None and s["cv"] is None and s["ci_halfwidth"] is None and s["ci_rel"] is None
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0, math.nan])


def test_relative_ci_helpers():
    assert median_ci([1.0, 2.0, 3.0], 1.96) == (2.0, 1.0)
    assert relative_ci([1.0] * 30, 1.96) == 0.0
    assert relative_ci([0.0, 0.0, 0.0], 1.96) == math.inf


def test_interval_contains_true_median_in_simulation():
    """The order-statistic interval behind ci_halfwidth covers the true median ~95% of the time."""
    rng = np.random.default_rng(7)
    z = two_sided_z(0.95)
    j, k = median_ci_ranks(60, z)
    hits = 0
    for _ in range(2000):
        xs = np.sort(rng.lognormal(0.0, 0.5, size=60))  # true median exp(0) = 1
        hits += xs[j] <= 1.0 <= xs[k]
    assert 0.93 <= hits / 2000 <= 0.99
