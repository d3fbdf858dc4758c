"""LightNAS stage 2's result (the contract over space mbconv-channels plus the base, BTE, the sampling's counts
and the per-iteration history), the lines `edgeprof search lightnas-channels` prints and its history plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsearch.result import SearchResult, save_figure
from spaces.mbconv_channels import SCALES


@dataclass(kw_only=True)
class LightNASChannelsResult(SearchResult):
    """The contract (arch: one scale index per live layer of the base, the highest BTE found) plus:
    `scales` and `hidden_widths` per live layer (`live_layers`: their indices in the base), `base` (the stage-1
    network: arch id, space, its BTE and prediction, whether it was in P_0), `bte` (the winner's) and
    `bte_setup` (data, resolution, images, epochs, batch, rule), `algorithm` (P, Q, k, r and the operators),
    `sampling` (tolerance, draw bound, counts per kind of proposal), `reachable` (the predictor's range),
    `history` (one row per iteration: best and mean BTE, draws and feasible draws), `evaluations` (networks
    trained), `cache_hits`, `bte_s` (time training) and `top` (the final top-k, best first)."""

    scales: list[float]
    live_layers: list[int]
    hidden_widths: list[int]
    base: dict[str, Any]
    bte: float | None
    bte_setup: dict[str, Any]
    algorithm: dict[str, Any]
    sampling: dict[str, Any]
    reachable: dict[str, Any]
    history: list[dict[str, Any]]
    evaluations: int
    cache_hits: int
    bte_failures: int
    bte_s: float
    top: list[dict[str, Any]]
    seed: int

    def plot(self, path: str | Path) -> Path | None:
        return plot_history(self.to_dict(), path) if self.history else None


def _num(v: float | None, fmt: str = ".4g") -> str:
    return "-" if v is None else format(v, fmt)


def summary_lines(res: dict[str, Any]) -> list[str]:
    """What `edgeprof search lightnas-channels` prints after the found network's line."""
    base, alg, s = res["base"], res["algorithm"], res["sampling"]
    setup = res["bte_setup"]
    gain = ("" if res["bte"] is None or base["bte"] is None
            else f" ({res['bte'] - base['bte']:+.4g} over the base)")
    in_pop = "in P_0" if base["in_population"] else (
        f"not in P_0: predicted {_num(base['predicted'])} {res['unit']}, outside ±{100 * s['tolerance']:g}%")
    total = s["total"]
    searched = res.get("searched_arch_id")  # --correct adopted another network: BTE is the searched one's
    return [
        f"BTE {_num(res['bte'])}{gain}" + (f" (of the searched {searched})" if searched else "")
        + f"; base {base['arch_id']} BTE {_num(base['bte'])} ({in_pop})",
        "scales: " + " ".join(f"{SCALES[i]:g}" for i in res["arch"]),
        f"{alg['iterations']} iterations, population {alg['population']}, top-{alg['top_k']}, r = {alg['rate']:g}; "
        f"{res['evaluations']} networks trained ({res['cache_hits']} cache hits, {res['bte_s']:.0f} s), "
        f"BTE on {setup['images']} digits at {setup['resolution']} px, {setup['epochs']} epochs, "
        f"batch {setup['batch_size']}",
        f"draws: {total['draws']:,} ({total['accepted']} within ±{100 * s['tolerance']:g}%, "
        f"{total['latency']:,} rejected by latency, {total['duplicate']} duplicates"
        + (f", {total['short']} candidates short" if total["short"] else "") + ")",
    ]


def plot_history(res: dict[str, Any], path: str | Path) -> Path:
    """Best and mean BTE of each iteration's population (the stage-1 base's BTE as a line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = res["history"]
    it = [r["iteration"] for r in rows]
    nan = float("nan")
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        best = [nan if r["best_bte"] is None else r["best_bte"] for r in rows]
        mean = [nan if r["mean_bte"] is None else r["mean_bte"] for r in rows]
        ax.plot(it, best, marker="o", color="tab:blue", label="best (top-k)")
        ax.plot(it, mean, marker=".", color="tab:blue", alpha=0.45, label="population mean")
        if res["base"]["bte"] is not None:
            ax.axhline(res["base"]["bte"], color="tab:red", ls="--", label="stage-1 base")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"BTE ({res['bte_setup']['negative']} rule)")
        ax.set_title(f"lightnas-channels: {res['target']:.4g} {res['unit']} target "
                     f"±{100 * res['sampling']['tolerance']:g}%")
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        path = save_figure(fig, path)
    finally:
        plt.close(fig)
    return path
