"""Pictures of the Comfort Zone (thesis Fig. 3.10-3.11) and of the empirical roofline (Fig. 3.3): matplotlib Agg PNGs.

Each function takes what hwsearch.comfort_zone computed, writes one PNG (its folder made) and returns its path, so
the CLI and the benchmark print where to look. Unmeasured cells and steps are drawn as such (grey, hatched, a cross),
never silently dropped: a hole in a sweep changes what the zone can be.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwsearch.comfort_zone import BYTES_PER_ELEMENT, ConvZone, Roofline, WidthChoice, attainable
from hwsearch.result import save_figure

_CELL_TEXT_MAX = 10  # cell values are written when the grid is at most this many cells on each side


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _si(v: float, unit: str) -> str:
    """1.23e9, 'MAC/s' -> '1.23 GMAC/s': the roofs' values read at a glance."""
    for f, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= f:
            return f"{v / f:.3g} {p}{unit}"
    return f"{v:.3g} {unit}"


def _cell_text(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _heat(fig: Any, ax: Any, m: np.ndarray, ins: Sequence[int], outs: Sequence[int], cmap_name: str,
          label: str, title: str, zone: ConvZone) -> None:
    """One heat map over I (rows, upward) × O (columns): NaN hatched, the zone boxed, the base cell marked."""
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.patches import Rectangle

    plt = _pyplot()
    finite = m[np.isfinite(m)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    log = finite.size > 0 and lo > 0 and hi / lo > 20  # a CPU's latency spans decades: linear would hide the base
    if hi <= lo:  # one value (a 1 × 1 grid, a flat board): a band around it, not a colour bar offset by 1e-9
        lo, hi = lo - (abs(lo) * 0.05 or 1.0), hi + (abs(hi) * 0.05 or 1.0)
    norm = LogNorm(lo, hi) if log else Normalize(lo, hi)
    cmap = plt.get_cmap(cmap_name).with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, norm=norm, origin="lower", aspect="auto",
                   interpolation="nearest")
    for i, j in np.argwhere(~np.isfinite(m)):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", lw=0, color="0.45"))
    n_i, n_o = m.shape
    if max(n_i, n_o) <= _CELL_TEXT_MAX:
        size = 8 if max(n_i, n_o) <= 8 else 7
        for i in range(n_i):
            for j in range(n_o):
                v = m[i, j]
                if not math.isfinite(v):
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=size - 1, color="0.25")
                    continue
                r, g, b, _ = cmap(norm(v))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(j, i, _cell_text(v), ha="center", va="center", fontsize=size,
                        color="white" if dark else "black")
    (i0, i1), (o0, o1) = zone.i_index, zone.o_index
    ax.add_patch(Rectangle((o0 - 0.5, i0 - 0.5), o1 - o0 + 1, i1 - i0 + 1, fill=False, lw=2.8, ec="red",
                           zorder=5, clip_on=False))  # whole, where the zone is the whole grid
    ax.plot([o0 - 0.5], [i0 - 0.5], ls="none", marker="o", ms=9, color="red", mec="white", mew=1.2, zorder=6,
            clip_on=False)
    ax.set_xticks(range(n_o))
    ax.set_xticklabels([str(v) for v in outs], rotation=45 if n_o > 8 else 0)
    ax.set_yticks(range(n_i))
    ax.set_yticklabels([str(v) for v in ins])
    ax.set_xlabel("output channels O")
    ax.set_ylabel("input channels I")
    ax.set_title(title, fontsize=10)
    bar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.03)
    if log:  # plain numbers on the decades and 2, 5 between (matplotlib's default writes 6×10⁻¹)
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
    bar.set_label(label + (" (log scale)" if log else ""))


def plot_conv_sweep(in_channels: Sequence[int], out_channels: Sequence[int], intensity: Any, latency_ms: Any,
                    zone: ConvZone, path: str | Path, title: str | None = None) -> Path:
    """Thesis Fig. 3.10: arithmetic intensity (left) and measured latency (right) over I × O, the zone in red."""
    plt = _pyplot()
    inten = np.asarray(intensity, dtype=np.float64)
    lat = np.asarray(latency_ms, dtype=np.float64)
    n_i, n_o = lat.shape
    big = max(n_i, n_o) > _CELL_TEXT_MAX  # no values in the cells: smaller cells keep the figure on a screen
    w = max(4.2, (0.36 if big else 0.62) * n_o + 2.6)
    h = max(3.6, (0.3 if big else 0.5) * n_i + 2.6)
    fig, (ax_i, ax_l) = plt.subplots(1, 2, figsize=(2 * w, h), layout="constrained")
    try:
        _heat(fig, ax_i, inten, in_channels, out_channels, "viridis", "MACs per element accessed",
              "arithmetic intensity (eq. 3.19)", zone)
        _heat(fig, ax_l, lat, in_channels, out_channels, "magma_r", "latency (ms, median)",
              "measured latency (ms)", zone)
        head = zone.verdict()
        if zone.has_zone:
            head += (f" (I·O ×{zone.channel_gain:.3g} for at most {(zone.max_ratio - 1) * 100:+.1f}%; "
                     f"base {zone.base_latency_ms:.3g} ms)")
        elif zone.i_index[0] == n_i - 1 and zone.o_index[0] == n_o - 1:
            head += ": nothing wider than the base was swept"
        else:
            head += (f": no cell one step wider in I or O stays within +{zone.tolerance * 100:g}% of the base "
                     f"{zone.base_latency_ms:.3g} ms")
        head += f"\nred box: the zone; red dot: the base cell (I={zone.base[0]}, O={zone.base[1]})"
        fig.suptitle(head if title is None else f"{title}\n{head}", fontsize=11)
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_roofline(points: Sequence[tuple[float, float, str]], roof: Roofline, path: str | Path,
                  title: str | None = None) -> Path:
    """Attained MAC/s against intensity (log-log) under the empirical roofs, one colour per group of points."""
    plt = _pyplot()
    pts = [(float(i), float(a), str(g)) for i, a, g in points]
    shown = [(i, a, g) for i, a, g in pts if math.isfinite(i) and math.isfinite(a) and i > 0 and a > 0]
    xs = [i for i, _, _ in shown] + [roof.ridge]
    x = np.geomspace(min(xs) / 3, max(xs) * 3, 200)
    fig, ax = plt.subplots(figsize=(7.5, 5.2), layout="constrained")
    try:
        ax.plot(x, attainable(x, roof.peak, roof.bandwidth), color="black", lw=2, zorder=2)
        ax.axhline(roof.peak, color="tab:red", ls=":", lw=1, zorder=1)
        ax.axvline(roof.ridge, color="0.4", ls="--", lw=1)
        ax.plot([roof.ridge], [roof.peak], marker="D", color="black", zorder=4)
        gbs = roof.bandwidth * BYTES_PER_ELEMENT / 1e9
        # upper left is empty by construction (the roof rises to the right, every point lies under it)
        ax.text(0.02, 0.97, f"peak P = {_si(roof.peak, 'MAC/s')}\n"
                f"bandwidth B = {_si(roof.bandwidth, 'elements/s')} (= {gbs:.3g} GB/s at fp32)\n"
                f"ridge P/B = {roof.ridge:.3g} MACs per element", transform=ax.transAxes, ha="left", va="top",
                fontsize=9, bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
        for k, group in enumerate(dict.fromkeys(g for _, _, g in shown)):
            gi = [(i, a) for i, a, g in shown if g == group]
            ax.scatter([i for i, _ in gi], [a for _, a in gi], s=28, color=f"C{k}", alpha=0.85, zorder=3,
                       label=f"{group} ({len(gi)})", edgecolors="white", linewidths=0.5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax)
        low = min([a for _, a, _ in shown] + [roof.bandwidth * x[0]])
        ax.set_ylim(low / 2, roof.peak * 6)  # headroom above the flat roof for the box
        ax.set_xlabel("arithmetic intensity (MACs per element accessed, eq. 3.19)")
        ax.set_ylabel("attained MAC/s (FLOPs counted as multiply-accumulates)")
        ax.grid(True, which="major", color="0.9")
        hidden = len(pts) - len(shown)
        ax.legend(loc="lower right", fontsize=8, title=f"{hidden} not measured" if hidden else None)
        head = (f"empirical roofline (batch {roof.batch}): the tightest roofs over the measured points,\n"
                "so a lower bound on the board's true peaks")
        ax.set_title(head if title is None else f"{title}\n{head}", fontsize=10)
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_width(phis: Sequence[float], latency_ms: Sequence[float], choice: WidthChoice, path: str | Path,
               title: str | None = None) -> Path:
    """Latency against the width multiplier ϕ, the tolerance band above ϕ = 1 shaded and the chosen ϕ marked."""
    plt = _pyplot()
    phi = np.asarray(phis, dtype=np.float64)
    lat = np.asarray(latency_ms, dtype=np.float64)
    base = choice.base_latency_ms
    fig, ax = plt.subplots(figsize=(7, 4.6), layout="constrained")
    try:
        ok = np.isfinite(lat)
        ax.axhspan(base, base * (1 + choice.tolerance), color="tab:green", alpha=0.15,
                   label=f"ϕ = 1 latency +{choice.tolerance * 100:g}% (tolerance)")
        ax.axhline(base, color="tab:green", lw=0.8)
        # NaN breaks the line: no latency is drawn through a failed step
        ax.plot(phi, lat, marker="o", color="tab:blue", label="measured latency (median)", zorder=3)
        if (~ok).any():
            # on the axis, not at a latency: a failed step has none
            ax.scatter(phi[~ok], np.full((~ok).sum(), 0.04), marker="x", s=60, color="0.3", zorder=4,
                       transform=ax.get_xaxis_transform(), clip_on=False, label="not measured (failed)")
        if choice.stop_index is not None and ok[choice.stop_index]:
            ax.scatter([phi[choice.stop_index]], [lat[choice.stop_index]], s=90, facecolors="none",
                       edgecolors="tab:red", lw=1.8, zorder=4, label="first step over the tolerance")
        ax.scatter([choice.phi], [choice.chosen_latency_ms], marker="*", s=260, color="tab:orange",
                   edgecolors="black", zorder=5, label=f"chosen ϕ = {choice.phi:g}")
        if choice.has_zone:
            ax.axvspan(phi[0], choice.phi, color="tab:orange", alpha=0.08, label="ϕ in the Comfort Zone")
        ax.set_xticks(phi)
        ax.set_xticklabels([f"{v:g}" for v in phi])
        ax.set_xlabel("width multiplier ϕ (every channel count × ϕ)")
        ax.set_ylabel("latency (ms, median)")
        ax.grid(True, color="0.92")
        ax.legend(loc="upper left", fontsize=8)
        head = choice.verdict().replace("; ", "\n")
        ax.set_title(head if title is None else f"{title}\n{head}", fontsize=10)
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def _plain_log_ticks(ax: Any) -> None:
    """Log axes labelled 20, 50, 100 (x) and 20 G, 50 G (y) instead of 2x10^1 and crowded minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    def si(v: float, _: Any = None) -> str:
        for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if v >= scale:
                return f"{v / scale:g} {prefix}"
        return f"{v:g}"

    for axis, fmt in ((ax.xaxis, lambda v, _: f"{v:g}"), (ax.yaxis, si)):
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(fmt))
        axis.set_minor_formatter(NullFormatter())
