"""Heat map of the pairwise R^2 of a performance-monotonicity grouping (profiler.monotonicity).

Devices are ordered group by group (representative first, in bold), every group of two or more is boxed,
so a reader sees the blocks the search is run once for. Cells are truncated to two places (never rounded
up past the threshold). R^2 below 0 (a proportional fit worse than a constant) is drawn in the colour of 0;
unknown pairs (too few common archs) are grey and hatched.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from profiler.monotonicity import Grouping, _Scores


def r2_matrix(grouping: Grouping) -> tuple[list[str], np.ndarray]:
    """(devices in group order, their symmetric R^2 matrix; NaN where unknown, 1 on the diagonal)."""
    order = grouping.order()
    score = _Scores(grouping.pairs)
    m = np.array([[np.nan if (s := score(a, b)) is None else s for b in order] for a in order], dtype=np.float64)
    return order, m


def plot_groups(grouping: Grouping, path: str | Path, title: str | None = None) -> Path:
    """Write the heat map PNG to `path` (its folder is made) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    order, m = r2_matrix(grouping)
    n = len(order)
    reps = {g.representative for g in grouping.groups if len(g.members) > 1}
    size = max(5.0, 0.5 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    try:
        cmap = plt.get_cmap("viridis").with_extremes(bad="0.85")
        im = ax.imshow(np.ma.masked_invalid(np.clip(m, 0.0, 1.0)), cmap=cmap, vmin=0.0, vmax=1.0,
                       interpolation="nearest")
        unknown = np.argwhere(np.isnan(m))
        for i, j in unknown:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0, color="0.5"))
        fontsize = 7.5 if n <= 16 else 6.5
        for i in range(n):
            for j in range(n):
                v = m[i, j]
                if i == j or np.isnan(v):
                    continue
                # truncated, not rounded: a cell reads >= the threshold only if the pair holds (0.896: ".89")
                text = "<0" if v < 0 else f"{math.floor(v * 100) / 100:.2f}".lstrip("0") if v < 1 else "1"
                ax.text(j, i, text, ha="center", va="center", fontsize=fontsize,
                        color="black" if v >= 0.6 else "white")
        start = 0
        for g in grouping.groups:
            k = len(g.members)
            if k > 1:
                ax.add_patch(Rectangle((start - 0.5, start - 0.5), k, k, fill=False, lw=2.2, ec="tab:red"))
            start += k
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels(order, rotation=90, fontsize=8)
        ax.set_yticklabels(order, fontsize=8)
        for label in (*ax.get_xticklabels(), *ax.get_yticklabels()):
            if label.get_text() in reps:
                label.set_fontweight("bold")
        ax.tick_params(length=0)
        bar = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, extend="min")
        bar.set_label("R² of LAT_a ≈ γ·LAT_b (centred, worse direction; <0 drawn as 0; cells truncated)")
        bar.ax.axhline(grouping.threshold, color="tab:red", lw=2)
        groups = sum(1 for g in grouping.groups if len(g.members) > 1)
        ax.set_title(title or f"{grouping.space}: performance-monotonic groups at R² ≥ {grouping.threshold:g} "
                              f"(complete linkage)\n{groups} group(s) of 2+ boxed in red, representative in bold; "
                              f"{len(grouping.groups) - groups} device(s) alone; hatched: < {grouping.min_common} "
                              "common archs", fontsize=10)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
