"""Performance-monotonicity grouping of devices (SurgeNAS thesis, Definition 3.1).

Two devices are performance-monotonic over a space when LAT_a(arch) = gamma * LAT_b(arch) for one constant
gamma. Then the fastest network under a budget on one is the fastest under the scaled budget on the other, so
a search run once per group serves every member. The thesis states no threshold; here a pair "holds" when a
least-squares fit through the origin (gamma = sum(ab) / sum(b^2)) explains the latencies well:

* R^2 is the centred one, 1 - SSE / sum((a - mean a)^2): the proportional fit must beat the best constant.
  The uncentred form (1 - SSE / sum(a^2), the squared cosine of the two latency vectors) is above 0.95 for
  almost any two devices with positive latencies, so it cannot tell them apart. A device with a large
  fixed overhead (a GPU at batch 1: kernel launches) fails against one without: no constant ratio fits.
* The centred R^2 of a on b and of b on a differ (the one of the device with the smaller relative spread is
  lower); the pair takes the worse of the two, so "a holds with b" is symmetric as the definition is.
* Spearman's rho (rank agreement) is reported beside it, not used: a ranking can agree while the ratio
  drifts, and a budget carried from one device to another needs the ratio.

Grouping is complete linkage: clusters merge, best link first, while every pair inside stays at or above
the threshold. Connected components would chain (a~b, b~c, a not ~ c) into groups whose ends differ. Pairs
with fewer than `min_common` common archs are unknown and never grouped. Each group's representative, the
device to search on, is its medoid: the member with the highest mean R^2 to the others.

Pure functions on {device: (arch ids, latencies)}; `read_space` is the one reader of the Store.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spaces.errors import UserInputError

# Chosen on HELP's 27 NB201 devices and NB201's CIFAR-100 accuracies: a network searched on one device of a
# pair (best accuracy within budget/gamma) and deployed on the other overshoots the budget, when it does, by
# 5% on average (p90 11%) for pairs at R^2 0.9-0.95, against 10% (p90 21%) at 0.85-0.9 and 15-30% below 0.8,
# with the accuracy within 0.5 points of the member's own best (p90). At 0.95 the nine batch-1/32 desktop
# GPUs that hold at 0.9 split into six and three lone devices.
DEFAULT_THRESHOLD = 0.9
# Below ~30 archs a single outlier moves R^2 by more than the gap between the groups.
DEFAULT_MIN_COMMON = 30

Data = Mapping[str, tuple[Sequence[str], np.ndarray]]


@dataclass(frozen=True)
class PairFit:
    """The fit of device a on device b over their common archs: LAT_a ~ gamma * LAT_b.

    `r2` is the worse of r2_ab (a fitted from b) and r2_ba (b from a); None where n < min_common."""

    a: str
    b: str
    n: int
    gamma: float | None = None
    r2: float | None = None
    r2_ab: float | None = None
    r2_ba: float | None = None
    rho: float | None = None

    @property
    def known(self) -> bool:
        return self.r2 is not None

    def holds(self, threshold: float) -> bool:
        return self.r2 is not None and self.r2 >= threshold


@dataclass
class Group:
    """Devices that pairwise hold; `gamma[m]`: member m's latency ~ gamma * the representative's."""

    representative: str
    members: list[str]
    gamma: dict[str, float] = field(default_factory=dict)
    min_r2: float | None = None  # the worst pair inside (None for a single device)
    # a device alone: the group of 2+ it is closest to (representative, its worst R^2 to that group's members)
    nearest: tuple[str, float] | None = None


@dataclass
class Grouping:
    space: str
    threshold: float
    min_common: int
    devices: list[str]
    n_archs: dict[str, int]
    pairs: list[PairFit]
    groups: list[Group]

    def order(self) -> list[str]:
        """Devices group by group, representative first (the heat map's order)."""
        return [d for g in self.groups for d in g.members]

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "threshold": self.threshold, "min_common": self.min_common,
                "r2": "centred, 1 - SSE/sum((a - mean a)^2), of LAT_a ~ gamma*LAT_b through the origin; "
                      "the worse of the two directions",
                "devices": [{"name": d, "archs": self.n_archs[d]} for d in self.devices],
                "groups": [{"representative": g.representative, "members": g.members,
                            "gamma_to_representative": {m: _num(v) for m, v in g.gamma.items()},
                            "min_r2": _num(g.min_r2),
                            "nearest_group": None if g.nearest is None else
                            {"representative": g.nearest[0], "worst_r2": _num(g.nearest[1])}}
                           for g in self.groups],
                "pairs": [{"a": p.a, "b": p.b, "n": p.n, "gamma": _num(p.gamma), "r2": _num(p.r2),
                           "r2_ab": _num(p.r2_ab), "r2_ba": _num(p.r2_ba), "rho": _num(p.rho),
                           "status": ("unknown" if not p.known else
                                      "holds" if p.holds(self.threshold) else "fails")}
                          for p in self.pairs]}


def _num(x: float | None) -> float | None:
    """A JSON-safe number: None for missing or non-finite."""
    return None if x is None or not math.isfinite(x) else float(x)


def centred_r2(y: np.ndarray, pred: np.ndarray) -> float:
    """1 - SSE / sum((y - mean y)^2). A constant y: 1 if pred matches it exactly, else -inf."""
    sse = float(np.sum((y - pred) ** 2))
    sst = float(np.sum((y - y.mean()) ** 2))
    if sst == 0.0:
        return 1.0 if sse == 0.0 else -math.inf
    return 1.0 - sse / sst


def ratio_fit(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(gamma, centred R^2) of the least-squares fit a ~ gamma * b through the origin."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    bb = float(b @ b)
    if bb == 0.0:
        return math.nan, -math.inf
    gamma = float(a @ b) / bb
    return gamma, centred_r2(a, gamma * b)


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rho; None where undefined (fewer than 2 values, a constant side)."""
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(a, b).statistic)


def fit_pair(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray, min_common: int) -> PairFit:
    """The PairFit of two aligned latency vectors (the same archs, in the same order)."""
    n = int(a.size)
    if n < max(min_common, 2):
        return PairFit(name_a, name_b, n)
    gamma, r2_ab = ratio_fit(a, b)
    _, r2_ba = ratio_fit(b, a)
    return PairFit(name_a, name_b, n, gamma, min(r2_ab, r2_ba), r2_ab, r2_ba, spearman(a, b))


def latency_matrix(data: Data) -> tuple[list[str], np.ndarray]:
    """(devices, matrix devices x archs) with NaN where a device lacks an arch: pairs align by mask."""
    devices = list(data)
    index: dict[str, int] = {}
    for ids, _ in data.values():
        for arch in ids:
            index.setdefault(arch, len(index))
    m = np.full((len(devices), len(index)), np.nan)
    for i, d in enumerate(devices):
        ids, y = data[d]
        y = np.asarray(y, dtype=np.float64)
        if len(ids) != y.size:
            raise ValueError(f"{d}: {len(ids)} arch ids but {y.size} latencies")
        m[i, [index[a] for a in ids]] = y
    return devices, m


def pairwise_fits(data: Data, min_common: int = DEFAULT_MIN_COMMON) -> list[PairFit]:
    """A PairFit for every pair (a before b in `data`'s order) over the archs both measured."""
    return _fits(*latency_matrix(data), min_common)


def _fits(devices: Sequence[str], m: np.ndarray, min_common: int) -> list[PairFit]:
    have = ~np.isnan(m)
    fits = []
    for i in range(len(devices)):
        for j in range(i + 1, len(devices)):
            common = have[i] & have[j]
            fits.append(fit_pair(devices[i], m[i, common], devices[j], m[j, common], min_common))
    return fits


class _Scores:
    """Symmetric look-up of pair R^2 (None: unknown)."""

    def __init__(self, fits: Sequence[PairFit]) -> None:
        self._r2 = {frozenset((p.a, p.b)): p.r2 for p in fits}

    def __call__(self, a: str, b: str) -> float | None:
        return 1.0 if a == b else self._r2.get(frozenset((a, b)))


def complete_linkage(devices: Sequence[str], fits: Sequence[PairFit], threshold: float) -> list[list[str]]:
    """Agglomerative complete linkage cut at `threshold`: every pair inside a group has R^2 >= threshold.

    The link of two clusters is their worst pair (unknown if any pair is unknown, which never merges); the
    best link merges first, ties by the clusters' order in `devices`, so the result is deterministic."""
    score = _Scores(fits)
    clusters = [[d] for d in devices]
    while True:
        best: tuple[float, int, int] | None = None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                links = [score(a, b) for a in clusters[i] for b in clusters[j]]
                if any(s is None or not s >= threshold for s in links):
                    continue
                link = min(links)  # type: ignore[type-var]
                if best is None or link > best[0]:
                    best = (link, i, j)
        if best is None:
            return clusters
        _, i, j = best
        clusters[i] = clusters[i] + clusters.pop(j)


def medoid(members: Sequence[str], fits: Sequence[PairFit], n_archs: Mapping[str, int]) -> str:
    """The member with the highest mean R^2 to the others (ties: more archs measured, then the name)."""
    score = _Scores(fits)

    def key(d: str) -> tuple[float, int, str]:
        others = [score(d, m) for m in members if m != d]
        mean = float(np.mean([s for s in others if s is not None])) if others else 1.0
        return (-mean, -n_archs.get(d, 0), d)

    return min(members, key=key)


def group_devices(data: Data, space: str = "", threshold: float = DEFAULT_THRESHOLD,
                  min_common: int = DEFAULT_MIN_COMMON) -> Grouping:
    """Fit every pair, group by complete linkage, pick each group's representative (see the module doc)."""
    if not math.isfinite(threshold) or threshold > 1:
        raise UserInputError(f"the R^2 threshold must be a number <= 1 (0.9 is the default), got {threshold}")
    if min_common < 2:
        raise UserInputError(f"the minimum of common archs must be at least 2, got {min_common}")
    if len(data) < 2:
        raise UserInputError(f"grouping needs at least 2 devices with {space or 'the space'}'s measurements, "
                             f"got {len(data)}{': ' + ', '.join(data) if data else ''}")
    devices, matrix = latency_matrix(data)
    n_archs = {d: len(data[d][0]) for d in devices}
    fits = _fits(devices, matrix, min_common)
    score, row = _Scores(fits), {d: i for i, d in enumerate(devices)}
    groups = []
    for members in complete_linkage(devices, fits, threshold):
        rep = medoid(members, fits, n_archs)
        ordered = [rep, *sorted(m for m in members if m != rep)]
        gamma = {}
        for m in ordered[1:]:  # m ~ gamma * rep (least squares: not the inverse of rep ~ gamma' * m)
            a, b = matrix[row[m]], matrix[row[rep]]
            common = ~np.isnan(a) & ~np.isnan(b)
            gamma[m] = ratio_fit(a[common], b[common])[0]
        inside = [score(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:]]
        min_r2 = min((s for s in inside if s is not None), default=None)
        groups.append(Group(rep, ordered, gamma, min_r2))
    groups.sort(key=lambda g: (-len(g.members), g.representative))
    for alone in (g for g in groups if len(g.members) == 1):
        links = [(min(_known(score(alone.representative, m)) for m in g.members), g.representative)
                 for g in groups if len(g.members) > 1]
        best = max(links, default=None)
        if best is not None and math.isfinite(best[0]):
            alone.nearest = (best[1], best[0])
    return Grouping(space, threshold, min_common, devices, n_archs, fits, groups)


def _known(r2: float | None) -> float:
    return -math.inf if r2 is None else r2


def space_devices(store: Any, space: str) -> list[str]:
    """The devices with ok latency measurements of `space` in the store, sorted (as `dataset summary` lists)."""
    return [r[0] for r in store.db.execute(
        "SELECT DISTINCT x.device FROM measurements x JOIN models m ON m.sha256 = x.model_sha256 "
        "WHERE m.space = ? AND x.status = 'ok' AND x.median_ms IS NOT NULL ORDER BY x.device", (space,))]


def store_spaces(store: Any) -> list[str]:
    """The spaces the store holds ok measurements of, sorted."""
    return [r[0] for r in store.db.execute(
        "SELECT DISTINCT m.space FROM measurements x JOIN models m ON m.sha256 = x.model_sha256 "
        "WHERE x.status = 'ok' ORDER BY m.space")]


def read_space(store: Any, space: str, devices: Sequence[str] | None = None, backend: str | None = None,
               precision: str | None = None, batch: int | None = None,
               space_config: dict[str, Any] | None = None) -> dict[str, tuple[list[str], np.ndarray]]:
    """{device: (arch ids, median ms)} of a space's devices (all, or `devices`) from the Store.

    UserInputError when the space is unknown to both the registry and the store, or the store has none of
    it. The setting options narrow only devices measured under several (`load_devices`' only_where_ambiguous):
    HELP's devices carry one setting each, their batch differs by device."""
    from predictors.data import load_devices
    from spaces import list_spaces

    held = store_spaces(store)
    if space not in held:
        known = list_spaces()
        what = "unknown space" if space not in known else "no ok measurements of space"
        raise UserInputError(f"{what} {space!r} in {store.path}; spaces with data there: "
                             f"{', '.join(held) if held else 'none'}" + ("" if space in known else
                                                                         f"; known spaces: {', '.join(known)}"))
    have = space_devices(store, space)
    if devices:
        missing = [d for d in devices if d not in have]
        if missing:
            raise UserInputError(f"no ok {space} measurements of {', '.join(missing)} in {store.path}; devices "
                                 f"with {space} data: {', '.join(have)}")
        have = list(dict.fromkeys(devices))
    if len(have) < 2:
        raise UserInputError(f"grouping needs at least 2 devices with {space} measurements; {store.path} has "
                             f"{len(have)}{': ' + ', '.join(have) if have else ''}")
    return load_devices(store, have, space, backend, precision, batch, space_config, only_where_ambiguous=True)
