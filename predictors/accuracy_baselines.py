"""Domino's meta-accuracy predictor against the thesis' three baselines (Fig. 5.6 right), on the same pairs.

Given many (arch, accuracy) pairs of a cheap source task (the thesis' ImageNet-tiny) and K pairs of the
expensive target task (ImageNet), four predictors of target accuracy, all the 128-64-1 MLP on the arch:

- direct: the MLP trained on the K target pairs only;
- transferred: the MLP trained on the source pairs, used on the target as is;
- fine-tuned: the transferred MLP trained further on the K target pairs (Adam, full batch, `ft_epochs` = 100
  steps at `ft_lr` = 1e-2; the source's target scaling kept, so the offset between the tasks has to be learned);
- maml-acc: meta-trained with MAML on the source pairs, adapted with the K target pairs as the predictor does by
  default (its one inner step, SGD at lr 0.01, on accuracies standardised with the source's mean and std);
- maml-acc-100: the same meta-init adapted with 100 such steps (`adapt_steps`), since the thesis leaves the
  number of adaptation steps open and one step cannot move the prediction by the tasks' offset;
- maml-acc-affine (not the thesis'): the meta-init's predictions mapped onto the target by a least-squares
  line fitted on the K pairs (2 parameters: the target's offset and its spread relative to the source's);
- support-mean (a reference, not the thesis'): the mean of the K target pairs for every arch. Its RMSE is the
  target's spread: a predictor below it has learned something about the masks, one above it has not.

Accuracies are regressed as is (the standardised identity target), as `edgeprof train --quantity accuracy` does.
The source fits do not depend on the K-pair draw, so `compare` takes them fitted once (`fit_source`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from predictors.meta_accuracy import MetaAccuracyPredictor
from predictors.metrics import rmse, spearman
from predictors.nn import TorchPredictor, train_regressor
from predictors.registry import create_predictor

METHODS = ("direct", "transferred", "fine-tuned", "maml-acc", "maml-acc-100", "maml-acc-affine", "support-mean")
LONG_ADAPT_STEPS = 100  # maml-acc-100's adaptation steps


@dataclass
class SourceFits:
    """The predictors fitted on the source task once: the MLP (transferred, fine-tuned) and maml-acc."""

    mlp: TorchPredictor
    maml: MetaAccuracyPredictor
    fit_s: float


def accuracy_mlp(space: str, seed: int, epochs: int = 200, space_config: dict[str, Any] | None = None
                 ) -> TorchPredictor:
    """The thesis' 128-64-1 MLP regressing accuracy as is."""
    pred = create_predictor("mlp", space=space, space_config=space_config, seed=seed, epochs=epochs,
                            target="linear")
    assert isinstance(pred, TorchPredictor)
    return pred


def fit_source(space: str, ids: Sequence[str], y: np.ndarray, seed: int = 0, mlp_epochs: int = 200,
               meta_iters: int = 1000, space_config: dict[str, Any] | None = None) -> SourceFits:
    """Fit the MLP and meta-train maml-acc on the source pairs."""
    import time

    t0 = time.perf_counter()
    mlp = accuracy_mlp(space, seed, mlp_epochs, space_config).fit(list(ids), np.asarray(y, dtype=np.float64))
    maml = MetaAccuracyPredictor(space=space, space_config=space_config, seed=seed, meta_iters=meta_iters,
                                 n_query=min(50, max(1, len(y) - 10)))
    maml.meta_fit({"source": (list(ids), np.asarray(y, dtype=np.float64))})
    return SourceFits(mlp, maml, time.perf_counter() - t0)


def fine_tune(pred: TorchPredictor, ids: Sequence[str], y: np.ndarray, epochs: int = 100, lr: float = 1e-2,
              seed: int = 0) -> TorchPredictor:
    """A copy of the fitted MLP trained further on (ids, y), keeping its target scaling."""
    tuned = copy.deepcopy(pred)
    x = torch.from_numpy(tuned.encode(list(ids)))
    t = torch.from_numpy(tuned.scaler_.apply(np.asarray(y, dtype=np.float64)).astype(np.float32))
    train_regressor(tuned.net_, x, t, epochs=epochs, batch_size=len(t), lr=lr, weight_decay=0.0, seed=seed)
    return tuned


def scores(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """RMSE (accuracy points) and Spearman rho of predictions against the held-out truth."""
    return {"rmse": rmse(pred, true), "spearman": spearman(pred, true)}


def compare(source: SourceFits, support: tuple[Sequence[str], np.ndarray], query: tuple[Sequence[str], np.ndarray],
            seed: int = 0, mlp_epochs: int = 200, ft_epochs: int = 100, ft_lr: float = 1e-2
            ) -> dict[str, dict[str, float]]:
    """{method: {rmse, spearman}} of the four predictors on the query pairs, adapted with the support pairs."""
    s_ids, s_y = list(support[0]), np.asarray(support[1], dtype=np.float64)
    q_ids, q_y = list(query[0]), np.asarray(query[1], dtype=np.float64)
    space, config = source.mlp.space, source.mlp.space_config
    direct = accuracy_mlp(space, seed, mlp_epochs, config).fit(s_ids, s_y)
    tuned = fine_tune(source.mlp, s_ids, s_y, ft_epochs, ft_lr, seed)
    maml = copy.deepcopy(source.maml).adapt(s_ids, s_y)
    longer = copy.deepcopy(source.maml)
    longer.adapt_steps = LONG_ADAPT_STEPS
    longer.adapt(s_ids, s_y)
    return {"direct": scores(direct.predict(q_ids), q_y),
            "transferred": scores(source.mlp.predict(q_ids), q_y),
            "fine-tuned": scores(tuned.predict(q_ids), q_y),
            "maml-acc": scores(maml.predict(q_ids), q_y),
            "maml-acc-100": scores(longer.predict(q_ids), q_y),
            "maml-acc-affine": scores(affine(source.maml.predict(s_ids), s_y, source.maml.predict(q_ids)), q_y),
            "support-mean": {"rmse": rmse(np.full(len(q_y), s_y.mean()), q_y), "spearman": float("nan")}}


def affine(pred_support: np.ndarray, y_support: np.ndarray, pred_query: np.ndarray) -> np.ndarray:
    """`pred_query` mapped by the least-squares line from the support's predictions to its accuracies."""
    slope, intercept = np.polyfit(np.asarray(pred_support, dtype=np.float64), y_support, 1)
    return slope * np.asarray(pred_query, dtype=np.float64) + intercept


def summarise(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean and std over draws of each method's RMSE and rho."""
    out = {}
    for method in METHODS:
        r = np.array([run[method]["rmse"] for run in runs])
        s = np.array([run[method]["spearman"] for run in runs], dtype=np.float64)
        out[method] = {"rmse_mean": float(r.mean()), "rmse_std": float(r.std()),
                       "spearman_mean": float(np.nanmean(s)) if np.isfinite(s).any() else float("nan"),
                       "spearman_std": float(np.nanstd(s)) if np.isfinite(s).any() else float("nan")}
    return out
