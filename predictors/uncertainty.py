"""How wrong an adapted few-shot predictor is expected to be, from its own K samples: leave-one-out
re-adaptation (`expected_error`) and the prediction interval it supports (`interval`).

Why: a few-shot predictor adapted to a board unlike its meta-training devices can be far off (Spearman 0.82
on a Jetson table where HELP's test devices reach 0.95), and nothing else on the target tells the user. The
K measured samples are the only ground truth there, so each one (or each of `max_folds` folds when K is
larger) is left out in turn, a copy of the meta-trained predictor is re-adapted on the rest (plus the
reference latencies, which describe the device and are never left out), and the left-out sample is
predicted. The log residuals log(measured / predicted) give the expected MAPE, Acc@10 and Spearman, and a
jackknife (leave-one-out conformal) interval on log scale. The folds adapt on K - 1 samples, the saved
predictor on K: the estimate is slightly pessimistic, never optimistic for that reason.

Works for any `FewShotPredictor` whose `adapt(arch_ids, y)` starts from its meta-init each time (HELP, the
HELP ensemble: `adapt(..., reference=...)`; maml-acc: `adapt(arch_ids, accuracies)`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from predictors.base import check_targets
from predictors.fewshot import FewShotPredictor
from predictors.metrics import acc_within, mae, mape, spearman
from spaces.errors import UserInputError

KEYS = ("method", "k", "folds", "mape", "acc10", "spearman", "mae", "log_residuals")


def _folds(k: int, max_folds: int) -> list[np.ndarray]:
    """Leave-one-out when k <= max_folds, else max_folds folds of a fixed permutation (deterministic)."""
    if k <= max_folds:
        return [np.array([i]) for i in range(k)]
    perm = np.random.default_rng(0).permutation(k)
    return [np.sort(f) for f in np.array_split(perm, max_folds)]


def expected_error(pred: FewShotPredictor, support_ids: Sequence[str], support_y: np.ndarray,
                   reference: Mapping[str, float] | None = None, max_folds: int = 20) -> dict[str, Any]:
    """Cross-validated error of adapting `pred` on (`support_ids`, `support_y`): each left-out sample is
    predicted by a copy of `pred` re-adapted on the other samples (and `reference`); `pred` is not changed.

    Returns {"method", "k", "folds", "mape" (%), "acc10" (share), "spearman" (None when k < 3 or undefined),
    "mae" (the predicted unit), "log_residuals" (log(measured / predicted), in support order)}. Samples that
    are reference archs describe the device and stay in every fold; the others are the k scored.
    UserInputError when fewer than 2 samples can be left out or a value is not positive.
    """
    pred.check_is_fitted()
    if isinstance(max_folds, bool) or not isinstance(max_folds, int) or max_folds < 2:
        raise UserInputError(f"max_folds must be an int >= 2, got {max_folds!r}")
    ids = [str(a) for a in support_ids]
    try:
        y = check_targets(ids, support_y)  # finite and positive: the residuals are logs
    except ValueError as e:
        raise UserInputError(f"expected_error: {e}") from None
    adaptive = hasattr(pred, "reference_ids")  # adapt(ids, y, reference=...) rather than adapt(ids, y)
    if reference is not None and not adaptive:
        raise UserInputError(f"expected_error: a {pred.kind!r} predictor takes no reference latencies")
    refs = set(pred.reference_ids()) if adaptive else set()
    scored = [i for i, a in enumerate(ids) if a not in refs]
    kept = [i for i, a in enumerate(ids) if a in refs]
    k = len(scored)
    if k < 2:
        raise UserInputError(f"expected_error: {k} sample(s) besides the reference archs; leaving one out needs "
                             "at least 2")
    folds = _folds(k, max_folds)
    predicted = np.empty(k)
    for fold in folds:
        out = set(fold.tolist())
        rest = kept + [scored[j] for j in range(k) if j not in out]
        work = pred.copy_sharing_features()
        try:
            if adaptive:
                work.adapt([ids[i] for i in rest], y[rest], reference=reference)  # type: ignore[call-arg]
            else:
                work.adapt([ids[i] for i in rest], y[rest])
        except UserInputError:
            raise
        except ValueError as e:  # the predictor's own floor (maml-acc adapts on >= 2 pairs): too few to leave out
            raise UserInputError(f"expected_error: a {pred.kind!r} predictor cannot adapt on the {len(rest)} "
                                 f"samples a fold leaves ({e}); give more samples") from None
        predicted[fold] = work.predict([ids[scored[j]] for j in fold])
    true = y[scored]
    if np.any(~np.isfinite(predicted)) or np.any(predicted <= 0):
        raise UserInputError("expected_error: a re-adapted copy predicted a non-positive value; no log residual")
    rho = spearman(predicted, true) if k >= 3 else math.nan
    how = (f"leave-one-out over {k} samples" if len(folds) == k else
           f"{len(folds)}-fold cross-validation over {k} samples")
    return {"method": how, "k": k, "folds": len(folds), "mape": mape(predicted, true),
            "acc10": acc_within(predicted, true, 0.10), "spearman": None if math.isnan(rho) else rho,
            "mae": mae(predicted, true), "log_residuals": np.log(true / predicted).tolist()}


def shown(expected: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The expected error as commands print it: without its log residuals (they stay on the card, for
    `predict --interval`); None stays None."""
    return None if expected is None else {k: v for k, v in expected.items() if k != "log_residuals"}


def max_level(k: int) -> float:
    """The highest interval level k residuals support: k / (k + 1), rounded down to 3 decimals."""
    return math.floor(1000 * k / (k + 1)) / 1000


def log_bound(expected: Mapping[str, Any], level: float) -> float:
    """q: the ceil((k + 1) * level)-th smallest |log residual| (split-conformal finite-sample quantile);
    UserInputError for a level outside (0, 1) or above what the k residuals support."""
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise UserInputError(f"interval level must be a number between 0 and 1 (e.g. 0.9), got {level!r}")
    res = np.abs(np.asarray(check_expected(expected)["log_residuals"], dtype=np.float64))
    k = len(res)
    rank = math.ceil((k + 1) * level - 1e-9)  # the tolerance: (k + 1) * (k / (k + 1)) may round above k
    if rank > k:
        raise UserInputError(f"a {level:g} interval needs at least {math.ceil(level / (1 - level) - 1e-9)} "
                             f"held-out samples; the expected error has {k}, which support levels up to "
                             f"{max_level(k):g} (adapt on more samples for a higher level)")
    return float(np.sort(res)[max(rank, 1) - 1])


def interval(expected: Mapping[str, Any], predicted: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) around `predicted` (its unit): predicted * exp(-q), predicted * exp(q), with q from
    `log_bound`. Under exchangeability of the samples and new archs, a leave-one-out interval covers about
    `level` of them (jackknife); it is symmetric on log scale, so a biased predictor gets a wider interval
    rather than a shifted one (an asymmetric one would need 2/(1 - level) samples instead of 1/(1 - level))."""
    q = log_bound(expected, level)
    p = np.asarray(predicted, dtype=np.float64)
    return p * math.exp(-q), p * math.exp(q)


def check_expected(expected: Any) -> Mapping[str, Any]:
    """`expected` if it is an expected_error dict (what a card holds), else UserInputError naming the flaw."""
    if not isinstance(expected, Mapping):
        raise UserInputError(f"expected_error must be a dict from predictors.uncertainty.expected_error, got "
                             f"{type(expected).__name__}")
    missing = [key for key in ("method", "k", "mape", "log_residuals") if key not in expected]
    if missing:
        raise UserInputError(f"expected_error lacks {', '.join(missing)}")
    res = expected["log_residuals"]
    if not isinstance(res, list | tuple) or not res or not all(
            isinstance(r, int | float) and not isinstance(r, bool) and math.isfinite(r) for r in res):
        raise UserInputError("expected_error: log_residuals must be a non-empty list of finite numbers")
    if expected["k"] != len(res):
        raise UserInputError(f"expected_error: k is {expected['k']} but there are {len(res)} log residuals")
    return expected


def summary(expected: Mapping[str, Any]) -> str:
    """'expected MAPE 7.1% (leave-one-out over 10 samples ...)' for people."""
    return f"expected MAPE {expected['mape']:.1f}% ({expected['method']})"
