"""Stability warnings stored with each result (pyperf's format_checks, for on-device inference).

Each warning says what was seen and what to do about it, because the person reading it is usually looking
at a results file long after the board was measured.
"""

import numpy as np

from .protocol import DEFAULT_PROTOCOL
from .timing import STOP_MAX_RUNS, STOP_MAX_TIME

CV_WARN = 0.10  # std >= 10% of the mean
MAX_OVER_MEDIAN_WARN = 1.5  # max >= 1.5x the median
MIN_SAMPLE_MS = 0.05  # below this the timer resolution and call overhead matter
TREND_WARN = 0.05  # halves' medians differ by > 5%
TREND_MIN_N = 10


def _pct(x):
    return f"{100.0 * x:.1f}%"


def _not_converged(stats, protocol, stopped_by):
    n = stats.get("n")
    if stopped_by is None:
        stopped_by = STOP_MAX_RUNS if n is not None and n >= protocol["max_runs"] else STOP_MAX_TIME
    if stopped_by == STOP_MAX_RUNS:
        bound, remedy = "max_runs={}".format(protocol["max_runs"]), "Raise max_runs"
    else:
        bound, remedy = "max_time_s={:g}".format(protocol["max_time_s"]), "Raise max_time_s"
    ci_rel = stats.get("ci_rel")
    ci_txt = "undefined" if ci_rel is None else _pct(ci_rel)
    confidence = 100.0 * stats.get("confidence", protocol["confidence"])
    target = _pct(protocol["target_rel_ci"])
    return (
        f"not converged: the {confidence:g}% CI half-width of the median is {ci_txt} of it (target {target}) "
        f"after {n} runs; stopped by {bound}. {remedy}, lock the clocks (jetson_clocks, performance "
        "governor) and stop background load, or accept a looser target_rel_ci."
    )


def stability_warnings(stats, samples, protocol=None, stopped_by=None):
    """Human-readable warnings about a measurement; an empty list means nothing looked wrong.

    stats: the latency_ms block (with "converged" when known); samples: the timed samples in run order;
    protocol: the resolved protocol (defaults when None); stopped_by: which stop rule ended the timed
    phase (timing.run_timed), inferred from n and max_runs when None.
    """
    protocol = protocol or DEFAULT_PROTOCOL
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        return ["no timed samples: nothing was measured."]
    warnings = []
    if stats.get("converged") is False:
        warnings.append(_not_converged(stats, protocol, stopped_by))
    min_runs = protocol["min_runs"]
    if x.size < min_runs:
        warnings.append(
            f"only {x.size} timed runs (min_runs={min_runs}): the statistics are weak; measure again with "
            "more runs."
        )
    cv = stats.get("cv")
    if cv is not None and cv >= CV_WARN:
        warnings.append(
            f"unstable: the std dev is {_pct(cv)} of the mean (>= {_pct(CV_WARN)}). Lock the clocks, stop "
            "background load, check the thermal state, and look at samples_ms for bursts."
        )
    median = stats.get("median")
    xmax = float(np.max(x))
    if median and xmax >= MAX_OVER_MEDIAN_WARN * median:
        q1, q3 = np.percentile(x, [25, 75])
        fence = float(q3 + 1.5 * (q3 - q1))
        n_out = int(np.sum(x > fence))
        warnings.append(
            f"outliers: the max ({xmax:.4g} ms) is {xmax / median:.1f}x the median; {n_out} of {x.size} "
            f"samples lie above Q3+1.5*IQR ({fence:.4g} ms). Likely interrupts, DVFS or other processes; "
            "the median is robust to them, the mean is not."
        )
    xmin = float(np.min(x))
    if xmin < MIN_SAMPLE_MS:
        warnings.append(
            f"the shortest sample is {xmin:.4g} ms (< {MIN_SAMPLE_MS:g} ms): timer resolution and call "
            "overhead are a large part of it. Use a larger batch or model, or treat differences below a "
            "few microseconds as noise."
        )
    if x.size >= TREND_MIN_N:
        half = x.size // 2
        first = float(np.median(x[:half]))
        second = float(np.median(x[half:]))
        if first > 0 and abs(second - first) / first > TREND_WARN:
            change = 100.0 * (second - first) / first
            warnings.append(
                f"trend: the median of the second half of the runs is {change:+.1f}% from the first half's. "
                "Clocks are drifting (DVFS governor) or the board is throttling: lock the clocks, use the "
                "thermal gate (thermal_max_c) or a longer warm-up."
            )
    return warnings
