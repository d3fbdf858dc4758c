"""HELP-style hardware-adaptive few-shot latency prediction (HELP, NeurIPS'21), kind "help".

A network f(arch one-hot, device embedding) is meta-trained across source devices with MAML / Meta-SGD
(predictors.maml) and adapted to a new device from K measurements plus its reference latencies
(predictors.hardware_adaptive). Ranking (Spearman) is what NAS needs, so each device's latencies are
standardised (log, then mean/std of its reference set): devices differing only in scale become the same
task, and the predictor learns shapes, not magnitudes. Persistence is numeric arrays plus JSON, never pickle.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from predictors.base import InvalidParameterError, check_targets
from predictors.fewshot import FewShotTask, is_hidden, is_nonneg_int, is_pos_float, is_pos_int, rank_score
from predictors.hardware_adaptive import HardwareAdaptivePredictor, Tasks
from predictors.maml import (
    MAML,
    AdditiveNet,
    Params,
    engine_state,
    load_engine_state,
    mlp,
    state_array,
    torch_threads,
)
from predictors.registry import register_predictor
from spaces.errors import UserInputError


@register_predictor("help")
class HelpPredictor(HardwareAdaptivePredictor):
    """Few-shot latency predictor for a new device from K samples plus its reference-arch latencies.

    Per device, latencies are mapped to z = (t(ms) - mean) / std with t = log (or identity, `target`) and
    the mean/std of t over the device's reference archs; the device embedding is z of the reference
    archs (their shape, scale removed). The network sees [one-hot, embedding]. Meta-training draws
    episodes: a source device, a support of `n_support` archs (plus the reference archs when
    `adapt_on_reference`, as at adaptation time, since they are measured anyway), a disjoint query of
    `n_query`; the inner loop adapts the weights (`adapt_params` name prefixes, default all) with
    `inner_steps` steps (`inner`: "sgd", learned per-parameter rates when `learn_inner_lr`, or
    "gauss-newton"), the outer loss is the query MSE. `device_mixup` is the share of episodes on a
    synthetic device: a random blend of two source devices' scale-free latencies, which widens the few
    source devices into a family the target is more likely to fall in. With `valid` tasks, meta_fit keeps
    the meta-iteration that scores best on them (the MLP overfits the 9 HELP source devices after a few
    hundred iterations).

    `model`: "mlp" (default; an MLP on [one-hot, embedding]) or "additive" (`AdditiveNet`: a per-layer
    op-cost table of rank `rank`, 0 = unfactorised, plus an MLP correction when `hidden` is non-empty).
    Defaults are the MLP member of the benchmarks' ensemble; the additive member there is
    `model="additive", hidden=(), rank=1, inner="gauss-newton", inner_steps=1, inner_lr=100,
    adapt_params=["V", "b"], target="raw"` (an exact, prior-regularised least-squares fit of op costs).
    """

    kind: ClassVar[str] = "help"
    _parameter_constraints: ClassVar = {
        "hidden": (is_hidden, "a list of positive ints"),
        "inner_steps": (is_nonneg_int, "an int >= 0"),
        "meta_iters": (is_nonneg_int, "an int >= 0"),
        "meta_batch": (is_pos_int, "an int >= 1"),
        "n_support": (is_pos_int, "an int >= 1"),
        "n_query": (is_pos_int, "an int >= 1"),
        "outer_lr": (is_pos_float, "a positive float"),
        "target": (lambda v: v in ("log", "raw"), "'log' or 'raw'"),
        "device_mixup": (lambda v: isinstance(v, int | float) and 0 <= v <= 1, "a float in [0, 1]"),
        "valid_every": (is_pos_int, "an int >= 1"),
        "adapt_params": (lambda v: v is None or (isinstance(v, list | tuple) and all(isinstance(p, str) for p in v)),
                         "None (all) or a list of parameter-name prefixes"),
        "inner_lr": (lambda v: is_pos_float(v) or (isinstance(v, Mapping) and all(
            isinstance(k, str) and is_pos_float(x) for k, x in v.items())), "a positive float or {prefix: float}"),
        "model": (lambda v: v in ("mlp", "additive"), "'mlp' or 'additive'"),
        "rank": (is_nonneg_int, "an int >= 0 (0: unfactorised)"),
        "inner": (lambda v: v in ("sgd", "gauss-newton"), "'sgd' or 'gauss-newton'"),
    }

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0,
                 reference: Sequence[str] | None = None, hidden: Sequence[int] = (128, 128),
                 inner_lr: float | dict[str, float] = 0.01, inner_steps: int = 5,
                 learn_inner_lr: bool = True, first_order: bool = False, meta_iters: int = 1000,
                 meta_batch: int = 4, n_support: int = 10,
                 n_query: int = 200, outer_lr: float = 1e-3, target: str = "log",
                 adapt_on_reference: bool = True, device_mixup: float = 0.5, model: str = "mlp", rank: int = 1,
                 inner: str = "sgd", adapt_params: Sequence[str] | None = None, valid_every: int = 100,
                 verbose: bool = False):
        super().__init__(space=space, space_config=space_config, seed=seed)
        self.reference = reference
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
        self.target = target
        self.adapt_on_reference = adapt_on_reference
        self.device_mixup = device_mixup
        self.model = model
        self.rank = rank
        self.inner = inner
        self.adapt_params = adapt_params
        self.valid_every = valid_every
        self.verbose = verbose

    # --- helpers -------------------------------------------------------------------------------------------

    def _t(self, y: np.ndarray) -> np.ndarray:
        return np.log(y) if self.target == "log" else np.asarray(y, dtype=np.float64)

    def _t_inv(self, t: np.ndarray) -> np.ndarray:
        return np.exp(t) if self.target == "log" else t

    def _norm_stats(self, ref_y: np.ndarray) -> tuple[float, float]:
        t = self._t(ref_y)
        return float(t.mean()), float(max(t.std(), 1e-6))

    def _build(self, n_in: int) -> MAML:
        with torch.random.fork_rng():  # seeded weights without touching the caller's RNG
            torch.manual_seed(self.seed)
            return self._build_engine(n_in)

    def _build_engine(self, n_in: int) -> MAML:
        n_ref = len(self.reference_ids())
        if self.model == "additive":
            sp = self.space_obj()
            if sp.n_layers * sp.n_ops != n_in:
                raise ValueError(f"model 'additive' needs the {sp.n_layers}x{sp.n_ops} one-hot, got {n_in} features")

            def model_fn() -> nn.Module:
                return AdditiveNet(sp.n_layers, sp.n_ops, n_ref, list(self.hidden), rank=self.rank)
        else:
            def model_fn() -> nn.Module:
                return mlp(n_in + n_ref, list(self.hidden))
        prefixes = self.adapt_params
        names = None if prefixes is None else [n for n, _ in model_fn().named_parameters()
                                                if any(n.startswith(p) for p in prefixes)]
        if names == []:
            raise InvalidParameterError(f"adapt_params {prefixes!r} matches no parameter of the model")
        return MAML(model_fn, inner_lr=self.inner_lr, inner_steps=self.inner_steps,
                    learn_inner_lr=self.learn_inner_lr, first_order=self.first_order, adapt_names=names,
                    inner=self.inner)

    def _inputs(self, feats: np.ndarray, emb: np.ndarray) -> torch.Tensor:
        e = np.broadcast_to(emb.astype(np.float32), (len(feats), len(emb)))
        return torch.from_numpy(np.concatenate([feats.astype(np.float32), e], axis=1))

    def _split_reference(self, arch_ids: Sequence[str], y: np.ndarray, where: str
                         ) -> tuple[np.ndarray, list[int]]:
        """(reference latencies in reference order, indices of the non-reference rows)."""
        refs = self.reference_ids()
        pos = {a: i for i, a in enumerate(arch_ids)}
        missing = [a for a in refs if a not in pos]
        if missing:
            raise UserInputError(f"{where}: latencies of {len(missing)} of the {len(refs)} reference archs are "
                             f"missing (first: {missing[0]!r}); a device is described by all of them")
        ref_set = set(refs)
        return np.array([y[pos[a]] for a in refs]), [i for i, a in enumerate(arch_ids) if a not in ref_set]

    # --- meta-training -----------------------------------------------------------------------------------------

    @torch_threads(1)  # many tiny products: threads cost more than they save
    def meta_fit(self, tasks: Tasks, valid: Mapping[str, FewShotTask] | None = None,
                 on_iter: Callable[[int, int], None] | None = None) -> HelpPredictor:
        """Meta-train across source devices: `tasks[device] = (arch_ids, y_ms)`, reference archs included.

        `valid` (held-out devices) only selects the meta-iteration to keep (best mean Spearman on their
        queries); without it the last iterate is kept. `on_iter(done, total)` after each meta-iteration
        (progress bars). Forgets any earlier fit.
        """
        self._validate_params()
        for k in ("fitted_", "adapted_", "adapted_params_"):
            self.__dict__.pop(k, None)
        if len(tasks) < 1:
            raise UserInputError("meta_fit needs at least one source device")
        refs = self.reference_ids()
        ids_all: dict[str, int] = {}
        devices = []
        for name, (arch_ids, y_ms) in tasks.items():
            y = check_targets(arch_ids, y_ms)
            ref_y, rest = self._split_reference(arch_ids, y, f"meta_fit: device {name!r}")
            if len(rest) < self.n_support + 1:
                raise UserInputError(f"meta_fit: device {name!r} has {len(rest)} non-reference archs; an episode "
                                 f"needs n_support + 1 = {self.n_support + 1}")
            for a in arch_ids:
                ids_all.setdefault(a, len(ids_all))
            devices.append((name, np.array([ids_all[arch_ids[i]] for i in rest], dtype=np.int64), y[rest], ref_y))
        feats = self.encode(list(ids_all))
        ref_feats = self.encode(refs)
        self.n_features_ = int(feats.shape[1])
        rng = np.random.default_rng(self.seed)
        engine = self._build(feats.shape[1])
        opt = torch.optim.Adam(engine.parameters(), lr=self.outer_lr)
        valid_tasks = {name: (t, self.encode(list(t.query_ids))) for name, t in (valid or {}).items()}
        best = (-math.inf, None, -1)
        t0 = time.perf_counter()
        # raw-scale latencies by arch index (NaN: not measured), for device mixup on the archs two devices share
        tables = np.full((len(devices), len(ids_all)), np.nan)
        for k, (_, rows, y, _) in enumerate(devices):
            tables[k, rows] = y
        for it in range(self.meta_iters):
            opt.zero_grad()
            loss_sum = torch.zeros(())
            for _ in range(self.meta_batch):
                rows, y, ref_y = self._draw_device(devices, tables, rng)
                x_s, y_s, x_q, y_q = self._episode(feats, ref_feats, rows, y, ref_y, rng)
                loss_sum = loss_sum + engine.task_loss(x_s, y_s, x_q, y_q)
            loss = loss_sum / self.meta_batch
            loss.backward()
            opt.step()
            if on_iter is not None:
                on_iter(it + 1, self.meta_iters)
            last = it == self.meta_iters - 1
            if valid_tasks and ((it + 1) % self.valid_every == 0 or last):
                score = float(np.mean([self._score(engine, t, xq) for t, xq in valid_tasks.values()]))
                if score > best[0]:
                    best = (score, copy.deepcopy(engine.state_dict()), it + 1)
                self._log(f"[help] iter {it + 1}/{self.meta_iters} loss {loss.item():.4f} "
                          f"valid rho {score:.4f} (best {best[0]:.4f} @ {best[2]}) {time.perf_counter() - t0:.0f}s")
            elif (it + 1) % self.valid_every == 0 or last:
                self._log(f"[help] iter {it + 1}/{self.meta_iters} loss {loss.item():.4f} "
                          f"{time.perf_counter() - t0:.0f}s")
        if best[1] is not None:
            engine.load_state_dict(best[1])
        self.engine_ = engine
        self.meta_iter_ = int(best[2]) if best[1] is not None else self.meta_iters
        self.valid_score_ = float(best[0]) if best[1] is not None else None
        self.source_devices_ = [name for name, *_ in devices]
        self.fitted_ = True
        return self

    def _draw_device(self, devices: list, tables: np.ndarray, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, y, reference y) of a source device, or of a blend of two (device mixup)."""
        i = int(rng.integers(len(devices)))
        _, rows, y, ref_y = devices[i]
        if len(devices) < 2 or rng.random() >= self.device_mixup:
            return rows, y, ref_y
        j = int(rng.choice([k for k in range(len(devices)) if k != i]))
        ref_j = devices[j][3]
        common = rows[~np.isnan(tables[j, rows])]
        if len(common) < self.n_support + 1:
            return rows, y, ref_y
        lam = float(rng.uniform(0.0, 1.0))
        si, sj = float(np.mean(ref_y)), float(np.mean(ref_j))  # scale-free blend in ms
        mix_y = lam * tables[i, common] / si + (1 - lam) * tables[j, common] / sj
        mix_ref = lam * ref_y / si + (1 - lam) * ref_j / sj
        return common, mix_y, mix_ref

    def _episode(self, feats: np.ndarray, ref_feats: np.ndarray, rows: np.ndarray, y: np.ndarray,
                 ref_y: np.ndarray, rng: np.random.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, std = self._norm_stats(ref_y)
        emb = (self._t(ref_y) - mean) / std
        order = rng.permutation(len(rows))
        s, q = order[: self.n_support], order[self.n_support: self.n_support + self.n_query]
        xs, ys = feats[rows[s]], (self._t(y[s]) - mean) / std
        if self.adapt_on_reference:
            xs, ys = np.concatenate([xs, ref_feats]), np.concatenate([ys, emb])
        z_q = (self._t(y[q]) - mean) / std
        return (self._inputs(xs, emb), torch.tensor(ys, dtype=torch.float32)[:, None],
                self._inputs(feats[rows[q]], emb), torch.tensor(z_q, dtype=torch.float32)[:, None])

    def _score(self, engine: MAML, task: FewShotTask, query_feats: np.ndarray) -> float:
        """Spearman on a held-out task's query after adapting `engine`'s parameters to its support."""
        params, emb, _ = self._adapt_params(engine, task.support_ids, task.support_y, task.reference)
        with torch.no_grad():
            pred = engine.forward_with(params, self._inputs(query_feats, emb))
        return rank_score(pred.numpy().ravel(), np.asarray(task.query_y))

    # --- adaptation -----------------------------------------------------------------------------------------

    def _adapt_params(self, engine: MAML, arch_ids: Sequence[str], y_ms: np.ndarray,
                      reference: Mapping[str, float] | None) -> tuple[Params, np.ndarray, tuple[float, float]]:
        arch_ids = list(arch_ids)
        y = check_targets(arch_ids, y_ms)
        refs = self.reference_ids()
        reference = dict(reference or {})
        # reference archs given among the samples count as reference measurements too
        for a, v in zip(arch_ids, y, strict=True):
            reference.setdefault(a, float(v))
        missing = [a for a in refs if a not in reference]
        if missing:
            raise UserInputError(f"adapt: latencies of {len(missing)} of the {len(refs)} reference archs are missing "
                             f"(first: {missing[0]!r}); measure them on the target device")
        ref_y = check_targets(refs, np.array([reference[a] for a in refs]))
        ref_set = set(refs)
        keep = [i for i, a in enumerate(arch_ids) if a not in ref_set]
        n_total = len(keep) + (len(refs) if self.adapt_on_reference else 0)
        if n_total < 2:
            raise UserInputError(f"adapt: {n_total} sample(s) to adapt on; need at least 2")
        mean, std = self._norm_stats(ref_y)
        emb = (self._t(ref_y) - mean) / std
        xs = self.encode([arch_ids[i] for i in keep]) if keep else np.zeros((0, self.n_features_), np.float32)
        ys = (self._t(y[keep]) - mean) / std
        if self.adapt_on_reference:
            xs, ys = np.concatenate([xs, self.encode(refs)]), np.concatenate([ys, emb])
        params = engine.adapt(self._inputs(xs, emb), torch.tensor(ys, dtype=torch.float32)[:, None],
                              create_graph=False)
        return {k: v.detach() for k, v in params.items()}, emb, (mean, std)

    def adapt(self, arch_ids: Sequence[str], y_ms: np.ndarray,
              reference: Mapping[str, float] | None = None) -> HelpPredictor:
        """Adapt to a target device from its samples (ms) and `reference` = {reference arch id: ms}.

        Reference archs may also appear among the samples. Raises ValueError when a reference latency is
        missing or fewer than 2 samples remain. Replaces any earlier adaptation; the meta-init is kept.
        """
        self.check_is_fitted()
        params, emb, (mean, std) = self._adapt_params(self.engine_, arch_ids, y_ms, reference)
        self.adapted_params_ = params
        self.embedding_ = emb
        self.norm_ = (mean, std)
        self.floor_ = 0.01 * float(np.min(self._t_inv(emb * std + mean)))
        self.n_target_samples_ = len(arch_ids)
        self.adapted_ = True
        return self

    def predict(self, arch_ids: Sequence[str]) -> np.ndarray:
        """Latencies (ms) on the adapted device; their ranking is what the predictor is trained for."""
        self.check_is_adapted()
        x = self._inputs(self.encode(list(arch_ids)), self.embedding_)
        with torch.no_grad():
            z = self.engine_.forward_with(self.adapted_params_, x)
        mean, std = self.norm_
        ms = self._t_inv(z.numpy().astype(np.float64).ravel() * std + mean)
        # 'raw' can extrapolate below zero; keep latencies positive (ties only among such outliers)
        return np.maximum(ms, self.floor_)

    # --- persistence ---------------------------------------------------------------------------------------

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.check_is_fitted()
        arrays = engine_state(self.engine_)
        extra: dict[str, Any] = {"kind": self.kind, "n_features": self.n_features_,
                                 "target": {"transform": self.target, "standardised_by": "reference archs"},
                                 "reference": self.reference_ids(), "meta_iter": self.meta_iter_,
                                 "valid_score": self.valid_score_, "source_devices": self.source_devices_,
                                 "adapted": bool(getattr(self, "adapted_", False))}
        if extra["adapted"]:
            arrays.update({f"a.{n}": p.numpy().copy() for n, p in self.adapted_params_.items()})
            arrays["embedding"] = np.asarray(self.embedding_, dtype=np.float64)
            extra["norm"] = list(self.norm_)
            extra["floor"] = self.floor_
            extra["n_target_samples"] = self.n_target_samples_
        return arrays, extra

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], extra: dict[str, Any]
                   ) -> HelpPredictor:
        self = cls(**params)
        engine = self._build(int(extra["n_features"]))
        load_engine_state(engine, arrays)
        self.engine_ = engine
        self.n_features_ = int(extra["n_features"])
        self.meta_iter_ = extra.get("meta_iter")
        self.valid_score_ = extra.get("valid_score")
        self.source_devices_ = list(extra.get("source_devices", []))
        self.fitted_ = True
        if extra.get("adapted"):
            self.adapted_params_ = {n: state_array(arrays, f"a.{n}", tuple(p.shape))
                                    for n, p in engine.params().items()}
            self.embedding_ = np.asarray(arrays["embedding"], dtype=np.float64)
            self.norm_ = (float(extra["norm"][0]), float(extra["norm"][1]))
            self.floor_ = float(extra["floor"])
            self.n_target_samples_ = int(extra.get("n_target_samples", 0))
            self.adapted_ = True
        return self

