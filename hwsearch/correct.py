"""Closing the loop: measure the found network, and when the board disagrees with the predictor, move to
a neighbour that the measurements say will land on the target.

A search optimised against a predictor picks the networks the predictor misjudges (the optimiser's
curse): on HELP's NB201 tables the found cell's predicted latency was within 2% of the target in 10 of 11
runs while the measured one missed by 12% on average. The predictor's error is local, though: networks
one or two layers apart share most of their operators, so the measured/predicted ratio of a measured
network carries over to its neighbours. Each round here measures one network (a probe), corrects the
predictions of the candidates around the best probe by the ratio of their nearest probe, and measures the
most α-probable candidate whose corrected prediction is within tolerance. Networks the dataset already
measured count as probes too (in a small space such as NB201 the searched cell often has measured
neighbours, and one sitting on the target is then predicted exactly). What is returned is always a network
measured in the loop: the probe nearest the target.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from hwsearch.cost import CostModel, predict_archs
from spaces import SearchSpace


@dataclass(frozen=True)
class Probe:
    """One network measured during the loop: what the predictor said and what the board measured."""

    arch: tuple[int, ...]
    predicted: float
    measured: float

    @property
    def ratio(self) -> float:
        return self.measured / self.predicted

    def gap(self, target: float) -> float:
        return self.measured / target - 1.0


@dataclass
class Correction:
    """The loop's outcome: the chosen (measured) arch, every probe in order, and why it stopped."""

    arch: tuple[int, ...]
    measured: float
    predicted: float
    target: float
    tolerance: float
    probes: list[Probe] = field(default_factory=list)
    stopped: str = ""
    choices: list[dict[str, Any]] = field(default_factory=list)  # why each probe after the first was chosen

    @property
    def error(self) -> float:
        return self.measured / self.target - 1.0

    @property
    def met(self) -> bool:
        return abs(self.error) <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {"arch": list(self.arch), "measured": self.measured, "predicted": self.predicted,
                "target": self.target, "tolerance": self.tolerance, "error_vs_target": self.error,
                "met": self.met, "measurements": len(self.probes), "stopped": self.stopped, "choices": self.choices,
                "probes": [{**asdict(p), "arch": list(p.arch), "error_vs_target": p.gap(self.target),
                            "predictor_error": p.predicted / p.measured - 1.0} for p in self.probes]}


def hamming(a: np.ndarray, b: Sequence[int]) -> np.ndarray:
    """Layers in which each row of `a` [N, L] differs from `b` (pure)."""
    return (np.asarray(a) != np.asarray(b)[None, :]).sum(axis=1)


def neighbourhood(arch: Sequence[int], n_ops: int, radius: int) -> np.ndarray:
    """Every arch that differs from `arch` in 1..radius layers, as rows [N, L] (pure)."""
    arch = np.asarray(arch, dtype=np.int64)
    rows = []
    for r in range(1, radius + 1):
        for layers in itertools.combinations(range(len(arch)), r):
            others = [[op for op in range(n_ops) if op != arch[layer]] for layer in layers]
            for ops in itertools.product(*others):
                row = arch.copy()
                row[list(layers)] = ops
                rows.append(row)
    return np.array(rows, dtype=np.int64).reshape(-1, len(arch))


def corrected(archs: np.ndarray, predicted: np.ndarray, probes: Sequence[Probe]) -> np.ndarray:
    """Each prediction times the measured/predicted ratio of its nearest probe (geometric mean of the
    ratios of the probes tied nearest); a probe's own arch gets exactly its measurement (pure)."""
    predicted = np.asarray(predicted, dtype=float)
    if not probes:
        return predicted
    archs = np.asarray(archs)
    where = np.array([p.arch for p in probes], dtype=archs.dtype)  # [P, L]
    log_r = np.log([p.ratio for p in probes])
    out = np.empty(len(archs))
    step = max(1, 4_000_000 // (len(probes) * max(archs.shape[1], 1)))  # bounded [chunk, P, L] memory
    for i in range(0, len(archs), step):
        d = (archs[i:i + step, None, :] != where[None, :, :]).sum(axis=2)  # [chunk, P]
        nearest = d == d.min(axis=1, keepdims=True)
        out[i:i + step] = (log_r[None, :] * nearest).sum(1) / nearest.sum(1)
    return predicted * np.exp(out)


def _most_probable(archs: np.ndarray, mask: np.ndarray, alpha: torch.Tensor | None) -> int:
    """Index of the most α-probable arch (Σ log softmax(α)) among the rows `mask` selects (the first
    without α)."""
    rows = np.flatnonzero(mask)
    if alpha is None:
        return int(rows[0])
    logp = torch.log_softmax(alpha.detach().float().cpu(), dim=-1).numpy()
    return int(rows[np.argmax(logp[np.arange(archs.shape[1])[None, :], archs[rows]].sum(axis=1))])


def _candidates(centre: tuple[int, ...], radius: int, seen: set[tuple[int, ...]], probes: Sequence[Probe],
                model: CostModel, space: SearchSpace, device: str | torch.device) -> tuple[np.ndarray, np.ndarray]:
    """The archs 1..radius layers from `centre` not in `seen`, and their corrected predictions."""
    cands = neighbourhood(centre, space.n_ops, radius)
    cands = cands[[tuple(map(int, c)) not in seen for c in cands]]
    if len(cands) == 0:
        return cands, np.empty(0)
    return cands, corrected(cands, predict_archs(model, space, cands, device), probes)


def next_probe(probes: Sequence[Probe], alpha: torch.Tensor | None, model: CostModel, space: SearchSpace,
               target: float, tolerance: float, radius: int = 2, device: str | torch.device = "cpu",
               known: Sequence[Probe] = ()) -> tuple[tuple[int, ...] | None, dict[str, Any]]:
    """The next network to measure, around the loop's probe nearest the target, or None when no network
    not yet measured in the loop is expected to do better than that probe.

    `known`: networks the dataset already measured on this device (the predictor's training data). They
    correct their neighbours' predictions like the loop's own probes do, and one of them that sits within
    tolerance is predicted exactly its measurement, so a measured network near the searched one is found.
    Preference: candidates whose corrected prediction is within `tolerance`, the fewest layers away first,
    then the most α-probable; else the candidate whose corrected prediction is nearest the target.
    """
    best = min(probes, key=lambda p: abs(p.gap(target)))
    seen = {p.arch for p in probes}
    # a known network more than 2*radius layers from the centre is never nearer a candidate than the centre
    near_known = ([k for k, d in zip(known, hamming(np.array([k.arch for k in known]), best.arch), strict=True)
                   if d <= 2 * radius] if known else [])
    cands, values = _candidates(best.arch, radius, seen, [*probes, *near_known], model, space, device)
    if len(cands) == 0:
        return None, {"reason": "every neighbour is measured"}
    gaps = np.abs(values / target - 1.0)
    dist = hamming(cands, best.arch)
    ok = gaps <= tolerance
    if ok.any():
        near = ok & (dist == dist[ok].min())
        measured_before = {k.arch for k in near_known}
        exact = np.array([tuple(map(int, c)) in measured_before for c in cands]) & near
        k = _most_probable(cands, exact if exact.any() else near, alpha)  # measured already: a sure hit
        how = (f"within tolerance after correction, {int(dist[k])} layer(s) from the best probe"
               + (" (measured before: its measurement)" if exact[k] else ""))
    else:
        k = int(np.argmin(gaps))
        if gaps[k] >= abs(best.gap(target)):
            return None, {"reason": "no neighbour is expected nearer the target than the best probe"}
        arch, value, walked = _walk(tuple(map(int, cands[k])), float(values[k]), seen, [*probes, *known], alpha,
                                    model, space, target, tolerance, device)
        how = (f"none within tolerance {radius} layer(s) away: {walked} more single-layer step(s) toward the "
               f"target after correction, {'now within' if abs(value / target - 1) <= tolerance else 'still off'}")
        return arch, {"reason": how, "corrected": value, "candidates": len(cands)}
    return tuple(map(int, cands[k])), {"reason": how, "corrected": float(values[k]), "candidates": len(cands)}


def _walk(arch: tuple[int, ...], value: float, seen: set[tuple[int, ...]], probes: Sequence[Probe],
          alpha: torch.Tensor | None, model: CostModel, space: SearchSpace, target: float, tolerance: float,
          device: str | torch.device) -> tuple[tuple[int, ...], float, int]:
    """Greedy single-layer steps from `arch` while the corrected prediction gets nearer the target: for a
    miss larger than what `radius` layers can make up. Stops at the first arch within tolerance (the most
    α-probable step that gets there) or when no step gets nearer; returns (arch, corrected value, steps)."""
    steps = 0
    for _ in range(space.n_layers):
        gap = abs(value / target - 1.0)
        if gap <= tolerance:
            break
        cands, values = _candidates(arch, 1, seen, probes, model, space, device)
        if len(cands) == 0:
            break
        gaps = np.abs(values / target - 1.0)
        ok = gaps <= tolerance
        if ok.any():
            k = _most_probable(cands, ok, alpha)
        else:
            k = int(np.argmin(gaps))
            if gaps[k] >= gap:
                break
        arch, value, steps = tuple(map(int, cands[k])), float(values[k]), steps + 1
    return arch, value, steps


def close_loop(arch: Sequence[int], model: CostModel, space: SearchSpace, target: float,
               measure: Callable[[tuple[int, ...]], float], alpha: torch.Tensor | None = None,
               tolerance: float = 0.02, max_measurements: int = 4, radius: int = 2,
               device: str | torch.device = "cpu", on_probe: Callable[[Probe], None] | None = None,
               known: Sequence[tuple[Sequence[int], float]] = ()) -> Correction:
    """Measure `arch`; while it misses `target` by more than `tolerance` (relative), measure the next
    probe (`next_probe`), at most `max_measurements` networks in all. Returns the probe nearest the target.

    `measure(arch)` is the board (or a measured table): it must return the cost in the model's unit.
    `known`: (arch, measured cost) pairs the dataset already holds for this device and space.
    """
    if max_measurements < 1:
        raise ValueError(f"max_measurements must be at least 1, got {max_measurements}")
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive fraction, got {tolerance!r}")
    known_probes: list[Probe] = []
    if len(known):
        k_archs = np.array([list(a) for a, _ in known], dtype=np.int64)
        k_pred = predict_archs(model, space, k_archs, device)
        known_probes = [Probe(tuple(map(int, a)), float(p), float(m))
                        for a, p, (_, m) in zip(k_archs, k_pred, known, strict=True) if p > 0 and m > 0]
    probes: list[Probe] = []
    current: tuple[int, ...] | None = tuple(int(a) for a in arch)
    stopped = f"measured {max_measurements} network(s), none within tolerance"
    choices: list[dict[str, Any]] = []
    while current is not None and len(probes) < max_measurements:
        predicted = float(predict_archs(model, space, [current], device)[0])
        if not (math.isfinite(predicted) and predicted > 0):
            raise ValueError(f"the predictor gives {predicted!r} for {space.arch_id(current)}: the loop corrects "
                             "positive predictions by a ratio")
        value = float(measure(current))
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"measure() returned {value!r} for {space.arch_id(current)}: expected a positive cost")
        probes.append(Probe(current, predicted, value))
        if on_probe is not None:
            on_probe(probes[-1])
        if abs(probes[-1].gap(target)) <= tolerance:
            stopped = "within tolerance"
            break
        if len(probes) >= max_measurements:
            break
        current, info = next_probe(probes, alpha, model, space, target, tolerance, radius, device, known_probes)
        choices.append(info)
        if current is None:
            stopped = info["reason"]
    best = min(probes, key=lambda p: abs(p.gap(target)))
    return Correction(best.arch, best.measured, best.predicted, target, tolerance, probes, stopped, choices)
