"""SurgeNAS's result (the search contract plus its trajectory) and its picture: α, β and latency over the search."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsearch.result import SearchResult, save_figure


@dataclass(kw_only=True)
class SurgeNASResult(SearchResult):
    """The contract plus: `beta` used (found by bisection when a target was given: `trials`, one per search
    run, with β, the argmax arch, its prediction and error), the per-step `log` (τ, φ, CE summed over the
    sub-networks, the predicted cost of the argmax arch and the sampled paths' mean), the per-epoch `epochs_log`
    (α's softmax, the argmax arch), `fairness` (how many times each (layer, op) was trained: equal by
    construction), `choices` (what the thesis leaves open, as decided), the held-out accuracy of the found
    network through the supernet (`heldout_accuracy`, on the proxy when the data is one)."""

    beta: float
    trials: list[dict[str, Any]]
    log: list[dict[str, Any]]
    epochs_log: list[dict[str, Any]]
    data: dict[str, Any]
    epochs: int
    warmup_epochs: int
    seed: int
    fairness: dict[str, Any]
    choices: dict[str, Any]
    heldout_accuracy: float | None = None
    world_size: int = 1

    def plot(self, path: str | Path) -> Path:
        return plot_surgenas(self, path)


def plot_surgenas(result: SurgeNASResult | dict[str, Any], path: str | Path) -> Path:
    """A PNG of the search: the probability α gives each layer's final op over the epochs (top); the predicted
    cost of the argmax arch per step with the target, or the CE without a predictor (middle); the bisection's
    trials (β against the predicted cost) when a target set β, else the φ and τ schedules (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    r = result.to_dict() if isinstance(result, SearchResult) else result
    fig, (ax_a, ax_c, ax_b) = plt.subplots(3, 1, figsize=(7.5, 9))
    try:
        epochs = [row["epoch"] + 1 for row in r["epochs_log"]]
        probs = np.array([row["alpha_softmax"] for row in r["epochs_log"]])  # [E, L, K]
        final = np.asarray(r["arch"])
        cmap = plt.get_cmap("viridis")
        n_layers = probs.shape[1] if probs.size else 0
        for layer in range(n_layers):
            ax_a.plot(epochs, probs[:, layer, final[layer]], color=cmap(layer / max(n_layers - 1, 1)), lw=1)
        if probs.size:
            ax_a.axhline(1.0 / probs.shape[2], color="grey", ls=":", lw=0.8, label="uniform")
        ax_a.axvline(r["warmup_epochs"], color="grey", ls="--", lw=0.8, label="end of warm-up")
        ax_a.set_ylabel("P(final op) per layer")
        ax_a.set_xlabel("epoch (0: before the search)")
        ax_a.legend(loc="upper left", fontsize="small")
        title = f"SurgeNAS on {r['space']}: β = {r['beta']:.4g}" + (f" per {r['unit']}" if r["beta"] else "")
        ax_a.set_title(title + (f", target {r['target']:.4g} {r['unit']}" if r.get("target") else ""))

        steps = [row["step"] for row in r["log"]]
        argmax = [row["predicted_argmax"] for row in r["log"]]
        if any(v is not None for v in argmax):
            ax_c.plot(steps, [row["predicted_sampled_mean"] for row in r["log"]], color="tab:blue", alpha=0.35,
                      lw=0.8, label="sampled paths (mean)")
            ax_c.plot(steps, argmax, color="tab:blue", label="argmax(α)")
            if r.get("target"):
                ax_c.axhline(r["target"], color="tab:red", ls="--", label="target")
            ax_c.set_ylabel(f"predicted {r['metric']} ({r['unit']})")
        else:
            ax_c.plot(steps, [row["ce"] for row in r["log"]], color="tab:green", label="CE (sum over sub-networks)")
            ax_c.set_ylabel("training loss")
        ax_c.set_xlabel("step (last search)")
        ax_c.legend(loc="best", fontsize="small")

        trials = r.get("trials") or []
        if len(trials) > 1:
            betas = [t["beta"] for t in trials]
            preds = [t["predicted"] for t in trials]
            ax_b.plot(range(1, len(trials) + 1), preds, "o-", color="tab:blue", label="predicted (argmax)")
            for k, (b, p) in enumerate(zip(betas, preds, strict=True)):
                ax_b.annotate(f"β={b:.3g}", (k + 1, p), textcoords="offset points", xytext=(4, 4), fontsize="small")
            ax_b.axhline(r["target"], color="tab:red", ls="--", label="target")
            chosen = next((k for k, t in enumerate(trials) if t.get("chosen")), None)
            if chosen is not None:
                ax_b.scatter([chosen + 1], [preds[chosen]], s=160, facecolors="none", edgecolors="black",
                             label="returned", zorder=5)
            ax_b.set_xlabel("trial (one search each)")
            ax_b.set_ylabel(f"{r['metric']} ({r['unit']})")
            ax_b.set_title("bisection on β")
        else:
            ax_b.plot(steps, [row["phi"] for row in r["log"]], color="tab:orange", label="φ (identity weight)")
            ax_b.plot(steps, [row["tau"] for row in r["log"]], color="tab:purple", label="τ (temperature)")
            ax_b.set_xlabel("step")
            ax_b.set_ylabel("schedule")
        ax_b.legend(loc="best", fontsize="small")
        fig.tight_layout()
        path = save_figure(fig, path)
    finally:
        plt.close(fig)
    return path
