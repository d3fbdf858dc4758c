"""Shared machinery of the torch predictors (MLP, GNN): training loop, batched inference, state, torch_model.

A subclass only says which network maps the space's flat one-hot [B, L*K] to the standardised target
(`_make_net`); everything else (target transform, seeded init and shuffling, Adam with cosine annealing
to 0 as in the thesis, persistence as plain arrays) is here once. Every net takes the one-hot, graph nets
included (they map it to node features inside), so the searches differentiate every predictor the same
way and a saved predictor needs nothing but the space to be rebuilt.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from predictors.base import Constraint, LatencyPredictor, check_targets
from predictors.common import (
    SPACE_CONSTRAINTS,
    TARGETS,
    SupervisedPredictor,
    TargetScaler,
    float_above,
    int_at_least,
    one_of,
)
from spaces import SearchSpace

# Rows per forward pass in predict(): large enough to amortise dispatch, small enough for any memory.
PREDICT_CHUNK = 16384
# Intra-op threads while training. Batches of 16-32 rows are too small to gain from threads (1 thread
# was as fast as 2 on the 2-core dev machine), and when that machine was shared, OpenMP threads waiting
# on each other made fits 10-30x slower. predict() keeps the caller's setting: big batches do gain.
TRAIN_THREADS = 1


class LatencyHead(nn.Module):
    """The net followed by the inverse target transform: one-hot [B, L*K] (float) -> latency [B] in ms."""

    def __init__(self, net: nn.Module, scaler: TargetScaler) -> None:
        super().__init__()
        self.net = net
        self.log = scaler.transform == "log"
        self.register_buffer("mean", torch.tensor(scaler.mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(scaler.std, dtype=torch.float32))

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        z = self.net(onehot) * self.std + self.mean
        return torch.exp(z) if self.log else z


def forget_fit(pred: LatencyPredictor) -> None:
    """Drop learned state (attributes ending in `_`), as fit() must before fitting again."""
    for key in [k for k in vars(pred) if k.endswith("_") and not k.startswith("_")]:
        delattr(pred, key)


def train_regressor(net: nn.Module, x: torch.Tensor, t: torch.Tensor, *, epochs: int, batch_size: int,
                    lr: float, weight_decay: float, seed: int,
                    on_epoch: Callable[[int, int, float], None] | None = None) -> list[float]:
    """MSE regression with Adam and per-step cosine annealing to 0; returns the mean loss of each epoch.

    Shuffling draws from a private generator seeded by `seed`, so a fit is reproducible and leaves
    torch's global RNG alone. Runs on TRAIN_THREADS intra-op threads, restoring the caller's setting.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(TRAIN_THREADS)
    try:
        return _train(net, x, t, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                      seed=seed, on_epoch=on_epoch)
    finally:
        torch.set_num_threads(threads)


def _train(net: nn.Module, x: torch.Tensor, t: torch.Tensor, *, epochs: int, batch_size: int, lr: float,
           weight_decay: float, seed: int, on_epoch: Callable[[int, int, float], None] | None = None
           ) -> list[float]:
    n = len(t)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch, eta_min=0.0)
    history = []
    net.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            loss = torch.nn.functional.mse_loss(net(x[idx]), t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        history.append(total / n)
        if on_epoch is not None:
            on_epoch(epoch + 1, epochs, history[-1])
    net.eval()
    return history


class TorchPredictor(SupervisedPredictor):
    """Base of the torch predictors: hyper-parameters of training, fit/predict/state around `_make_net`."""

    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **SPACE_CONSTRAINTS,
        "epochs": int_at_least(1),
        "batch_size": int_at_least(1),
        "lr": float_above(0.0),
        "weight_decay": float_above(0.0, inclusive=True),
        "target": one_of(*TARGETS),
    }

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0,
                 epochs: int = 100, batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 0.0,
                 target: str = "log") -> None:
        super().__init__(space=space, space_config=space_config, seed=seed)
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.target = target

    def _make_net(self, sp: SearchSpace) -> nn.Module:
        """The network: one-hot [B, L*K] float -> standardised target [B]."""
        raise NotImplementedError

    def _new_net(self, sp: SearchSpace) -> nn.Module:
        """`_make_net` under torch's RNG seeded by `seed`, restored afterwards (seeded, side-effect free)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return self._make_net(sp)

    def fit(self, arch_ids: Sequence[str], y_ms: np.ndarray,
            on_epoch: Callable[[int, int, float], None] | None = None) -> TorchPredictor:
        """Train from scratch; `on_epoch(done, epochs, mean loss)` after each epoch (progress bars)."""
        self._validate()
        forget_fit(self)
        y = check_targets(arch_ids, y_ms, allow_zero=self.target == "linear")  # accuracy: 0% is a figure
        x = torch.from_numpy(self.encode(arch_ids))
        scaler = TargetScaler.fit(self.target, y)
        t = torch.from_numpy(scaler.apply(y).astype(np.float32))
        net = self._new_net(self.space_obj())
        self.loss_history_ = train_regressor(net, x, t, epochs=self.epochs, batch_size=self.batch_size,
                                             lr=self.lr, weight_decay=self.weight_decay, seed=self.seed,
                                             on_epoch=on_epoch)
        self.net_, self.scaler_, self.n_train_ = net, scaler, len(y)
        self.fitted_ = True
        return self

    def predict(self, arch_ids: Sequence[str]) -> np.ndarray:
        self.check_is_fitted()
        if len(arch_ids) == 0:
            return np.empty(0, dtype=np.float64)
        return self.predict_onehot(self.encode(arch_ids))

    def predict_onehot(self, onehot: np.ndarray | torch.Tensor) -> np.ndarray:
        """ms for pre-encoded archs [N, L*K] (the searches' and the throughput benchmark's fast path)."""
        self.check_is_fitted()
        x = torch.as_tensor(onehot, dtype=torch.float32)
        with torch.no_grad():
            out = torch.cat([self.net_(x[i:i + PREDICT_CHUNK]) for i in range(0, len(x), PREDICT_CHUNK)])
        return self.scaler_.invert(out.numpy())

    def torch_model(self) -> LatencyHead:
        """A copy of the fitted net as a module: one-hot [B, L*K] (float, differentiable) -> ms [B].

        A copy, in eval mode: a search may freeze or move it without touching this predictor.
        """
        self.check_is_fitted()
        return LatencyHead(copy.deepcopy(self.net_), self.scaler_).eval()

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.check_is_fitted()
        arrays = {f"net.{k}": v.detach().cpu().numpy().copy() for k, v in self.net_.state_dict().items()}
        extra = {"target": self.scaler_.to_json(), "n_train": self.n_train_,
                 "final_loss": self.loss_history_[-1] if self.loss_history_ else None}
        return arrays, extra

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], extra: dict[str, Any]
                   ) -> TorchPredictor:
        pred = cls(**params)
        pred._validate()
        net = pred._new_net(pred.space_obj())
        weights = {k[len("net."):]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                   if k.startswith("net.")}
        try:
            net.load_state_dict(weights, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{cls.__name__}: saved weights do not fit the network built from the "
                             f"parameters: {e}") from None
        pred.net_ = net.eval()
        pred.scaler_ = TargetScaler.from_json(extra["target"])
        pred.n_train_ = int(extra.get("n_train", 0))
        final = extra.get("final_loss")
        pred.loss_history_ = [] if final is None else [float(final)]
        pred.fitted_ = True
        return pred
