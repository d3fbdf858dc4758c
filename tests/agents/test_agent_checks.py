import numpy as np

from agents.checks import stability_warnings
from agents.protocol import DEFAULT_PROTOCOL
from agents.stats import summarize
from agents.timing import STOP_MAX_RUNS, STOP_MAX_TIME


def stats_of(samples, converged=True):
    s = summarize(samples)
    s["converged"] = converged
    return s


def steady(n=60, level=1.0, seed=0):
    return list(level + np.random.default_rng(seed).normal(0, 0.002 * level, size=n))


def warnings_for(samples, converged=True, **kw):
    return stability_warnings(stats_of(samples, converged), samples, **kw)


def find(warnings, prefix):
    hits = [w for w in warnings if w.startswith(prefix)]
    assert len(hits) == 1, warnings
    return hits[0]


def test_a_clean_measurement_has_no_warnings():
    assert warnings_for(steady()) == []


def test_not_converged_says_which_bound_and_what_to_do():
    s = steady(200)
    w = find(warnings_for(s, converged=False, stopped_by=STOP_MAX_RUNS), "not converged")
    assert "max_runs=200" in w and "Raise max_runs" in w and "after 200 runs" in w
    w = find(warnings_for(s[:40], converged=False, stopped_by=STOP_MAX_TIME), "not converged")
    assert "max_time_s=60" in w and "Raise max_time_s" in w
    # without stopped_by the bound is inferred from n and max_runs
    assert "max_runs=200" in find(warnings_for(s, converged=False), "not converged")
    assert "max_time_s" in find(warnings_for(s[:40], converged=False), "not converged")


def test_high_cv():
    s = list(np.random.default_rng(1).uniform(1.0, 1.6, size=60))
    assert "std dev is" in find(warnings_for(s), "unstable")


def test_outliers_are_counted():
    s = steady(50) + [3.0, 3.2]
    w = find(warnings_for(s), "outliers")
    assert "2 of 52 samples" in w and "3.2 ms" in w


def test_too_few_runs():
    w = find(warnings_for(steady(5)), "only 5 timed runs")
    assert "min_runs=20" in w


def test_tiny_samples_hit_the_timer_resolution():
    assert "< 0.05 ms" in find(warnings_for(steady(60, level=0.01)), "the shortest sample is 0.0099")


def test_trend_between_halves():
    s = steady(30, 1.0) + steady(30, 1.1, seed=1)
    w = find(warnings_for(s), "trend")
    assert "+10." in w and "throttling" in w


def test_empty():
    assert stability_warnings({"converged": False}, [], DEFAULT_PROTOCOL) == [
        "no timed samples: nothing was measured."
    ]
