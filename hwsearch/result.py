"""What a search hands back (the contract every registered search meets), and LightNAS's richer result.

`SearchResult` is the contract: an architecture of a space (op indices and the space's arch id), the target
and what the search's predictor says of the architecture. Whatever returns one can be verified on a device and
have its loop closed by `hwsearch.pipeline`, from Python or from `edgeprof search NAME` (docs/contracts.md).
A search run without a target (SurgeNAS at a fixed β) has `target` None; one run without a predictor (SurgeNAS
with β = 0, accuracy only) has `predicted` None too: it can be verified (measured) but has no loop to close.
A search adds its own fields in a subclass (`LightNASResult`: λ history, α, refine); `to_dict()` is plain JSON
(the CLI's `--json` and the saved result) and `plot(path)` draws what the search has to show, if anything.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spaces.errors import RuntimeFailure

FORMAT = "edgeprof.search-result"
FORMAT_VERSION = 1
UNITS = {"latency": "ms", "energy": "mJ"}


class SearchContractError(RuntimeFailure):
    """A search returned something that is not a SearchResult of its space (a bug in the search)."""


@dataclass
class SearchResult:
    """One search's outcome: `arch` (op indices) of space `space`/`space_config`, its `arch_id`, the `target`
    and the `predicted` cost of `arch`, both in `unit` (ms for latency, mJ for energy); either may be None for
    a search run without a target or without a predictor.

    `alpha` (optional, [layers][ops] logits): how much the search prefers each op of each layer; the closed
    loop measures the most preferred of equally good candidates first. `params` and `predictor` record how
    the search was set up (JSON)."""

    search: str
    space: str
    space_config: dict[str, Any]
    arch: list[int]
    arch_id: str
    target: float | None
    metric: str
    unit: str
    predicted: float | None
    alpha: list[list[float]] | None = None
    wall_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    predictor: dict[str, Any] = field(default_factory=dict)

    @property
    def relative_error(self) -> float | None:
        """predicted / target - 1 of the returned arch (None without a target or a prediction)."""
        if self.predicted is None or self.target is None:
            return None
        return self.predicted / self.target - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self),
                "relative_error": self.relative_error}

    def save(self, path: str | Path, rank: int = 0) -> Path | None:
        """Write the JSON to `path` on rank 0 only (returns None on the other ranks)."""
        if rank != 0:
            return None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        return path

    def plot(self, path: str | Path) -> Path | None:
        """A PNG of the search's trajectory at `path`, or None when the search has none to show."""
        return None

    def check(self) -> None:
        """ValueError naming the field when the result breaks the contract (what verification relies on)."""
        from spaces import create_space

        who = f"search {self.search!r} returned"
        if self.metric not in UNITS or self.unit != UNITS[self.metric]:
            raise ValueError(f"{who} metric {self.metric!r} in {self.unit!r}; expected one of "
                             f"{', '.join(f'{m} in {u}' for m, u in UNITS.items())}")
        for name in ("target", "predicted"):
            value = getattr(self, name)
            if value is None:
                continue
            if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
                    and value > 0):
                raise ValueError(f"{who} {name}={value!r}: expected a positive number of {self.unit} (or None)")
        space = create_space(self.space, **(self.space_config or {}))
        arch = space.validate(self.arch)
        if space.arch_id(arch) != self.arch_id:
            raise ValueError(f"{who} arch_id {self.arch_id!r}, but its arch {list(self.arch)} is "
                             f"{space.arch_id(arch)!r} in space {self.space!r}")


@dataclass(kw_only=True)
class LightNASResult(SearchResult):
    """LightNAS's result: the contract plus its trajectory (λ and the predicted cost per α-step, per epoch),
    the reachable range, the argmax arch before refine, the data it trained on."""

    reachable: dict[str, Any]
    lambda_history: list[float]
    log: list[dict[str, Any]]
    epochs_log: list[dict[str, Any]]
    data: dict[str, Any]
    epochs: int
    warmup_epochs: int
    seed: int
    refine: dict[str, Any]
    derived_arch: list[int]
    derived_arch_id: str
    derived_predicted: float
    world_size: int = 1
    # an ensemble predictor's disagreement (std/mean of its members) at the returned arch; None otherwise
    disagreement: float | None = None

    def plot(self, path: str | Path) -> Path:
        return plot_history(self, path)


def target_errors(errors: Sequence[float], each: float = 0.05, mean: float | None = None) -> dict[str, Any]:
    """How signed relative errors (measured / target - 1) stand against a target: max and mean |error|,
    how many are within `each`, and whether all are (and the mean within `mean`, when given) (pure)."""
    e = np.abs(np.asarray(errors, dtype=float))
    if e.size == 0:
        raise ValueError("target_errors needs at least one error")
    met = bool((e <= each).all()) and (mean is None or bool(e.mean() <= mean))
    return {"max_abs_error": float(e.max()), "mean_abs_error": float(e.mean()), "each": each, "mean_limit": mean,
            "within": int((e <= each).sum()), "target_met": met}


def save_figure(fig: Any, path: str | Path, dpi: int = 110, **kwargs: Any) -> Path:
    """`fig` as a PNG at `path` (its folder made), the path back: what every search plot ends with."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, **kwargs)
    return path


def plot_history(result: LightNASResult | dict[str, Any], path: str | Path) -> Path:
    """A PNG over the α-steps: λ and the cost term's weight (top), the predicted cost of the argmax and
    the sampled paths with the target line (bottom) (thesis Figure 4.12)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = result.to_dict() if isinstance(result, SearchResult) else result
    steps = [row["step"] for row in r["log"]]
    fig, (ax_l, ax_c) = plt.subplots(2, 1, sharex=True, figsize=(7, 5.5))
    try:
        ax_l.plot(steps, [row["lambda"] for row in r["log"]], color="tab:purple", label="λ")
        if r["log"] and "cost_weight" in r["log"][0]:
            ax_l.plot(steps, [row["cost_weight"] for row in r["log"]], color="tab:purple", alpha=0.35, lw=0.8,
                      label="λ + damping (cost-term weight)")
            ax_l.legend(loc="best", fontsize="small")
        ax_l.axhline(0.0, color="grey", lw=0.5)
        ax_l.set_ylabel("λ")
        ax_l.set_title(f"{r['search']} on {r['space']}: {r['metric']} target {r['target']:.4g} {r['unit']}")
        ax_c.plot(steps, [row["predicted_sample"] for row in r["log"]], color="tab:blue", alpha=0.35,
                  lw=0.8, label="sampled path")
        ax_c.plot(steps, [row["predicted_argmax"] for row in r["log"]], color="tab:blue",
                  label="argmax(α)")
        ax_c.axhline(r["target"], color="tab:red", ls="--", label="target")
        ax_c.set_xlabel("α-step")
        ax_c.set_ylabel(f"predicted {r['metric']} ({r['unit']})")
        ax_c.legend(loc="best", fontsize="small")
        fig.tight_layout()
        path = save_figure(fig, path)
    finally:
        plt.close(fig)
    return path
