"""Which networks to measure on a new device before adapting a meta-trained latency predictor to it.

Few-shot adaptation sees K measured archs; drawing them at random wastes some on near-duplicates or on a
narrow band of latencies. An acquisition rule proposes the K instead (`select`):

- "random": a seeded draw (the baseline every rule is compared with);
- "coverage": the predictor adapted on the device's reference latencies alone predicts every candidate;
  the K picks sit at evenly spaced quantiles of the predicted log latency, so the support spans the
  device's range rather than its crowded middle (needs the references);
- "disagreement": after the same reference-only adaptation, the candidates where the ensemble members'
  log predictions disagree most, greedily, no pick within one layer of an earlier one (needs the
  references and an ensemble);
- "doptimal": a greedy D-optimal design on the one-hot features plus a constant (log det of
  X^T X + lambda I, the reference archs counted as already measured): device-free, so it also proposes
  networks before the references are measured.

Every rule is deterministic given `seed` and works on a copy, never on the caller's predictor.

DEFAULT_RULE is doptimal, by a leave-one-device-out check on HELP's NB201 tables (the default ensemble
meta-trained without each of pixel2, raspi4, eyeriss, fpga, gold_6226, its batch siblings and the 4 meta-valid
devices; K picked from pool rows [0, 900), Spearman on query rows [900, 1900)). Mean / worst device rho at
K = 5, 10, 20: doptimal 0.940 / 0.811, 0.940 / 0.809, 0.944 / 0.819; random (10 draws) 0.938 / 0.796,
0.940 / 0.809, 0.942 / 0.813; coverage 0.942 / 0.812, 0.940 / 0.817, 0.936 / 0.786 (unsteady);
disagreement 0.935-0.936 with MAPE up to 39% (it picks degenerate cells the members extrapolate on).
The gaps are small because the adaptation itself moves little with K; doptimal never lost to random on the
mean or the worst device and needs no reference latencies, so one rule serves before and after they exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spaces.errors import UserInputError

RULES: tuple[str, ...] = ("random", "coverage", "disagreement", "doptimal")
DEFAULT_RULE: str = "doptimal"
NEEDS_REFERENCE: tuple[str, ...] = ("coverage", "disagreement")
DOPT_RIDGE = 1e-3  # lambda: only makes the one-hot's collinear columns (each layer's ones sum to 1) invertible


def select(pred: Any, candidates: Sequence[str], k: int, rule: str = DEFAULT_RULE, seed: int = 0,
           reference: Mapping[str, float] | None = None) -> list[str]:
    """The K candidate arch ids to measure on the target device, by `rule` (see the module docstring).

    `pred` is a meta-trained HardwareAdaptivePredictor (not mutated), `reference` the device's
    {reference arch id: ms} or None. Reference archs and repeats among `candidates` are dropped (they are
    measured anyway). UserInputError for an unknown rule, K outside [1, candidates], or a rule that needs
    the reference latencies without them.
    """
    if rule not in RULES:
        raise UserInputError(f"unknown acquisition rule {rule!r} (known: {', '.join(RULES)})")
    refs = list(pred.reference_ids())
    ref_set = set(refs)
    cands = [a for a in dict.fromkeys(str(c) for c in candidates) if a not in ref_set]
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
        raise UserInputError(f"select: K must be a positive number of archs, got {k!r}")
    if k > len(cands):
        raise UserInputError(f"select: K = {k} archs asked but only {len(cands)} candidates (references and "
                             "repeats excluded)")
    rng = np.random.default_rng(seed)
    if rule == "random":
        return [cands[i] for i in sorted(rng.choice(len(cands), int(k), replace=False))]
    if rule == "doptimal":
        return [cands[i] for i in doptimal(pred.encode(cands), int(k), rng, pred.encode(refs))]
    if reference is None or any(r not in reference for r in refs):
        missing = len(refs) if reference is None else sum(r not in reference for r in refs)
        raise UserInputError(f"acquisition rule {rule!r} needs the device's latencies on the {len(refs)} reference "
                             f"archs ({missing} missing): measure the references first, or use a device-free "
                             "rule (doptimal, random)")
    adapted = reference_adapted(pred, {r: float(reference[r]) for r in refs})
    if rule == "coverage":
        return [cands[i] for i in coverage(np.log(adapted.predict(cands)), int(k), rng)]
    members = getattr(adapted, "members_", None)
    if not members or len(members) < 2:
        raise UserInputError(f"acquisition rule 'disagreement' needs an ensemble ({pred.kind!r} has no members "
                             "to disagree); use coverage or doptimal")
    logs = np.stack([np.log(np.maximum(m.predict(cands), 1e-12)) for m in members])
    return [cands[i] for i in disagreement(logs.std(axis=0), pred.encode(cands), int(k), rng)]


def reference_adapted(pred: Any, reference: Mapping[str, float]) -> Any:
    """A copy of `pred` adapted on the reference latencies alone (the references are its support)."""
    ids = list(reference)
    return pred.copy_sharing_features().adapt(ids, np.array([reference[a] for a in ids], dtype=np.float64),
                                              reference=reference)


def _pick(scores: np.ndarray, rng: np.random.Generator, tol: float = 1e-9) -> int:
    """Index of the best score; a seeded draw among those tied with it."""
    best = float(np.max(scores))
    tied = np.flatnonzero(scores >= best - tol * max(1.0, abs(best)))
    return int(tied[0] if len(tied) == 1 else rng.choice(tied))


def doptimal(x: np.ndarray, k: int, rng: np.random.Generator, known: np.ndarray | None = None,
             ridge: float = DOPT_RIDGE) -> list[int]:
    """Greedy D-optimal rows of `x` (one-hot; a constant column is added): each step adds the row that most
    increases log det(X^T X + ridge I), i.e. the largest x^T A^-1 x, by Sherman-Morrison updates of A^-1.
    `known` rows (the reference archs) start in the design."""
    x = np.concatenate([np.asarray(x, dtype=np.float64), np.ones((len(x), 1))], axis=1)
    ainv = np.eye(x.shape[1]) / ridge
    if known is not None and len(known):
        kx = np.concatenate([np.asarray(known, dtype=np.float64), np.ones((len(known), 1))], axis=1)
        ainv = np.linalg.inv(ridge * np.eye(x.shape[1]) + kx.T @ kx)
    xa = x @ ainv  # rows x^T A^-1, updated with A^-1
    gain = np.einsum("ij,ij->i", xa, x)
    picked: list[int] = []
    for _ in range(k):
        g = gain.copy()
        g[picked] = -np.inf
        i = _pick(g, rng)
        picked.append(i)
        u = ainv @ x[i]  # A^-1 x_i
        denom = 1.0 + float(x[i] @ u)
        ainv -= np.outer(u, u) / denom
        xu = x @ u
        xa -= np.outer(xu, u) / denom
        gain -= xu * xu / denom
    return picked


def coverage(log_pred: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """K indices at evenly spaced quantiles ((i + 0.5) / K) of the predicted log latencies; ties in the
    prediction are ordered by a seeded shuffle."""
    n = len(log_pred)
    perm = rng.permutation(n)
    order = perm[np.argsort(np.asarray(log_pred)[perm], kind="stable")]
    ranks = np.floor((np.arange(k) + 0.5) / k * n).astype(int)
    return [int(order[min(r, n - 1)]) for r in ranks]


def disagreement(spread: np.ndarray, x: np.ndarray, k: int, rng: np.random.Generator,
                 min_layers: int = 2) -> list[int]:
    """Greedily the largest `spread`, skipping candidates that differ from an earlier pick in fewer than
    `min_layers` layers (one-hot rows: half the L1 distance); when every candidate left is that close,
    the rule falls back to the spread alone so K picks are always returned."""
    x = np.asarray(x, dtype=np.float32)
    score = np.asarray(spread, dtype=np.float64).copy()
    near = np.zeros(len(score), dtype=bool)
    picked: list[int] = []
    for _ in range(k):
        s = score.copy()
        s[picked] = -np.inf
        if not np.all(near | np.isinf(s)):
            s[near] = -np.inf
        i = _pick(s, rng)
        picked.append(i)
        near |= np.abs(x - x[i]).sum(axis=1) / 2 < min_layers
    return picked
