"""Energy from power traces: pure functions.

The trapezoid integral runs over exactly [t0, t1], the timed window, interpolating the power at both
edges, so warm-up and idle time around the window never leak into the energy per inference.
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
    inside = (t > t0) & (t < t1)
    edges = np.interp([t0, t1], t, p)
    tt = np.concatenate(([t0], t[inside], [t1]))
    pp = np.concatenate(([edges[0]], p[inside], [edges[1]]))
    return float(np.sum((pp[1:] + pp[:-1]) * 0.5 * np.diff(tt)))


def energy_per_inference(trace, t0, t1, n_inferences, idle_power_mw=None):
    """The result's `energy` block: gross and idle-subtracted (net) mJ per inference over [t0, t1].

    trace: a PowerTrace (or anything with t_s, power_mw, rail). net_mj is None when idle power is unknown.
    """
    if n_inferences <= 0:
        raise ValueError(f"n_inferences must be > 0, got {n_inferences!r}")
    total_mj = integrate_energy(trace.t_s, trace.power_mw, t0, t1)
    duration = t1 - t0
    t = np.asarray(trace.t_s, dtype=np.float64)
    in_window = t[(t >= t0) & (t <= t1)]
    n_samples = int(in_window.size)
    rate = None
    if n_samples >= 2 and in_window[-1] > in_window[0]:
        rate = float((n_samples - 1) / (in_window[-1] - in_window[0]))
    net = None
    if idle_power_mw is not None:
        net = (total_mj - float(idle_power_mw) * duration) / n_inferences
    return {
        "gross_mj": total_mj / n_inferences,
        "net_mj": net,
        "mean_power_mw": total_mj / duration if duration > 0 else None,
        "idle_power_mw": None if idle_power_mw is None else float(idle_power_mw),
        "rail": getattr(trace, "rail", None),
        "sample_rate_hz": rate,
        "n_samples": n_samples,
    }
