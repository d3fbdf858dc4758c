"""Held-out evaluation of a predictor on a device's measurements: the archs it was not trained or adapted
on. Shared by `edgeprof evaluate`, `adapt` and `report`, so all three score the same split."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from predictors.base import LatencyPredictor
from predictors.data import load_xy
from predictors.io import load_predictor, read_train_archs
from predictors.metrics import report
from profiler.store import Store
from spaces.errors import UserInputError

Evaluation = tuple[dict[str, Any], np.ndarray, np.ndarray]  # (metrics, predicted, measured)


def held_out(pred: LatencyPredictor, arch_ids: Sequence[str], y: np.ndarray, seen: Collection[str], device: str,
             n_target_samples: int, what: str = "the predictor") -> Evaluation:
    """Metrics of `pred` on the measured (arch_ids, y) of `device` outside `seen`; ValueError when nothing
    is left to score."""
    seen = set(seen)
    keep = [i for i, a in enumerate(arch_ids) if a not in seen]
    if not keep:
        raise UserInputError(f"{device}: every measured {pred.space} arch was used to train {what}; "
                         "nothing left to evaluate")
    ids = [arch_ids[i] for i in keep]
    true = np.asarray(y, dtype=np.float64)[keep]
    predicted = pred.predict(ids)
    split = f"all {len(ids)} measured archs of {device} not used by the predictor"
    return report(predicted, true, n_target_samples=n_target_samples, split=split), predicted, true


def evaluate_saved(path: str | Path, store: Store, device: str, **setting: Any) -> Evaluation:
    """`held_out` of a saved predictor folder on `device` (same space and quantity as the predictor).

    `setting`: backend, precision, batch, space_config, as `predictors.data.load_xy` takes them.
    """
    pred = load_predictor(path)
    quantity = pred.card_.get("quantity", "latency")
    ids, y = load_xy(store, device, pred.space, quantity=quantity, **setting)
    seen = read_train_archs(path)
    return held_out(pred, ids, y, seen, device, n_target_samples=len(seen), what=str(path))
