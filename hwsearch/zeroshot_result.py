"""TPC-NAS's result (the contract plus the proxy, the constraints, the evolution's counts and speeds, the best-score
history and the final candidates), the lines `edgeprof search zeroshot` prints, its history plot, and
`measure_final`: --verify --measure-final K measures the K best candidates on the board and keeps the best by
the proxy whose measured value is within the target (TPC-NAS measured latency in its loop; a board's tens of
milliseconds per network fit only the last few candidates, so the predictor filters and the board decides)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwsearch.result import SearchResult, save_figure


@dataclass(kw_only=True)
class ZeroShotResult(SearchResult):
    """The contract (arch: the highest proxy score of the final population) plus how it was found: `proxy` and
    its raw `proxy_value`, `feasible` (False: the initial network already broke a constraint), the winner's
    `flops_m`/`params_m`/`depth`, the counts (`iterations` children proposed, `evaluations` proxy scores,
    `predictor_queries` and `predictor_ms_per_arch` in the loop, `init_queries` finding F0, `rejected` by
    reason), `history` ([iteration, best oriented score] at each improvement) and `top`: the final
    candidates, best first."""

    proxy: str
    proxy_info: dict[str, Any]
    proxy_value: float | None
    fast_proxy: bool
    feasible: bool
    constraints: dict[str, Any]
    flops_m: float | None
    params_m: float | None
    depth: int | None
    init_arch_id: str
    iterations: int
    generations: int
    batch: int
    population: int
    population_final: int
    evaluations: int
    proxy_failures: int
    proxy_failure: str | None
    proxy_ms_per_arch: float | None
    rejected: dict[str, int]
    predictor_queries: int
    predictor_ms_per_arch: float | None
    history: list[list[Any]]
    top: list[dict[str, Any]]
    seed: int
    init_queries: int = 0

    def plot(self, path: str | Path) -> Path | None:
        return plot_history(self.to_dict(), path) if len(self.history) > 1 else None


def constraint_text(res: dict[str, Any]) -> str:
    """'latency <= 5 ms (predicted 4.9), depth <= 30 (28)': each constraint given, with the winner's value."""
    c, parts = res["constraints"], []
    if c.get("target") is not None:
        p = res.get("predicted")
        parts.append(f"{res['metric']} <= {c['target']:g} {c['unit']} (predicted "
                     + ("?" if p is None else f"{p:.4g}") + ")")
    for key, label, value in (("max_flops_m", "FLOPs", "flops_m"), ("max_params_m", "params", "params_m"),
                              ("max_depth", "depth", "depth")):
        if c.get(key) is not None:
            v = res.get(value)
            unit = " M" if key != "max_depth" else ""
            parts.append(f"{label} <= {c[key]:g}{unit} (" + ("?" if v is None else f"{v:.4g}") + ")")
    return ", ".join(parts) or "none"


def summary_lines(res: dict[str, Any]) -> list[str]:
    """What `edgeprof search zeroshot` prints after the found network's line."""
    value = res["proxy_value"]
    speed = ("" if res["predictor_ms_per_arch"] is None
             else f" at {res['predictor_ms_per_arch']:.4f} ms/arch")
    if value is None:  # NaN (failed) or -inf: the network has no path from its input (TPC, NASWOT, Zen)
        value_text = ("none (failed)" if res["proxy_failures"] else
                      "-inf: no network found within the constraints has a path from its input to its output")
    else:
        value_text = f"{value:.6g}"
    lines = [f"proxy {res['proxy']}: " + value_text
             + ("" if res["feasible"] else " (infeasible: the initial network breaks a constraint)"),
             f"constraints: {constraint_text(res)}",
             f"{res['iterations']:,} iterations ({res['generations']:,} generations of {res['batch']}), population "
             f"{res['population_final']}/{res['population']}, {res['evaluations']:,} proxy evaluations, "
             f"{res['predictor_queries']:,} predictor queries{speed}"]
    if res["proxy_failures"]:
        lines.append(f"the proxy failed on {res['proxy_failures']:,} networks (never inserted)"
                     + (f"; the last: {res['proxy_failure']}" if res.get("proxy_failure") else ""))
    rej = {k: v for k, v in res["rejected"].items() if v}
    if rej:
        lines.append("rejected children: " + ", ".join(f"{v:,} {k}" for k, v in rej.items()))
    mf = res.get("measure_final")
    if mf:
        lines.append(f"measured the {len(mf['candidates'])} best candidates on {mf['device']}: {mf['within']} within "
                     f"the target; kept {mf['chosen']}" + ("" if mf["within"] else " (none within: the best by proxy)"))
        lines += [f"  {c['arch_id']}: proxy {_g(c['proxy_value'])}, measured {c['measured']:.4g} {res['unit']}, "
                  f"predicted {_g(c['predicted'])}" for c in mf["candidates"]]
    return lines


def _g(v: float | None) -> str:
    return "?" if v is None else f"{v:.4g}"


def measure_final(result: ZeroShotResult, device: str, db: str | Path, rounds: int, k: int, log: Any = None,
                  progress: Any = None, protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `k` best candidates measured on `device` in `rounds` agent jobs each (stored in `db`); the kept one
    is the best by the proxy whose measured median is within the target (the best by proxy when none is).
    Returns the result JSON's updates: `measure_final` (every measurement) and, when the kept network is not
    the searched one, its arch, prediction and verification (the searched one stays as `searched_arch`)."""
    from hwsearch import pipeline
    from profiler.config import resolve_device
    from profiler.store import Store
    from spaces import create_space

    log = log or (lambda _: None)
    progress = progress or pipeline._no_progress
    config = resolve_device(device)
    space = create_space(result.space, **(result.space_config or {}))
    rows = []
    with Store(db) as store:
        for c in result.top[:k]:
            values = (_stored_rounds(store, config, space, c["arch_id"], rounds)
                      if c["arch_id"] == result.arch_id and result.metric == "latency" else None)
            if values is None:  # the searched network was just verified by the pipeline: not measured twice
                values = pipeline.measure_rounds(config, space, c["arch"], result.metric, rounds, store, log,
                                                 progress, protocol)
            v = pipeline.verification(config.name, values, result.target, c["predicted"])
            rows.append({**{key: c[key] for key in ("arch", "arch_id", "proxy_value", "predicted", "flops_m",
                                                     "params_m", "depth")},
                         "values": values, "measured": v["median"], "spread": v["spread"],
                         "within": bool(v["median"] <= result.target), "verify": v})
    within = [r for r in rows if r["within"]]
    chosen = within[0] if within else rows[0]
    out: dict[str, Any] = {"measure_final": {
        "device": config.name, "k": k, "rounds": rounds, "within": len(within), "chosen": chosen["arch_id"],
        "candidates": [{key: v for key, v in r.items() if key != "verify"} for r in rows]}}
    if chosen["arch_id"] != result.arch_id:
        out.update(searched_arch=result.arch, searched_arch_id=result.arch_id, arch=chosen["arch"],
                   arch_id=chosen["arch_id"], predicted=chosen["predicted"], proxy_value=chosen["proxy_value"],
                   flops_m=chosen["flops_m"], params_m=chosen["params_m"], depth=chosen["depth"],
                   relative_error=None if chosen["predicted"] is None else chosen["predicted"] / result.target - 1)
    out["verify"] = chosen["verify"]
    return out


def _stored_rounds(store: Any, config: Any, space: Any, arch_id: str, rounds: int) -> list[float] | None:
    """The last `rounds` ok latencies of `arch_id` on the device under its verify setting, or None if fewer."""
    setting = config.setting()
    values = [r["median_ms"] for r in store.rows(device=config.name, space=space.name, status="ok")
              if r["arch_id"] == arch_id and r["median_ms"] is not None
              and all(r[k] == v for k, v in setting.items())]
    return [float(v) for v in values[-rounds:]] if len(values) >= rounds else None


def plot_history(res: dict[str, Any], path: str | Path) -> Path:
    """The best oriented proxy score against the iterations (a step line), the PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(i, s) for i, s in res["history"] if s is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        if pts:
            x, y = np.array(pts, dtype=float).T
            ax.step(x, y, where="post", color="tab:blue")
            ax.plot(x, y, "o", ms=3, color="tab:blue")
        ax.set_xscale("symlog", linthresh=100)  # the climb is in the first thousands of iterations
        ax.set_xlabel("iteration (children proposed; linear to 100, then log)")
        flipped = "" if res["proxy_info"].get("higher_is_better", True) else " (negated: lower is better)"
        ax.set_ylabel(f"best {res['proxy']} in the population{flipped}")
        ax.set_title(f"zeroshot ({res['proxy']}) on {res['space']}: {constraint_text(res)}", fontsize="small")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return save_figure(fig, path)
    finally:
        plt.close(fig)
