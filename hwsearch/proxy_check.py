"""Does the supernet's proxy task rank networks as the real task does? A check around one searched arch.

A one-shot search picks its network by the supernet's accuracy on a proxy task (LightNAS: scikit-learn's
digits, upsampled), not by the accuracy the user cares about (NB201: CIFAR-100). Around the found arch,
this module measures the trained supernet's own validation accuracy of the arch and its one-layer
neighbours (NB201: 6 edges x 4 other ops = 24) and compares that ranking with the true accuracies: its
Spearman ρ, and what picking by the supernet loses against picking by the truth among those cells (overall,
and among the cells within a cost budget, which is the choice a latency-targeted search actually makes).
ρ near 0 says the proxy's accuracy signal carries no information about the real task at this point of the
space, so the accuracy the search lands on is what its latency constraint leaves, not what it chose.

Each path is evaluated as SPOS does: the batch-norm statistics of a copy of the supernet are re-estimated on
calibration images with that path (train-mode forwards, no gradient), because the running statistics
the search left are averages over many different paths; then eval mode on the validation split.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from hwsearch.data import batches
from hwsearch.gumbel import arch_onehot
from hwsearch.pareto import regret
from spaces import SearchSpace


def one_layer_neighbours(space: SearchSpace, arch: Sequence[int]) -> list[tuple[int, ...]]:
    """Every arch that differs from `arch` in exactly one layer (NB201: 6 x 4 = 24), layer by layer."""
    arch = tuple(space.validate(arch))
    return [arch[:layer] + (op,) + arch[layer + 1:]
            for layer in range(space.n_layers) for op in range(space.n_ops) if op != arch[layer]]


def _recalibrate(net: nn.Module, paths: torch.Tensor, data: Any, n: int, batch_size: int) -> None:
    """Re-estimate every batch-norm's running statistics from `n` images of `data` along `paths`."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calibration batches
    net.train()
    with torch.no_grad():
        for x, _ in batches(data, list(range(min(n, len(data)))), batch_size):
            net(x, paths)


def path_accuracy(net: nn.Module, space: SearchSpace, arch: Sequence[int], val_data: Any,
                  calibration_data: Any = None, calibration_n: int = 512, batch_size: int = 256) -> float:
    """Top-1 accuracy (%) of the supernet's path `arch` on `val_data`.

    With `calibration_data`, `net` must be a private copy: its batch-norm statistics are re-estimated on
    the first `calibration_n` images of that data along the path first (`proxy_check` passes a copy)."""
    paths = arch_onehot(tuple(space.validate(arch)), space.n_ops, next(net.parameters()))
    if calibration_data is not None:
        _recalibrate(net, paths, calibration_data, calibration_n, batch_size)
    net.eval()
    correct = 0
    with torch.no_grad():
        for x, y in batches(val_data, list(range(len(val_data))), batch_size):
            correct += int((net(x, paths).argmax(dim=1) == y).sum())
    return 100.0 * correct / len(val_data)


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman ρ (ties averaged); None when undefined (fewer than 2 values, or one side constant)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"rank_correlation: x and y must be 1-D of one length, got {a.shape} and {b.shape}")
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = float(stats.spearmanr(a, b).statistic)
    return rho if math.isfinite(rho) else None


def pick_regret(proxy: Sequence[float], true: Sequence[float], allowed: Sequence[bool] | None = None
                ) -> dict[str, Any]:
    """Among the allowed cells: the one the proxy ranks best (first of ties), the truly best, and the true
    accuracy lost by trusting the proxy (>= 0). {"n": 0} when no cell is allowed. Pure."""
    p, t = np.asarray(proxy, dtype=float), np.asarray(true, dtype=float)
    ok = np.ones(p.size, bool) if allowed is None else np.asarray(allowed, dtype=bool)
    if p.shape != t.shape or ok.shape != p.shape:
        raise ValueError(f"pick_regret: proxy, true and allowed differ in shape ({p.shape}, {t.shape}, "
                         f"{ok.shape})")
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return {"n": 0}
    by_proxy = int(idx[np.argmax(p[idx])])
    by_truth = int(idx[np.argmax(t[idx])])
    return {"n": int(idx.size), "proxy_pick": by_proxy, "true_pick": by_truth,
            "proxy_pick_accuracy": float(t[by_proxy]), "best_accuracy": float(t[by_truth]),
            "regret": float(t[by_truth] - t[by_proxy])}


def blind_regret(cost: Sequence[float], accuracy: Sequence[float], target: float, tolerance: float = 0.05
                 ) -> dict[str, Any]:
    """What hitting the latency alone buys: the regret (best accuracy at <= its cost - its accuracy) of the
    archs whose cost is within `tolerance` (relative) of `target`, i.e. of a search that lands on the target
    and knows nothing of accuracy. {"n", "mean", "median", "min", "max"} (regrets None when n is 0). Pure."""
    c, a = np.asarray(cost, dtype=float), np.asarray(accuracy, dtype=float)
    if not (math.isfinite(target) and target > 0 and tolerance >= 0):
        raise ValueError(f"blind_regret: target must be > 0 and tolerance >= 0, got {target!r}, {tolerance!r}")
    near = np.abs(c / target - 1.0) <= tolerance
    if not near.any():
        return {"n": 0, "tolerance": tolerance, "mean": None, "median": None, "min": None, "max": None}
    r = np.asarray(regret(c[near], a[near], c, a), dtype=float)
    return {"n": int(near.sum()), "tolerance": tolerance, "mean": float(r.mean()), "median": float(np.median(r)),
            "min": float(r.min()), "max": float(r.max())}


@dataclass
class ProxyCheck:
    """The found arch (cells[0]) and its neighbours: their supernet (proxy) and true accuracies (%), the
    rank correlation of the two, and what picking by the proxy loses (`pick`: all cells; `pick_in_budget`:
    the cells whose cost is <= `budget`, when costs were given). `found_*_rank`: 1 = best of the cells."""

    cells: list[str]
    proxy_accuracy: list[float]
    true_accuracy: list[float]
    cost: list[float] | None
    budget: float | None
    spearman: float | None
    pick: dict[str, Any]
    pick_in_budget: dict[str, Any] | None
    found_proxy_rank: int
    found_true_rank: int
    calibration_n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rank_of_first(values: np.ndarray) -> int:
    """1 + how many values are strictly greater than values[0]."""
    return 1 + int(np.sum(values > values[0]))


def proxy_check(supernet: nn.Module, space: SearchSpace, arch: Sequence[int], val_data: Any,
                true_accuracy: Mapping[str, float], calibration_data: Any = None, calibration_n: int = 512,
                cost: Mapping[str, float] | None = None, budget: float | None = None,
                batch_size: int = 256) -> ProxyCheck:
    """Compare the supernet's accuracy of `arch` and its one-layer neighbours with `true_accuracy`
    ({arch_id: %}, e.g. `Store.accuracies(...)`); `cost` ({arch_id: ms}) and `budget` add the in-budget pick.

    The supernet is copied, so the search's own object is left as it was. A cell missing from
    `true_accuracy` (or `cost`) is a KeyError naming it: the check needs the truth for every cell."""
    if calibration_n < 1:
        raise ValueError(f"proxy_check: calibration_n must be >= 1, got {calibration_n!r}")
    if (cost is None) != (budget is None):
        raise ValueError("proxy_check: give both cost and budget, or neither")
    cells = [tuple(space.validate(arch)), *one_layer_neighbours(space, arch)]
    ids = [space.arch_id(c) for c in cells]
    missing = [i for i in ids if i not in true_accuracy]
    if missing:
        raise KeyError(f"proxy_check: no true accuracy for {len(missing)} cell(s), first {missing[0]!r}")
    net = copy.deepcopy(supernet)
    proxy = np.array([path_accuracy(net, space, c, val_data, calibration_data, calibration_n, batch_size)
                      for c in cells])
    true = np.array([float(true_accuracy[i]) for i in ids])
    costs = None if cost is None else [float(cost[i]) for i in ids]
    return ProxyCheck(
        cells=ids, proxy_accuracy=proxy.tolist(), true_accuracy=true.tolist(), cost=costs, budget=budget,
        spearman=rank_correlation(proxy, true), pick=pick_regret(proxy, true),
        pick_in_budget=None if costs is None else pick_regret(proxy, true, np.array(costs) <= budget),
        found_proxy_rank=_rank_of_first(proxy), found_true_rank=_rank_of_first(true),
        calibration_n=calibration_n if calibration_data is not None else 0)
