"""Energy from power traces: pure functions.

The trapezoid integral runs over exactly [t0, t1], the timed window, interpolating the power at both
edges, so warm-up and idle time around the window never leak into the energy per inference. Counter
meters (RAPL, NVML energy) become step traces (counter_to_power) whose integral is the counter difference.
"""

import numpy as np


def integrate_energy(t_s, power_mw, t0, t1):
    """Energy in mJ (mW x s) of a power trace over [t0, t1]; the trace must cover the window."""
    t = np.asarray(t_s, dtype=np.float64).ravel()
    p = np.asarray(power_mw, dtype=np.float64).ravel()
    if t.size != p.size:
        raise ValueError(f"t_s and power_mw differ in length ({t.size} vs {p.size})")
    if t1 < t0:
        raise ValueError(f"window end {t1!r} is before its start {t0!r}")
    if t.size < 2:
        raise ValueError(f"a trace needs at least 2 samples, got {t.size}")
    if np.any(np.diff(t) < 0):
        raise ValueError("trace timestamps are not in order")
    if t0 < t[0] or t1 > t[-1]:
        raise ValueError(
            f"trace [{t[0]:.6f}, {t[-1]:.6f}] s does not cover the window [{t0:.6f}, {t1:.6f}] s"
        )
    if t1 == t0:
        return 0.0
    # F(x): the trapezoid integral from t[0] to x. Working on F keeps a window edge that falls exactly on
    # a repeated timestamp (the step traces of counter meters) on the correct side of the step.
    cum = np.concatenate(([0.0], np.cumsum((p[1:] + p[:-1]) * 0.5 * np.diff(t))))
    return float(_cumulative_at(t, p, cum, t1) - _cumulative_at(t, p, cum, t0))


def _cumulative_at(t, p, cum, x):
    j = int(np.searchsorted(t, x, side="right")) - 1  # t[j] <= x < t[j + 1]
    j = min(max(j, 0), t.size - 2)
    dt = t[j + 1] - t[j]
    if dt <= 0:
        return cum[j]
    u = x - t[j]
    slope = (p[j + 1] - p[j]) / dt
    return cum[j] + u * (p[j] + 0.5 * slope * u)


def counter_to_power(t_s, energy_mj):
    """A step power trace (t, mW) from a cumulative energy counter read at times t_s (mJ, unwrapped).

    Interval i between reads i-1 and i gets the constant power dE/dt, written as two points at its ends
    (shared timestamps between intervals), so the trapezoid integral over any window of whole intervals
    equals the counter difference exactly, and a window edge inside an interval takes its share.
    """
    t = [float(v) for v in t_s]
    e = [float(v) for v in energy_mj]
    if len(t) != len(e):
        raise ValueError(f"t_s and energy_mj differ in length ({len(t)} vs {len(e)})")
    out_t = []
    out_p = []
    for i in range(1, len(t)):
        dt = t[i] - t[i - 1]
        if dt <= 0:
            continue
        p = (e[i] - e[i - 1]) / dt  # mJ/s = mW
        if not out_t or out_t[-1] != t[i - 1] or out_p[-1] != p:
            out_t.append(t[i - 1])
            out_p.append(p)
        out_t.append(t[i])
        out_p.append(p)
    return out_t, out_p


def window_sample_count(t_s, t0, t1):
    """Distinct sample times inside [t0, t1] (step traces repeat a time at each interval edge)."""
    t = np.unique(np.asarray(t_s, dtype=np.float64))
    return int(np.count_nonzero((t >= t0) & (t <= t1)))


def energy_per_inference(trace, t0, t1, n_inferences, idle_power_mw=None, extended=False):
    """The result's `energy` block: gross and idle-subtracted (net) mJ per inference over [t0, t1].

    trace: a PowerTrace (or anything with t_s, power_mw, rail, rule). net_mj is None when idle power is
    unknown. extended: the window was lengthened past the timed phase to hold enough power samples.
    """
    if n_inferences <= 0:
        raise ValueError(f"n_inferences must be > 0, got {n_inferences!r}")
    total_mj = integrate_energy(trace.t_s, trace.power_mw, t0, t1)
    duration = t1 - t0
    t = np.unique(np.asarray(trace.t_s, dtype=np.float64))
    in_window = t[(t >= t0) & (t <= t1)]
    n_samples = int(in_window.size)
    rate = None
    if n_samples >= 2 and in_window[-1] > in_window[0]:
        rate = float((n_samples - 1) / (in_window[-1] - in_window[0]))
    elif t.size >= 2 and t[-1] > t[0]:
        rate = float((t.size - 1) / (t[-1] - t[0]))
    net = None
    if idle_power_mw is not None:
        net = (total_mj - float(idle_power_mw) * duration) / n_inferences
    return {
        "gross_mj": total_mj / n_inferences,
        "net_mj": net,
        "mean_power_mw": total_mj / duration if duration > 0 else None,
        "idle_power_mw": None if idle_power_mw is None else float(idle_power_mw),
        "rail": getattr(trace, "rail", None),
        "rule": getattr(trace, "rule", None),
        "sample_rate_hz": rate,
        "n_samples": n_samples,
        "window_s": float(duration),
        "extended": bool(extended),
        "n_runs": int(n_inferences),
    }
