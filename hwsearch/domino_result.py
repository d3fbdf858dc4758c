"""Domino's result (the contract plus the Pareto set, the budget sweep's picks and the random baseline), what it
shows (the lines `edgeprof search domino` prints; the Pareto plot, thesis Fig. 5.7: random masks as a grey
cloud, the found set as a step line, the picks labelled A, B, ... at their budget lines, and after --verify each
member's measured latency, an open marker joined to its prediction) and `verify_pareto`, which measures every
member on the board (--verify: the thesis verifies the set, not one network)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwsearch.result import SearchResult, save_figure
from spaces.errors import UserInputError

if TYPE_CHECKING:
    from spaces import SearchSpace


@dataclass(kw_only=True)
class DominoResult(SearchResult):
    """The contract (arch: the pick at the target, else at the largest budget; target: that budget) plus the
    Pareto set, the budgets and their picks, the hypervolume against the random baseline at the same number of
    evaluations, the random cloud (for the plot) and, after --verify, every member's measurement."""

    pareto: list[dict[str, Any]]
    budgets: list[float]
    picks: list[dict[str, Any]]
    evaluations: int
    hypervolume: float
    reference: dict[str, Any]
    random: dict[str, Any]
    random_cloud: dict[str, list[float]]
    history: list[dict[str, Any]]
    accuracy_predictor: str
    population: int
    generations: int
    seed: int
    pareto_verified: list[dict[str, Any]] | None = None

    def plot(self, path: str | Path) -> Path:
        return plot_pareto(self, path)


def summary_lines(res: dict[str, Any]) -> list[str]:
    """What `edgeprof search domino` prints of a result's JSON: the Pareto set, its hypervolume against random,
    the picks and, after --verify, the measured members."""
    rnd = res["random"]
    gain = "" if not rnd["hypervolume"] else f" ({100 * (res['hypervolume'] / rnd['hypervolume'] - 1):+.1f}%)"
    lines = [f"Pareto set: {len(res['pareto'])} networks of {res['evaluations']} evaluated ({res['population']} "
             f"x {res['generations']} generations); hypervolume {res['hypervolume']:.4g} against "
             f"{rnd['hypervolume']:.4g} for {rnd['evaluations']} random networks{gain}"]
    for p in res["picks"]:
        rb = p["random_best_accuracy"]
        lines.append(f"  {p['label']} <= {p['budget_ms']:.4g} ms: {p['arch_id']} predicted {p['predicted_ms']:.4g} ms,"
                     f" accuracy {p['predicted_accuracy']:.4g} (best random within it: "
                     + ("none" if rb is None else f"{rb:.4g}") + ")")
    rows = res.get("pareto_verified")
    if rows:
        met = picks_within_budget(res["picks"], rows)
        lines.append(f"measured {len(rows)} of the {len(res['pareto'])} Pareto members on {rows[0]['device']}: "
                     f"{met}/{len(res['picks'])} picks within their budgets")
        lines += [f"  {r['label'] or ' '} {r['arch_id']}: measured {r['measured_ms']:.4g} ms, predicted "
                  f"{r['predicted_ms']:.4g} ms ({100 * r['predictor_error']:+.1f}%)" for r in rows]
    return lines


def picks_within_budget(picks: list[dict[str, Any]], rows: list[dict[str, Any]]) -> int:
    """How many budgets' picks were measured within their own budget: a member picked at several budgets (B, C,
    D) counts at each, so meeting D but not B is one of two, not a miss (pure)."""
    measured = {r["arch_id"]: r["measured_ms"] for r in rows}
    return sum(measured[p["arch_id"]] <= p["budget_ms"] for p in picks if p["arch_id"] in measured)


def _stored_rounds(store: Any, config: Any, space: SearchSpace, arch_id: str, rounds: int) -> list[float] | None:
    """The last `rounds` ok latencies of `arch_id` on the device under its verify setting (what the pipeline's
    --verify just measured of the result's arch), or None when fewer are stored."""
    setting = config.setting()
    values = [r["median_ms"] for r in store.rows(device=config.name, space=space.name, status="ok")
              if r["arch_id"] == arch_id and r["median_ms"] is not None
              and all(r[k] == v for k, v in setting.items())]
    return [float(v) for v in values[-rounds:]] if len(values) >= rounds else None


def members_to_verify(result: DominoResult, max_members: int | None) -> list[dict[str, Any]]:
    """The Pareto members --verify measures: all, or at most `max_members`: the picks and the others spread
    evenly along the set (by latency rank); a UserInputError when the picks alone are more."""
    members = result.pareto
    if max_members is None or len(members) <= max_members:
        return members
    picked = {p["arch_id"] for p in result.picks}
    if len(picked) > max_members:
        raise UserInputError(f"--verify-max {max_members} is fewer than the {len(picked)} picks, which are always "
                             "measured")
    others = [i for i, m in enumerate(members) if m["arch_id"] not in picked]
    spread = {others[int(k)] for k in np.linspace(0, len(others) - 1, max_members - len(picked)).round()}
    return [m for i, m in enumerate(members) if m["arch_id"] in picked or i in spread]


def verify_pareto(result: DominoResult, device: str, db: str | Path, rounds: int, log: Any = None,
                  progress: Any = None, protocol: dict[str, Any] | None = None, verified_pick: bool = False,
                  max_members: int | None = None) -> dict[str, Any]:
    """Every Pareto member (or `max_members` of them: `members_to_verify`) measured on `device` in `rounds` agent
    jobs, stored in `db` (as every verification): {"pareto_verified": [per member], "pareto_verify": the
    predictor's errors}; also kept in the result for its plot. `verified_pick`: the result's arch was just
    verified by the pipeline, so its stored rounds are read back instead of measured again."""
    from hwsearch import pipeline
    from profiler.config import resolve_device
    from profiler.store import Store
    from spaces import create_space

    log = log or (lambda _: None)
    progress = progress or pipeline._no_progress
    config = resolve_device(device)
    space = create_space(result.space, **(result.space_config or {}))
    members = members_to_verify(result, max_members)
    rows = []
    with Store(db) as store:
        for m in members:
            values = (_stored_rounds(store, config, space, m["arch_id"], rounds)
                      if verified_pick and m["arch_id"] == result.arch_id else None)
            if values is None:
                values = pipeline.measure_rounds(config, space, m["arch"], result.metric, rounds, store, log,
                                                 progress, protocol)
            v = pipeline.verification(config.name, values, None, m["predicted_ms"])
            picked = [p for p in result.picks if p["arch_id"] == m["arch_id"]]  # at several budgets: the smallest
            rows.append({"arch_id": m["arch_id"], "label": ",".join(p["label"] for p in picked) or None,
                         "budget_ms": picked[0]["budget_ms"] if picked else None, "predicted_ms": m["predicted_ms"],
                         "predicted_accuracy": m["predicted_accuracy"], "device": config.name,
                         "rounds": len(values), "values": values, "measured_ms": v["median"],
                         "spread": v["spread"], "predictor_error": v["predictor_error"]})
    result.pareto_verified = rows
    err = np.array([r["predictor_error"] for r in rows])
    gap = np.array([r["predicted_ms"] - r["measured_ms"] for r in rows])
    return {"pareto_verified": rows, "pareto_verify": {
        "device": config.name, "members": len(rows), "rounds": rounds,
        "max_abs_predictor_error": float(np.abs(err).max()), "mean_abs_predictor_error": float(np.abs(err).mean()),
        "rmse_ms": float(np.sqrt(np.mean(gap ** 2))), "spearman": _spearman([r["predicted_ms"] for r in rows],
                                                                             [r["measured_ms"] for r in rows]),
        "picks_within_budget": picks_within_budget(result.picks, rows), "picks": len(result.picks)}}


def _spearman(a: list[float], b: list[float]) -> float | None:
    """Rank correlation of predicted and measured latency (None where undefined: under 3 members, a constant side)."""
    from predictors.metrics import spearman

    rho = spearman(a, b) if len(a) >= 3 else float("nan")
    return None if np.isnan(rho) else rho


def plot_pareto(result: DominoResult, path: str | Path) -> Path:
    """The PNG at `path` (see the module's docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    try:
        cloud = result.random_cloud
        ax.scatter(cloud["predicted_ms"], cloud["predicted_accuracy"], s=7, color="0.7", alpha=0.6, lw=0,
                   label=f"{len(cloud['predicted_ms'])} random networks (predicted)", zorder=1)
        rnd = result.random["pareto"]
        ax.step([m["predicted_ms"] for m in rnd], [m["predicted_accuracy"] for m in rnd], where="post",
                color="0.45", ls="--", lw=1, label=f"random Pareto set (HV {result.random['hypervolume']:.4g})",
                zorder=2)
        x = [m["predicted_ms"] for m in result.pareto]
        y = [m["predicted_accuracy"] for m in result.pareto]
        ax.step(x, y, where="post", color="tab:blue", lw=1.5, zorder=3)
        ax.plot(x, y, "o", color="tab:blue", ms=4, zorder=4,
                label=f"Domino Pareto set, {len(x)} networks (HV {result.hypervolume:.4g})")
        grouped: dict[str, list[dict[str, Any]]] = {}  # a member picked at several budgets is labelled once
        for p in result.picks:
            ax.axvline(p["budget_ms"], color="tab:red", ls=":", lw=0.8, zorder=0)
            grouped.setdefault(p["arch_id"], []).append(p)
        for i, same in enumerate(grouped.values()):  # labels above-left and below-right in turn: near picks
            p = same[0]
            ax.plot(p["predicted_ms"], p["predicted_accuracy"], "*", color="tab:red", ms=13, mec="k", mew=0.5,
                    zorder=6)
            ax.annotate(",".join(q["label"] for q in same), (p["predicted_ms"], p["predicted_accuracy"]),
                        xytext=(-5, 6) if i % 2 == 0 else (6, -15), textcoords="offset points",
                        ha="right" if i % 2 == 0 else "left", fontsize=11, weight="bold", color="tab:red")
        top = ax.secondary_xaxis("top")  # the budgets as ticks above the frame, clear of the points
        top.set_xticks([p["budget_ms"] for p in result.picks],
                       [f"{p['label']} {p['budget_ms']:.3g}" for p in result.picks], fontsize=7, color="tab:red")
        ax.plot([], [], "*", color="tab:red", ms=10, mec="k", mew=0.5, label="picks at the budgets (dotted)")
        for r in result.pareto_verified or []:
            ax.plot([r["predicted_ms"], r["measured_ms"]], [r["predicted_accuracy"]] * 2, color="tab:green",
                    lw=0.7, zorder=4)
            ax.plot(r["measured_ms"], r["predicted_accuracy"], "o", mfc="none", mec="tab:green", ms=6, zorder=5)
        if result.pareto_verified:
            device = result.pareto_verified[0]["device"]
            ax.plot([], [], "o", mfc="none", mec="tab:green", label=f"measured on {device}")
        ax.set_xlabel(f"latency ({result.unit}): predicted" + (", and measured" if result.pareto_verified else ""))
        ax.set_ylabel(f"predicted accuracy ({Path(result.accuracy_predictor).name})")
        rnd_hv = result.random["hypervolume"]
        gain = f", hypervolume {100 * (result.hypervolume / rnd_hv - 1):+.1f}% over random" if rnd_hv else ""
        ax.set_title(f"domino on {result.space}: {result.evaluations} networks evaluated (seed {result.seed}){gain}",
                     fontsize=10)
        ax.legend(loc="lower right", fontsize="small")
        ax.grid(alpha=0.25)
        ax.margins(y=0.08)
        fig.tight_layout()
        path = save_figure(fig, path)
    finally:
        plt.close(fig)
    return path
