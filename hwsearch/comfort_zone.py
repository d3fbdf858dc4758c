"""The Comfort Zone and an empirical roofline from measured sweeps (thesis §3.3.6, Fig. 3.3, 3.10-3.11).

Pure functions over numbers the caller measured (numpy only): which channel widths of a conv layer cost no
more latency than the base (`conv_zone`), how far a network's uniform width multiplier ϕ can go for free
(`choose_width`), and the board's peak compute and bandwidth as the tightest roofs over the measured points
(`roofline`). The thesis draws the zone as a red box and says "we gradually increase the scaling factor until the
runtime latency increases"; the tolerance that counts as an increase and the box's exact rule are ours, stated in
each docstring. FLOPs are counted as the thesis counts them: multiply-accumulates (MACs), no ×2; "memory
accesses" are elements read or written (eq. 3.18), so intensity is MACs per element.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spaces.errors import UserInputError

COMPUTE_UNIT = "MAC/s"
BYTES_PER_ELEMENT = 4  # fp32: what the GB/s figure of the bandwidth roof assumes


def _num(x: float | None) -> float | None:
    """A JSON-able float: None for NaN/inf (json writes NaN, which no strict reader accepts)."""
    return None if x is None or not math.isfinite(x) else float(x)


def _axis(name: str, values: Sequence[float]) -> np.ndarray:
    """A strictly ascending, positive, non-empty 1-D axis, or a UserInputError naming it."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise UserInputError(f"{name} must be a non-empty list of numbers, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise UserInputError(f"{name} must hold positive numbers, got {a.tolist()}")
    if a.size > 1 and np.any(np.diff(a) <= 0):
        raise UserInputError(f"{name} must be strictly ascending, got {a.tolist()}")
    return a


def _tolerance(tolerance: float) -> float:
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance > 0):
        raise UserInputError(f"tolerance must be a number > 0 (0.10 = +10% latency), got {tolerance!r}")
    return float(tolerance)


def _latencies(name: str, values: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Measured medians of the given shape; NaN = not measured, anything else must be > 0."""
    a = np.asarray(values, dtype=np.float64)
    if a.shape != shape:
        raise UserInputError(f"{name} must have shape {shape}, got {a.shape}")
    if np.any(np.isinf(a)) or np.any(a[np.isfinite(a)] <= 0):
        raise UserInputError(f"{name} must hold positive values or NaN (not measured)")
    return a


@dataclass(frozen=True)
class ConvZone:
    """The zone of one conv sweep: grid indices and channel values of the rectangle, and what it gains."""

    in_channels: tuple[int, ...]
    out_channels: tuple[int, ...]
    base: tuple[int, int]  # (I, O) channel values of the base cell
    base_latency_ms: float
    tolerance: float
    i_index: tuple[int, int]  # first and last row (into in_channels) of the zone, inclusive
    o_index: tuple[int, int]  # first and last column (into out_channels), inclusive
    cells: int
    max_ratio: float  # the largest latency / base latency inside the zone
    intensity_base: float | None = None
    intensity_corner: float | None = None

    @property
    def i_range(self) -> tuple[int, int]:
        return self.in_channels[self.i_index[0]], self.in_channels[self.i_index[1]]

    @property
    def o_range(self) -> tuple[int, int]:
        return self.out_channels[self.o_index[0]], self.out_channels[self.o_index[1]]

    @property
    def has_zone(self) -> bool:
        """More than the base cell: some wider layer costs no more than the tolerance."""
        return self.cells > 1

    @property
    def channel_gain(self) -> float:
        """(I_max·O_max)/(I_base·O_base): how much wider (in I·O, so weights and MACs) the layer gets for free."""
        (i0, i1), (o0, o1) = self.i_range, self.o_range
        return (i1 * o1) / (i0 * o0)

    def verdict(self) -> str:
        if not self.has_zone:
            return "no Comfort Zone"
        (i0, i1), (o0, o1) = self.i_range, self.o_range
        return f"Comfort Zone: I {i0}→{i1}, O {o0}→{o1}, ≤ +{self.tolerance * 100:g}% latency"

    def to_dict(self) -> dict[str, Any]:
        return {"in_channels": list(self.in_channels), "out_channels": list(self.out_channels),
                "base": list(self.base), "base_latency_ms": self.base_latency_ms, "tolerance": self.tolerance,
                "i_range": list(self.i_range), "o_range": list(self.o_range), "cells": self.cells,
                "max_ratio": self.max_ratio, "has_zone": self.has_zone, "channel_gain": self.channel_gain,
                "intensity_base": _num(self.intensity_base), "intensity_corner": _num(self.intensity_corner),
                "verdict": self.verdict()}


def conv_zone(in_channels: Sequence[int], out_channels: Sequence[int], latency_ms: Any,
              base: tuple[int, int] | None = None, tolerance: float = 0.10, intensity: Any = None) -> ConvZone:
    """The Comfort Zone of a conv layer swept over input × output channels (rows: I, columns: O).

    Our rule (the thesis only draws a red box): the zone is the largest axis-aligned rectangle of grid cells whose
    lower-left corner is the base cell (every cell in it has I ≥ I_base and O ≥ O_base) in which every cell is
    measured and its latency ≤ (1 + tolerance) · latency(base). "Largest" = most cells; ties go to the larger
    I_max · O_max, then to the larger I_max. A rectangle, not any connected region, so the zone reads as "any I up to
    I_max with any O up to O_max": a layer can be widened on both axes at once. `base` is (I, O) channel values in
    the grid, default the smallest of each; NaN latency = not measured (never inside a zone). `intensity` (same
    shape, optional) adds the arithmetic intensity at the base and at the zone's far corner.
    """
    ins, outs = _axis("in_channels", in_channels), _axis("out_channels", out_channels)
    for name, a in (("in_channels", ins), ("out_channels", outs)):
        if np.any(a != np.round(a)):
            raise UserInputError(f"{name} must be whole channel counts, got {a.tolist()}")
    lat = _latencies("latency_ms", latency_ms, (ins.size, outs.size))
    tol = _tolerance(tolerance)
    base = (ins[0], outs[0]) if base is None else base
    try:
        bi, bj = int(np.flatnonzero(ins == float(base[0]))[0]), int(np.flatnonzero(outs == float(base[1]))[0])
    except (IndexError, TypeError, ValueError):
        raise UserInputError(f"base {base!r} is not an (I, O) pair of the grid: I in {ins.astype(int).tolist()}, "
                             f"O in {outs.astype(int).tolist()}") from None
    base_lat = lat[bi, bj]
    if not math.isfinite(base_lat):
        raise UserInputError(f"latency_ms at the base (I={base[0]}, O={base[1]}) is not measured: no zone to judge")
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(lat) & (lat <= (1.0 + tol) * base_lat)
    sub = ok[bi:, bj:]
    # run[r] = how many cells from the base column onward are ok in row bi+r; a rectangle of h rows is at most
    # min(run[:h]) wide, and a narrower one of the same height never wins, so one candidate per height
    run = np.array([np.argmin(row) if not row.all() else row.size for row in sub])
    best: tuple[int, float, int, int, int] | None = None
    width = sub.shape[1]
    for h in range(1, sub.shape[0] + 1):
        width = min(width, int(run[h - 1]))
        if width == 0:
            break
        key = (h * width, ins[bi + h - 1] * outs[bj + width - 1], ins[bi + h - 1], h, width)
        if best is None or key[:3] > best[:3]:
            best = key
    assert best is not None  # the base cell is ok: its latency is finite and ≤ (1 + tol) times itself
    h, w = best[3], best[4]
    inside = lat[bi:bi + h, bj:bj + w]
    ii = None if intensity is None else _latencies("intensity", intensity, lat.shape)
    return ConvZone(in_channels=tuple(int(v) for v in ins), out_channels=tuple(int(v) for v in outs),
                    base=(int(ins[bi]), int(outs[bj])), base_latency_ms=float(base_lat), tolerance=tol,
                    i_index=(bi, bi + h - 1), o_index=(bj, bj + w - 1), cells=h * w,
                    max_ratio=float(inside.max() / base_lat),
                    intensity_base=None if ii is None else float(ii[bi, bj]),
                    intensity_corner=None if ii is None else float(ii[bi + h - 1, bj + w - 1]))


@dataclass(frozen=True)
class WidthChoice:
    """The width scan of one network: ϕ steps, their latencies and ratios to ϕ = 1, and where the scan stopped."""

    phis: tuple[float, ...]
    latency_ms: tuple[float, ...]  # NaN = the step was not measured (failed)
    tolerance: float
    phi: float  # the chosen ϕ (1.0 when there is no zone)
    stop_index: int | None  # the step the scan stopped at (exceeds or not measured); None = every step passed

    @property
    def base_latency_ms(self) -> float:
        return self.latency_ms[0]

    @property
    def ratios(self) -> tuple[float, ...]:
        return tuple(v / self.latency_ms[0] for v in self.latency_ms)

    @property
    def chosen_index(self) -> int:
        return self.phis.index(self.phi)

    @property
    def chosen_latency_ms(self) -> float:
        return self.latency_ms[self.chosen_index]

    @property
    def ratio(self) -> float:
        return self.ratios[self.chosen_index]

    @property
    def has_zone(self) -> bool:
        return self.phi > 1.0

    @property
    def stop_reason(self) -> str | None:
        """"exceeds" (latency above the tolerance), "not measured" (a failed step), or None (reached the cap)."""
        if self.stop_index is None:
            return None
        return "not measured" if math.isnan(self.latency_ms[self.stop_index]) else "exceeds"

    def verdict(self) -> str:
        stop = None if self.stop_index is None else self.phis[self.stop_index]
        if not self.has_zone:
            if self.stop_reason == "not measured":
                return f"no Comfort Zone found: ϕ = {stop:g} was not measured (failed), the scan stopped there"
            return "no Comfort Zone: latency grows with width from the first step"
        text = f"Comfort Zone up to ϕ = {self.phi:g} (latency {(self.ratio - 1) * 100:+.1f}%)"
        if self.stop_reason == "not measured":
            return text + f"; the scan stopped at ϕ = {stop:g}, not measured (failed)"
        if self.stop_reason is None:
            return text + "; the largest ϕ swept: the zone may reach further"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"phis": list(self.phis), "latency_ms": [_num(v) for v in self.latency_ms],
                "ratios": [_num(v) for v in self.ratios], "tolerance": self.tolerance,
                "base_latency_ms": self.base_latency_ms, "phi": self.phi, "latency_ms_chosen": self.chosen_latency_ms,
                "ratio": self.ratio, "has_zone": self.has_zone,
                "stopped_at": None if self.stop_index is None else self.phis[self.stop_index],
                "stop_reason": self.stop_reason, "verdict": self.verdict()}


def choose_width(phis: Sequence[float], latency_ms: Sequence[float], tolerance: float = 0.10) -> WidthChoice:
    """The largest uniform width multiplier ϕ that costs no latency (thesis: "we gradually increase the scaling
    factor until the runtime latency increases").

    Our rule: scan ϕ upward from 1.0 (the base network, which `phis` must start with) and stop at the first step
    whose latency exceeds (1 + tolerance) · latency(ϕ = 1) or was not measured (NaN); the chosen ϕ is the last step
    before it. A later step that dips back under the tolerance does not count: the scan is what the thesis
    describes, and a zone with a hole in it would not be one to deploy into.
    """
    phi = _axis("phis", phis)
    if phi.size < 2 or phi[0] != 1.0:
        raise UserInputError(f"phis must start at 1.0 (the base network) and hold at least one step above it, "
                             f"got {phi.tolist()}")
    lat = _latencies("latency_ms", latency_ms, phi.shape)
    tol = _tolerance(tolerance)
    if not math.isfinite(lat[0]):
        raise UserInputError("latency_ms at ϕ = 1.0 (the base network) is not measured: nothing to compare with")
    chosen, stop = 0, None
    for k in range(1, phi.size):
        if not math.isfinite(lat[k]) or lat[k] > (1.0 + tol) * lat[0]:
            stop = k
            break
        chosen = k
    return WidthChoice(phis=tuple(float(v) for v in phi), latency_ms=tuple(float(v) for v in lat), tolerance=tol,
                       phi=float(phi[chosen]), stop_index=stop)


def attainable(intensity: Any, peak: float, bandwidth: float) -> np.ndarray:
    """The roofline: min(P, B·I) (MAC/s), for intensity I in MACs per element and bandwidth B in elements/s."""
    return np.minimum(peak, bandwidth * np.asarray(intensity, dtype=np.float64))


@dataclass(frozen=True)
class Roofline:
    """An empirical roofline: the tightest compute and bandwidth roofs under which every measured point lies.

    A lower bound on the board's true peaks (the sweep may never reach them), and only as good as the points'
    spread: a bandwidth roof needs points at low intensity, a compute roof points at high intensity.
    """

    intensity: tuple[float, ...]  # MACs per element accessed
    attained: tuple[float, ...]  # MAC/s; NaN where the latency was not measured
    batch: int
    peak: float  # P, MAC/s
    bandwidth: float  # B, elements/s
    peak_index: int  # the point that sets P
    bandwidth_index: int  # the point that sets B

    @property
    def ridge(self) -> float:
        """P / B: the intensity (MACs per element) above which a point can be compute-bound."""
        return self.peak / self.bandwidth

    @property
    def bandwidth_gb_s(self) -> float:
        return self.bandwidth * BYTES_PER_ELEMENT / 1e9

    @property
    def efficiency(self) -> tuple[float, ...]:
        """attained / attainable per point (1 = on a roof)."""
        roof = attainable(self.intensity, self.peak, self.bandwidth)
        return tuple(float(v) for v in np.asarray(self.attained) / roof)

    @property
    def bound(self) -> tuple[str, ...]:
        """"memory" left of the ridge, "compute" at or right of it (a property of the intensity alone)."""
        return tuple("memory" if i < self.ridge else "compute" for i in self.intensity)

    def to_dict(self) -> dict[str, Any]:
        rows = zip(self.intensity, self.attained, self.efficiency, self.bound, strict=True)
        return {"unit": COMPUTE_UNIT, "batch": self.batch, "peak_mac_s": self.peak,
                "bandwidth_elements_s": self.bandwidth, "bandwidth_gb_s": self.bandwidth_gb_s,
                "bytes_per_element": BYTES_PER_ELEMENT, "ridge_mac_per_element": self.ridge,
                "empirical": "the tightest roofs over the measured points: a lower bound on the board's peaks",
                "points": [{"intensity": i, "attained_mac_s": _num(a), "efficiency": _num(e), "bound": b}
                           for i, a, e, b in rows]}


def roofline(flops: Sequence[float], latency_ms: Sequence[float], mem_access: Sequence[float],
             batch: int = 1) -> Roofline:
    """The empirical roofline of measured points (thesis Fig. 3.3): attained = flops·batch / latency in MAC/s,
    intensity = flops / mem_access in MACs per element; P = max attained, B = max(attained / intensity).

    `flops` and `mem_access` count one image (FLOPs as multiply-accumulates, eq. 3.18); `latency_ms` is one
    batch's median (NaN = not measured: the point is kept, drawn nowhere and set no roof). The intensity is taken
    as given, so at batch > 1 pass the per-image share of the accesses if weights read once per batch should count
    once.
    """
    f = np.asarray(flops, dtype=np.float64)
    if f.ndim != 1 or f.size == 0:
        raise UserInputError(f"flops must be a non-empty list of numbers, got shape {f.shape}")
    m = _latencies("mem_access", mem_access, f.shape)
    lat = _latencies("latency_ms", latency_ms, f.shape)
    if not np.all(np.isfinite(f)) or np.any(f <= 0) or not np.all(np.isfinite(m)):
        raise UserInputError("flops and mem_access must be positive numbers for every point")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise UserInputError(f"batch must be an integer ≥ 1, got {batch!r}")
    if not np.any(np.isfinite(lat)):
        raise UserInputError("latency_ms has no measured point: no roofline to draw")
    attained = f * batch / (lat / 1000.0)
    intensity = f / m
    per_element = attained / intensity
    pk, bw = int(np.nanargmax(attained)), int(np.nanargmax(per_element))
    return Roofline(intensity=tuple(float(v) for v in intensity), attained=tuple(float(v) for v in attained),
                    batch=int(batch), peak=float(attained[pk]), bandwidth=float(per_element[bw]),
                    peak_index=pk, bandwidth_index=bw)
