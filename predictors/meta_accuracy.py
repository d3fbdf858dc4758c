"""Domino's meta-accuracy predictor, kind "maml-acc" (thesis ch.5, §3.5): a 128-64-1 MLP meta-trained with
MAML (one inner step, predictors.maml) on (arch, accuracy) pairs from proxy tasks and adapted with a few
pairs from the target task. Unlike the thesis' per-pair formulation, episodes use disjoint support and
query mini-batches (the standard MAML reading, which the spec asks to record). The CLI (`edgeprof train
maml-acc --tasks T`, `edgeprof adapt P --task T`) reads the pairs from the store's accuracy table
(`predictors.data.load_accuracy`); the names of the meta-training tasks are kept (`meta_tasks_`), so an
adaptation to one of them can avoid the archs meta-training saw.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from predictors.fewshot import FewShotPredictor, is_hidden, is_nonneg_int, is_pos_float, is_pos_int
from predictors.maml import MAML, engine_state, load_engine_state, mlp, state_array, torch_threads
from predictors.registry import register_predictor


@register_predictor("maml-acc")
class MetaAccuracyPredictor(FewShotPredictor):
    """Accuracy predictor meta-trained with MAML on proxy-task pairs, adapted with a few target pairs.

    Accuracies are standardised with the mean/std over all meta-training pairs (kept in the state), so
    the network works on O(1) numbers while the adaptation still has to learn the target's offset.
    Episodes draw a proxy task, a support of `n_support` pairs and a disjoint query of `n_query` pairs.
    After meta_fit, `predict` answers with the meta-init (the "transferred as is" baseline of the thesis)
    until `adapt` is called; `adapt_steps` (default: the inner steps) sets the test-time steps.
    """

    kind: ClassVar[str] = "maml-acc"
    _parameter_constraints: ClassVar = {
        "hidden": (is_hidden, "a list of positive ints"),
        "inner_lr": (is_pos_float, "a positive float"),
        "inner_steps": (is_nonneg_int, "an int >= 0"),
        "meta_iters": (is_nonneg_int, "an int >= 0"),
        "meta_batch": (is_pos_int, "an int >= 1"),
        "n_support": (is_pos_int, "an int >= 1"),
        "n_query": (is_pos_int, "an int >= 1"),
        "outer_lr": (is_pos_float, "a positive float"),
    }

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0,
                 hidden: Sequence[int] = (128, 64), inner_lr: float = 0.01, inner_steps: int = 1,
                 learn_inner_lr: bool = False, first_order: bool = False, meta_iters: int = 1000,
                 meta_batch: int = 4, n_support: int = 10, n_query: int = 50, outer_lr: float = 1e-3,
                 adapt_steps: int | None = None, verbose: bool = False):
        super().__init__(space=space, space_config=space_config, seed=seed)
        self.hidden = hidden
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.learn_inner_lr = learn_inner_lr
        self.first_order = first_order
        self.meta_iters = meta_iters
        self.meta_batch = meta_batch
        self.n_support = n_support
        self.n_query = n_query
        self.outer_lr = outer_lr
        self.adapt_steps = adapt_steps
        self.verbose = verbose

    def _build(self, n_in: int) -> MAML:
        with torch.random.fork_rng():  # seeded weights without touching the caller's RNG
            torch.manual_seed(self.seed)
            return MAML(lambda: mlp(n_in, list(self.hidden)), inner_lr=self.inner_lr,
                        inner_steps=self.inner_steps, learn_inner_lr=self.learn_inner_lr,
                        first_order=self.first_order)

    @torch_threads(1)  # many tiny products: threads cost more than they save
    def meta_fit(self, tasks: Mapping[str, tuple[Sequence[str], np.ndarray]]) -> MetaAccuracyPredictor:
        """Meta-train on `tasks[name] = (arch_ids, accuracies)` (one proxy task is enough). Forgets any fit."""
        self._validate_params()
        for k in ("fitted_", "adapted_", "adapted_params_", "meta_tasks_"):
            self.__dict__.pop(k, None)
        if len(tasks) < 1:
            raise ValueError("meta_fit needs at least one task")
        data = []
        for name, (arch_ids, acc) in tasks.items():
            y = _check_acc(arch_ids, acc, f"meta_fit: task {name!r}")
            if len(y) < self.n_support + 1:
                raise ValueError(f"meta_fit: task {name!r} has {len(y)} pairs; an episode needs "
                                 f"n_support + 1 = {self.n_support + 1}")
            data.append((self.encode(list(arch_ids)), y))
        all_y = np.concatenate([y for _, y in data])
        self.norm_ = (float(all_y.mean()), float(max(all_y.std(), 1e-6)))
        engine = self._build(data[0][0].shape[1])
        opt = torch.optim.Adam(engine.parameters(), lr=self.outer_lr)
        rng = np.random.default_rng(self.seed)
        mean, std = self.norm_
        t0 = time.perf_counter()
        for it in range(self.meta_iters):
            opt.zero_grad()
            loss = torch.zeros(())
            for _ in range(self.meta_batch):
                x, y = data[int(rng.integers(len(data)))]
                order = rng.permutation(len(y))
                s, q = order[: self.n_support], order[self.n_support: self.n_support + self.n_query]
                z = torch.tensor((y - mean) / std, dtype=torch.float32)[:, None]
                xt = torch.from_numpy(x)
                loss = loss + engine.task_loss(xt[s], z[s], xt[q], z[q])
            (loss / self.meta_batch).backward()
            opt.step()
            if (it + 1) % 200 == 0 or it == self.meta_iters - 1:
                self._log(f"[maml-acc] iter {it + 1}/{self.meta_iters} loss {loss.item() / self.meta_batch:.4f} "
                          f"{time.perf_counter() - t0:.0f}s")
        self.engine_ = engine
        self.n_features_ = int(data[0][0].shape[1])
        self.meta_tasks_ = [str(name) for name in tasks]
        self.fitted_ = True
        return self

    def adapt(self, pairs: Sequence[tuple[str, float]] | Sequence[str], y: np.ndarray | None = None
              ) -> MetaAccuracyPredictor:
        """Adapt to the target task from `pairs` [(arch id, accuracy)], or `adapt(arch_ids, accuracies)`."""
        self.check_is_fitted()
        if y is None:
            pairs = list(pairs)
            if not all(isinstance(p, tuple | list) and len(p) == 2 for p in pairs):
                raise ValueError("adapt: pass [(arch id, accuracy), ...] or adapt(arch_ids, accuracies)")
            arch_ids, acc = [str(p[0]) for p in pairs], [p[1] for p in pairs]
        else:
            arch_ids, acc = list(pairs), y  # type: ignore[assignment]
        a = _check_acc(arch_ids, acc, "adapt")
        if len(a) < 2:
            raise ValueError(f"adapt: {len(a)} pair(s) to adapt on; need at least 2")
        mean, std = self.norm_
        params = self.engine_.adapt(torch.from_numpy(self.encode(arch_ids)),
                                    torch.tensor((a - mean) / std, dtype=torch.float32)[:, None],
                                    steps=self.adapt_steps, create_graph=False)
        self.adapted_params_ = {k: v.detach() for k, v in params.items()}
        self.n_target_samples_ = len(a)
        self.adapted_ = True
        return self

    def predict(self, arch_ids: Sequence[str]) -> np.ndarray:
        """Accuracies on the adapted target; before adapt, those of the meta-init (the proxy task)."""
        self.check_is_fitted()
        params = self.adapted_params_ if getattr(self, "adapted_", False) else self.engine_.params()
        with torch.no_grad():
            z = self.engine_.forward_with(params, torch.from_numpy(self.encode(list(arch_ids))))
        mean, std = self.norm_
        return z.numpy().astype(np.float64).ravel() * std + mean

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.check_is_fitted()
        arrays = engine_state(self.engine_)
        extra: dict[str, Any] = {"kind": self.kind, "n_features": self.n_features_, "norm": list(self.norm_),
                                 "target": {"transform": "identity", "mean": self.norm_[0], "std": self.norm_[1]},
                                 "adapted": bool(getattr(self, "adapted_", False)),
                                 "meta_tasks": list(getattr(self, "meta_tasks_", []))}
        if extra["adapted"]:
            arrays.update({f"a.{n}": p.numpy().copy() for n, p in self.adapted_params_.items()})
            extra["n_target_samples"] = self.n_target_samples_
        return arrays, extra

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], extra: dict[str, Any]
                   ) -> MetaAccuracyPredictor:
        self = cls(**params)
        engine = self._build(int(extra["n_features"]))
        load_engine_state(engine, arrays)
        self.engine_ = engine
        self.n_features_ = int(extra["n_features"])
        self.norm_ = (float(extra["norm"][0]), float(extra["norm"][1]))
        self.meta_tasks_ = [str(t) for t in extra.get("meta_tasks", [])]  # [] in files saved before it was kept
        self.fitted_ = True
        if extra.get("adapted"):
            self.adapted_params_ = {n: state_array(arrays, f"a.{n}", tuple(p.shape))
                                    for n, p in engine.params().items()}
            self.n_target_samples_ = int(extra.get("n_target_samples", 0))
            self.adapted_ = True
        return self


def _check_acc(arch_ids: Sequence[str], acc: Any, where: str) -> np.ndarray:
    y = np.asarray(acc, dtype=np.float64).reshape(-1)
    if len(arch_ids) != len(y):
        raise ValueError(f"{where}: got {len(arch_ids)} archs but {len(y)} accuracies")
    if len(y) == 0:
        raise ValueError(f"{where}: no pairs")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{where}: accuracies must be finite")
    return y
