"""Meta-learned predictors: one MAML engine, used for few-shot latency and for few-shot accuracy.

Kinds (registered on import of this module, so `predictors.io` can save and load them):
- "help" `HelpPredictor`: hardware-adaptive few-shot latency prediction in the style of HELP
  (NeurIPS'21). A device is described by its latencies on a fixed set of reference archs; a network
  f(arch one-hot, device embedding) is meta-trained across source devices and adapted to a new device from
  K measurements plus the reference latencies. Ranking (Spearman) is what NAS needs, so each device's
  latencies are standardised (log, then mean/std of its reference set): devices differing only in scale
  become the same task, and the predictor learns shapes, not magnitudes.
- "help-ensemble" `HelpEnsemble`: several HelpPredictors with different inductive biases (MLP, additive
  op-cost table) blended with weights chosen on meta-valid devices; what the HELP benchmarks run.
- "maml-acc" `MetaAccuracyPredictor`: Domino's meta-accuracy predictor (thesis ch.5, §3.5): a 128-64-1
  MLP meta-trained with MAML (one inner step) on (arch, accuracy) pairs from proxy tasks and adapted
  with a few pairs from the target task. Unlike the thesis' per-pair formulation, episodes use disjoint
  support and query mini-batches (the standard MAML reading, which the spec asks to record).

`MAML` is the shared engine: it holds a model built by `model_fn`, adapts its parameters functionally
(`torch.func.functional_call`) so the outer loss differentiates through the inner loop, and can learn
per-parameter inner rates (Meta-SGD) or take damped Gauss-Newton inner steps. Few-shot predictors are
"fitted" (`check_is_fitted`, what saving needs) once meta-trained; `predict` also needs `adapt`
(`check_is_adapted`), except for the accuracy predictor, which answers with its meta-init before.
Persistence (`state()` / `from_state()`) is numeric arrays plus JSON, never pickle.
"""

from __future__ import annotations

import copy
import itertools
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from predictors.base import (
    InvalidParameterError,
    LatencyPredictor,
    NotFittedError,
    check_targets,
)
from predictors.common import onehot_spec
from predictors.metrics import spearman
from predictors.registry import register_predictor

Params = dict[str, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# HELP's reference archs for NB201 (`hardware_embedding_index.pt`, NAS-Bench-201 indices).
HELP_NB201_REFERENCE = (11982, 431, 55, 9, 14451, 8636, 9881, 13479, 6196, 1462)
# HELP's reference archs for FBNet: rows of HELP's `data/fbnet/arch.pt`.
HELP_FBNET_REFERENCE_ROWS = (3328, 3790, 3313, 890, 3052, 2538, 1640, 2514, 457, 2100)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((pred - target) ** 2)


# --- the engine --------------------------------------------------------------------------------------------


class MAML(nn.Module):
    """MAML over the parameters of `model_fn()`, optionally with learned per-parameter inner rates.

    The inner loop runs on a dict of tensors instead of the module, so the adapted parameters stay
    functions of the meta-parameters and the outer loss differentiates through them (second order
    unless `first_order`). `adapt_names` restricts which parameters the inner loop changes (None = all);
    `learn_inner_lr` makes each adapted parameter's step size a learned tensor of its shape (Meta-SGD).

    `inner="gauss-newton"` replaces the gradient steps by damped Gauss-Newton steps on the squared error
    with a Gaussian prior centred on the meta-init: theta = theta0 + S J^T (J S J^T + I)^-1 r, J the
    Jacobian of the outputs over the adapted parameters, S = diag(|rate|) the per-parameter rates, now
    prior variances (for small S, one step from theta0 is a Meta-SGD step with rates N S / 2). Why: a few gradient
    steps stop far from the fit the support allows, so more samples barely help; the Gauss-Newton step
    solves the linearised problem exactly (for a model linear in the adapted parameters, in one step),
    in the N x N dual form, cheap for few-shot N whatever the number of parameters. It ignores `loss_fn`.
    """

    def __init__(self, model_fn: Callable[[], nn.Module], inner_lr: float | Mapping[str, float] = 0.01,
                 inner_steps: int = 1, learn_inner_lr: bool = False, first_order: bool = False,
                 adapt_names: Iterable[str] | None = None, loss_fn: LossFn = mse, inner: str = "sgd") -> None:
        super().__init__()
        if inner_steps < 0:
            raise ValueError(f"inner_steps must be >= 0, got {inner_steps}")
        if inner not in ("sgd", "gauss-newton"):
            raise ValueError(f"inner must be 'sgd' or 'gauss-newton', got {inner!r}")
        self.inner = inner
        self.model = model_fn()
        self.inner_steps = int(inner_steps)
        self.first_order = bool(first_order)
        self.loss_fn = loss_fn
        names = [n for n, _ in self.model.named_parameters()]
        wanted = names if adapt_names is None else list(adapt_names)
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ValueError(f"adapt_names: no such parameter(s) {unknown}; known: {names}")
        self.adapt_names: list[str] = [n for n in names if n in set(wanted)]
        self.learn_inner_lr = bool(learn_inner_lr)
        self.inner_lr = inner_lr
        # ParameterDict keys may not contain '.', hence the escaping.
        self.lrs = nn.ParameterDict({
            _key(n): nn.Parameter(torch.full_like(p.detach(), rate_for(inner_lr, n)),
                                  requires_grad=self.learn_inner_lr)
            for n, p in self.model.named_parameters() if n in set(self.adapt_names)
        })

    def params(self) -> Params:
        """The meta-parameters (the initialisation the inner loop starts from)."""
        return dict(self.model.named_parameters())

    def forward_with(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, params, (x,))

    def adapt(self, x: torch.Tensor, y: torch.Tensor, steps: int | None = None, params: Params | None = None,
              create_graph: bool = True) -> Params:
        """Parameters after `steps` inner steps on (x, y), from `params` (default: the meta-init).

        `create_graph` keeps the steps differentiable in the meta-parameters (meta-training); adaptation
        at test time passes False."""
        params = dict(self.params() if params is None else params)
        steps = self.inner_steps if steps is None else steps
        second = create_graph and not self.first_order
        if self.inner == "gauss-newton":
            return self._gauss_newton(params, x, y, steps, second)
        for _ in range(steps):
            with torch.enable_grad():
                loss = self.loss_fn(self.forward_with(params, x), y)
                grads = torch.autograd.grad(loss, [params[n] for n in self.adapt_names], create_graph=second,
                                            allow_unused=True)
            for n, g in zip(self.adapt_names, grads, strict=True):
                if g is not None:
                    params[n] = params[n] - self.lrs[_key(n)] * g
        return params

    def _gauss_newton(self, params: Params, x: torch.Tensor, y: torch.Tensor, steps: int, second: bool
                      ) -> Params:
        names = self.adapt_names
        theta0 = {n: params[n] for n in names}
        s = torch.cat([self.lrs[_key(n)].abs().reshape(-1) for n in names]).double()
        fixed = {n: p for n, p in params.items() if n not in theta0}
        if not second:
            theta0 = {n: p.detach() for n, p in theta0.items()}
            s = s.detach()

        def outputs(theta: Params) -> torch.Tensor:
            return functional_call(self.model, {**fixed, **theta}, (x,)).reshape(-1)

        theta = dict(theta0)
        eye = torch.eye(len(x), dtype=torch.float64)
        for _ in range(steps):
            with torch.enable_grad():
                jac = torch.func.jacrev(outputs)(theta)
                f = outputs(theta)
            # float64 for the solve: J S J^T can be ill-conditioned (one-hot rows sum to a constant, so
            # parameters are redundant, and the prior variances span orders of magnitude)
            jm = torch.cat([jac[n].reshape(len(x), -1) for n in names], dim=1).double()  # [N, P]
            delta = torch.cat([(theta[n] - theta0[n]).reshape(-1) for n in names]).double()
            r = y.reshape(-1).double() - f.double() + jm @ delta  # residual linearised at theta, from theta0
            alpha = torch.linalg.solve((jm * s) @ jm.T + eye, r)
            step = (s * (jm.T @ alpha)).to(x.dtype)
            theta, i = {}, 0
            for n in names:
                k = theta0[n].numel()
                theta[n] = theta0[n] + step[i: i + k].reshape(theta0[n].shape)
                i += k
        return {**params, **theta}

    def task_loss(self, x_s: torch.Tensor, y_s: torch.Tensor, x_q: torch.Tensor, y_q: torch.Tensor,
                  query_loss: LossFn | None = None) -> torch.Tensor:
        """Outer loss of one episode: adapt on the support, score on the query."""
        adapted = self.adapt(x_s, y_s, create_graph=True)
        return (query_loss or self.loss_fn)(self.forward_with(adapted, x_q), y_q)


def rate_for(inner_lr: float | Mapping[str, float], name: str) -> float:
    """The initial inner rate of parameter `name`: a float, or the value of the longest matching name
    prefix in a mapping ("" matches all), so parts of a model can start with different rates."""
    if not isinstance(inner_lr, Mapping):
        return float(inner_lr)
    best = max((k for k in inner_lr if name.startswith(k)), key=len, default=None)
    if best is None:
        raise ValueError(f"inner_lr has no entry for parameter {name!r} (add a '' default)")
    return float(inner_lr[best])


def _key(name: str) -> str:
    return name.replace(".", "__")


def mlp(n_in: int, hidden: Sequence[int], n_out: int = 1) -> nn.Sequential:
    """ReLU MLP; the last layer is linear."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class AdditiveNet(nn.Module):
    """Sum of per-layer op costs plus an MLP correction, for layer-wise one-hot inputs [B, L*K + E].

    Latency is mostly a sum over layers (what layer-wise predictors assume), and a device mostly changes
    what each op costs, not where it sits. So the additive part is rank-`rank` factorised,
    cost(l, op) = sum_r U[l, r] V[op, r] + b: U (how much a layer weighs) is shared across devices,
    V (what an op costs) = V0 + a linear map of the device embedding, and adaptation mostly moves V and b,
    in which the output is linear (so one Gauss-Newton inner step solves for them exactly). The MLP on
    [one-hot, embedding] carries what is not additive and what the embedding says about the device.
    """

    def __init__(self, n_layers: int, n_ops: int, n_emb: int, hidden: Sequence[int], rank: int = 1) -> None:
        super().__init__()
        self.n_layers, self.n_ops, self.rank = n_layers, n_ops, rank
        if rank == 0:  # unfactorised: a full per-layer cost table, T = V + hyper(embedding)
            self.V = nn.Parameter(torch.zeros(n_layers, n_ops))
            self.hyper = nn.Linear(n_emb, n_layers * n_ops)
        else:
            u = torch.ones(n_layers, rank)
            u[:, 1:] += 0.1 * torch.randn(n_layers, rank - 1)
            self.U = nn.Parameter(u)
            self.V = nn.Parameter(torch.zeros(n_ops, rank))
            self.hyper = nn.Linear(n_emb, n_ops * rank)
        self.b = nn.Parameter(torch.zeros(1))
        self.mlp = mlp(n_layers * n_ops + n_emb, hidden) if hidden else None

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        n = self.n_layers * self.n_ops
        x, emb = inp[:, :n], inp[:, n:]
        if self.rank == 0:
            table = self.V.reshape(1, -1) + self.hyper(emb)
            out = (x * table).sum(dim=1, keepdim=True) + self.b
        else:
            onehot = x.reshape(-1, self.n_layers, self.n_ops)
            v = self.V + self.hyper(emb).reshape(-1, self.n_ops, self.rank)
            cost = torch.einsum("blk,bkr->blr", onehot, v)
            out = (cost * self.U).sum(dim=(1, 2))[:, None] + self.b
        return out if self.mlp is None else out + self.mlp(inp)


def engine_state(engine: MAML, prefix: str = "") -> dict[str, np.ndarray]:
    """Meta-parameters and inner rates as named float32 arrays."""
    out = {f"{prefix}p.{n}": p.detach().cpu().numpy().copy() for n, p in engine.params().items()}
    out.update({f"{prefix}lr.{k}": v.detach().cpu().numpy().copy() for k, v in engine.lrs.items()})
    return out


def load_engine_state(engine: MAML, arrays: Mapping[str, np.ndarray], prefix: str = "") -> None:
    """Inverse of `engine_state`; ValueError naming the first missing or misshapen array."""
    with torch.no_grad():
        for n, p in engine.params().items():
            p.copy_(_array(arrays, f"{prefix}p.{n}", tuple(p.shape)))
        for k, v in engine.lrs.items():
            v.copy_(_array(arrays, f"{prefix}lr.{k}", tuple(v.shape)))


def _array(arrays: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...]) -> torch.Tensor:
    if name not in arrays:
        raise ValueError(f"state has no array {name!r}")
    a = np.asarray(arrays[name], dtype=np.float32)
    if a.shape != shape:
        raise ValueError(f"state array {name!r} has shape {a.shape}, expected {shape}")
    return torch.from_numpy(a.copy())


# --- the few-shot predictor base ------------------------------------------------------------------------------


class FewShotTask(NamedTuple):
    """A held-out task for model selection: adapt on the support, score Spearman on the query."""

    support_ids: Sequence[str]
    support_y: np.ndarray
    query_ids: Sequence[str]
    query_y: np.ndarray
    reference: Mapping[str, float] | None = None


class FewShotPredictor(LatencyPredictor):
    """`meta_fit(tasks)` once across source tasks, then `adapt(...)` per target, then `predict`.

    `fit` is not offered: a few-shot predictor needs source tasks first, and folding both steps into one
    call would hide which data the target contributed (published figures depend on it).
    """

    kind: ClassVar[str] = "few-shot"

    def fit(self, arch_ids: Sequence[str], y_ms: np.ndarray) -> FewShotPredictor:
        raise NotImplementedError(f"{type(self).__name__} is few-shot: call meta_fit(tasks) on source tasks, "
                                  f"then adapt(...) with the target's samples")

    def check_is_fitted(self) -> None:
        """Meta-trained (what `io.save_predictor` needs: a meta-trained predictor is worth storing)."""
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"This {type(self).__name__} is not meta-trained yet; call meta_fit() first.")

    def check_is_adapted(self) -> None:
        self.check_is_fitted()
        if not getattr(self, "adapted_", False):
            raise NotFittedError(f"This {type(self).__name__} is not adapted to a target yet; call adapt() first.")

    def _log(self, msg: str) -> None:
        if getattr(self, "verbose", False):
            print(msg, file=sys.stderr, flush=True)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    r = spearman(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return 0.0 if math.isnan(r) else r


def _is_pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _is_nonneg_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_pos_float(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _is_hidden(v: Any) -> bool:
    return isinstance(v, list | tuple) and all(_is_pos_int(w) for w in v)


# --- (a) HELP-style hardware-adaptive latency predictor ------------------------------------------------------


@register_predictor("help")
class HelpPredictor(FewShotPredictor):
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
        "hidden": (_is_hidden, "a list of positive ints"),
        "inner_steps": (_is_nonneg_int, "an int >= 0"),
        "meta_iters": (_is_nonneg_int, "an int >= 0"),
        "meta_batch": (_is_pos_int, "an int >= 1"),
        "n_support": (_is_pos_int, "an int >= 1"),
        "n_query": (_is_pos_int, "an int >= 1"),
        "outer_lr": (_is_pos_float, "a positive float"),
        "target": (lambda v: v in ("log", "raw"), "'log' or 'raw'"),
        "device_mixup": (lambda v: isinstance(v, int | float) and 0 <= v <= 1, "a float in [0, 1]"),
        "valid_every": (_is_pos_int, "an int >= 1"),
        "adapt_params": (lambda v: v is None or (isinstance(v, list | tuple) and all(isinstance(p, str) for p in v)),
                         "None (all) or a list of parameter-name prefixes"),
        "inner_lr": (lambda v: _is_pos_float(v) or (isinstance(v, Mapping) and all(
            isinstance(k, str) and _is_pos_float(x) for k, x in v.items())), "a positive float or {prefix: float}"),
        "model": (lambda v: v in ("mlp", "additive"), "'mlp' or 'additive'"),
        "rank": (_is_nonneg_int, "an int >= 0 (0: unfactorised)"),
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

    def reference_ids(self) -> list[str]:
        """The reference arch ids: the `reference` parameter, else HELP's NB201 set for space 'nb201'."""
        if self.reference is not None:
            ids = [str(a) for a in self.reference]
        elif self.space == "nb201":
            sp = self.space_obj()
            ids = [sp.arch_id(sp.from_index(i)) for i in HELP_NB201_REFERENCE]
        else:
            raise InvalidParameterError(f"{type(self).__name__}: space {self.space!r} has no default reference "
                                        f"set; pass reference=[arch ids] (HELP's FBNet set: "
                                        f"help_fbnet_reference())")
        if len(ids) < 2 or len(set(ids)) != len(ids):
            raise InvalidParameterError(f"reference must name >= 2 distinct archs, got {len(ids)}")
        return ids

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
            raise ValueError(f"{where}: latencies of {len(missing)} of the {len(refs)} reference archs are "
                             f"missing (first: {missing[0]!r}); a device is described by all of them")
        ref_set = set(refs)
        return np.array([y[pos[a]] for a in refs]), [i for i, a in enumerate(arch_ids) if a not in ref_set]

    # --- meta-training -----------------------------------------------------------------------------------------

    def meta_fit(self, tasks: Mapping[str, tuple[Sequence[str], np.ndarray]],
                 valid: Mapping[str, FewShotTask] | None = None,
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
            raise ValueError("meta_fit needs at least one source device")
        refs = self.reference_ids()
        ids_all: dict[str, int] = {}
        devices = []
        for name, (arch_ids, y_ms) in tasks.items():
            y = check_targets(arch_ids, y_ms)
            ref_y, rest = self._split_reference(arch_ids, y, f"meta_fit: device {name!r}")
            if len(rest) < self.n_support + 1:
                raise ValueError(f"meta_fit: device {name!r} has {len(rest)} non-reference archs; an episode "
                                 f"needs n_support + 1 = {self.n_support + 1}")
            for a in arch_ids:
                ids_all.setdefault(a, len(ids_all))
            devices.append((name, [ids_all[arch_ids[i]] for i in rest], y[rest], ref_y))
        feats = self.encode(list(ids_all))
        ref_feats = self.encode(refs)
        self.n_features_ = int(feats.shape[1])
        rng = np.random.default_rng(self.seed)
        engine = self._build(feats.shape[1])
        opt = torch.optim.Adam(engine.parameters(), lr=self.outer_lr)
        valid_tasks = {name: (t, self.encode(list(t.query_ids))) for name, t in (valid or {}).items()}
        best = (-math.inf, None, -1)
        t0 = time.perf_counter()
        # raw-scale tables by arch index, for device mixup on the archs two devices share
        tables = [dict(zip(rows, y, strict=True)) for _, rows, y, _ in devices]
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

    def _draw_device(self, devices: list, tables: list[dict[int, float]], rng: np.random.Generator
                     ) -> tuple[list[int], np.ndarray, np.ndarray]:
        """(rows, y, reference y) of a source device, or of a blend of two (device mixup)."""
        i = int(rng.integers(len(devices)))
        _, rows, y, ref_y = devices[i]
        if len(devices) < 2 or rng.random() >= self.device_mixup:
            return rows, y, ref_y
        j = int(rng.choice([k for k in range(len(devices)) if k != i]))
        ref_j = devices[j][3]
        common = [r for r in rows if r in tables[j]]
        if len(common) < self.n_support + 1:
            return rows, y, ref_y
        lam = float(rng.uniform(0.0, 1.0))
        si, sj = float(np.mean(ref_y)), float(np.mean(ref_j))  # scale-free blend in ms
        mix_y = np.array([lam * tables[i][r] / si + (1 - lam) * tables[j][r] / sj for r in common])
        mix_ref = lam * ref_y / si + (1 - lam) * ref_j / sj
        return common, mix_y, mix_ref

    def _episode(self, feats: np.ndarray, ref_feats: np.ndarray, rows: list[int], y: np.ndarray,
                 ref_y: np.ndarray, rng: np.random.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, std = self._norm_stats(ref_y)
        z = (self._t(y) - mean) / std
        emb = (self._t(ref_y) - mean) / std
        order = rng.permutation(len(rows))
        s, q = order[: self.n_support], order[self.n_support: self.n_support + self.n_query]
        rows_a = np.asarray(rows)
        xs, ys = feats[rows_a[s]], z[s]
        if self.adapt_on_reference:
            xs, ys = np.concatenate([xs, ref_feats]), np.concatenate([ys, emb])
        return (self._inputs(xs, emb), torch.tensor(ys, dtype=torch.float32)[:, None],
                self._inputs(feats[rows_a[q]], emb), torch.tensor(z[q], dtype=torch.float32)[:, None])

    def _score(self, engine: MAML, task: FewShotTask, query_feats: np.ndarray) -> float:
        """Spearman on a held-out task's query after adapting `engine`'s parameters to its support."""
        params, emb, _ = self._adapt_params(engine, task.support_ids, task.support_y, task.reference)
        with torch.no_grad():
            pred = engine.forward_with(params, self._inputs(query_feats, emb))
        return _spearman(pred.numpy().ravel(), np.asarray(task.query_y))

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
            raise ValueError(f"adapt: latencies of {len(missing)} of the {len(refs)} reference archs are missing "
                             f"(first: {missing[0]!r}); measure them on the target device")
        ref_y = check_targets(refs, np.array([reference[a] for a in refs]))
        ref_set = set(refs)
        keep = [i for i, a in enumerate(arch_ids) if a not in ref_set]
        n_total = len(keep) + (len(refs) if self.adapt_on_reference else 0)
        if n_total < 2:
            raise ValueError(f"adapt: {n_total} sample(s) to adapt on; need at least 2")
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

    def feature_spec(self) -> dict[str, Any]:
        """The card's `features`: the space's one-hot plus the device embedding (reference archs)."""
        return _help_feature_spec(self)

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
            self.adapted_params_ = {n: _array(arrays, f"a.{n}", tuple(p.shape)) for n, p in engine.params().items()}
            self.embedding_ = np.asarray(arrays["embedding"], dtype=np.float64)
            self.norm_ = (float(extra["norm"][0]), float(extra["norm"][1]))
            self.floor_ = float(extra["floor"])
            self.n_target_samples_ = int(extra.get("n_target_samples", 0))
            self.adapted_ = True
        return self


# Members of the default HelpEnsemble per space, chosen on HELP's meta-valid devices (benchmarks/help_*.py).
# The MLP member is HelpPredictor's default (Meta-SGD, 5 inner steps, log target); the additive member is
# an op-cost table V[op] shared by all edges (rank 1), solved exactly by one Gauss-Newton step with a wide
# prior (100), on raw latency, where a sum of op costs is what a device computes. On FBNet, whose test
# devices are sums of per-layer tables with 198 entries, the additive member alone got rho 0.88 and 0.1 of
# the weight on meta-valid, lowering the blend; three MLPs blend best there.
MLP_MEMBER: dict[str, Any] = {"meta_iters": 1000}
ADDITIVE_MEMBER: dict[str, Any] = {"model": "additive", "hidden": [], "rank": 1, "inner": "gauss-newton",
                                   "inner_steps": 1, "inner_lr": 100.0, "adapt_params": ["V", "b"],
                                   "target": "raw", "meta_iters": 300}
DEFAULT_MEMBERS: dict[str, list[dict[str, Any]]] = {
    "nb201": [MLP_MEMBER, MLP_MEMBER, ADDITIVE_MEMBER],
    "fbnet": [MLP_MEMBER, MLP_MEMBER, MLP_MEMBER],
}


def default_members(space: str) -> list[dict[str, Any]]:
    """The ensemble members for `space` (three MLP members where no choice was measured)."""
    return [dict(m) for m in DEFAULT_MEMBERS.get(space, [MLP_MEMBER] * 3)]


@register_predictor("help-ensemble")
class HelpEnsemble(FewShotPredictor):
    """Several `HelpPredictor`s meta-trained apart and blended: prediction = exp(sum_i w_i log ms_i).

    Why: members with different inductive biases fail on different devices (an additive op-cost model is
    exact where latency is a sum of op costs, an MLP catches interactions and what the embedding says),
    and their errors partly cancel. `members` are HelpPredictor parameter dicts (space, reference and
    seed come from the ensemble; member i gets seed + i). `weights` None: chosen on the meta-valid
    tasks (grid over the simplex, step 0.05), else equal weights when meta_fit gets no valid tasks.
    """

    kind: ClassVar[str] = "help-ensemble"
    _parameter_constraints: ClassVar = {
        "members": (lambda v: isinstance(v, list | tuple) and len(v) >= 1 and all(isinstance(m, Mapping) for m in v),
                    "a non-empty list of HelpPredictor parameter dicts"),
        "weights": (lambda v: v is None or (isinstance(v, list | tuple) and all(
            isinstance(w, int | float) and w >= 0 for w in v) and sum(v) > 0), "None or non-negative floats"),
    }

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0,
                 reference: Sequence[str] | None = None, members: Sequence[Mapping[str, Any]] = (),
                 weights: Sequence[float] | None = None, verbose: bool = False):
        super().__init__(space=space, space_config=space_config, seed=seed)
        self.reference = reference
        self.members = members
        self.weights = weights
        self.verbose = verbose

    def _member(self, i: int) -> HelpPredictor:
        shared = {"space": self.space, "space_config": self.space_config, "reference": self.reference,
                  "seed": self.seed + i, "verbose": self.verbose}
        clash = sorted(set(shared) & set(self.members[i]) - {"verbose"})
        if clash:
            raise InvalidParameterError(f"member {i} sets {clash}; the ensemble sets those")
        return HelpPredictor(**{**shared, **dict(self.members[i])})

    def meta_fit(self, tasks: Mapping[str, tuple[Sequence[str], np.ndarray]],
                 valid: Mapping[str, FewShotTask] | None = None,
                 on_iter: Callable[[int, int], None] | None = None) -> HelpEnsemble:
        """Meta-train every member; `on_iter(done, total)` counts the members' iterations together."""
        self._validate_params()
        for k in ("fitted_", "adapted_", "adapted_params_"):
            self.__dict__.pop(k, None)
        if self.weights is not None and len(self.weights) != len(self.members):
            raise InvalidParameterError(f"weights has {len(self.weights)} entries for {len(self.members)} members")
        members = [self._member(i) for i in range(len(self.members))]
        total, done = sum(m.meta_iters for m in members), 0
        self.members_ = []
        for m in members:
            def step(k: int, _n: int, base: int = done) -> None:
                if on_iter is not None:
                    on_iter(base + k, total)
            self.members_.append(m.meta_fit(tasks, valid, on_iter=step))
            done += m.meta_iters
        if self.weights is not None:
            w = np.asarray(self.weights, dtype=np.float64)
        elif valid:
            w = self._choose_weights(valid)
        else:
            w = np.ones(len(self.members))
        self.weights_ = w / w.sum()
        self.fitted_ = True
        self._log(f"[help-ensemble] weights {np.round(self.weights_, 3).tolist()}")
        return self

    def _choose_weights(self, valid: Mapping[str, FewShotTask]) -> np.ndarray:
        logs = []  # per task: [members, query] log predictions
        for t in valid.values():
            logs.append(np.stack([np.log(m.adapt(t.support_ids, t.support_y, t.reference).predict(t.query_ids))
                                  for m in self.members_]))
        for m in self.members_:
            m.__dict__.pop("adapted_", None)
        best, best_w = -math.inf, np.ones(len(self.members_))
        for w in _simplex_grid(len(self.members_), 20):
            score = float(np.mean([_spearman(w @ lg, t.query_y) for lg, t in zip(logs, valid.values(), strict=True)]))
            if score > best + 1e-9:
                best, best_w = score, w
        self.valid_score_ = best
        return best_w

    def adapt(self, arch_ids: Sequence[str], y_ms: np.ndarray,
              reference: Mapping[str, float] | None = None) -> HelpEnsemble:
        """Adapt every member (see HelpPredictor.adapt)."""
        self.check_is_fitted()
        for m in self.members_:
            m.adapt(arch_ids, y_ms, reference)
        self.n_target_samples_ = len(arch_ids)
        self.adapted_ = True
        return self

    def predict(self, arch_ids: Sequence[str]) -> np.ndarray:
        """Weighted geometric mean of the members' latencies (ms)."""
        self.check_is_adapted()
        logs = np.stack([np.log(np.maximum(m.predict(arch_ids), 1e-12)) for m in self.members_])
        return np.exp(self.weights_ @ logs)

    def feature_spec(self) -> dict[str, Any]:
        return _help_feature_spec(self)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.check_is_fitted()
        arrays: dict[str, np.ndarray] = {}
        extras = []
        for i, m in enumerate(self.members_):
            a, e = m.state()
            arrays.update({f"m{i}.{k}": v for k, v in a.items()})
            extras.append({"params": _jsonable(m.get_params()), "extra": e})
        return arrays, {"kind": self.kind, "weights": self.weights_.tolist(), "members": extras,
                        "target": {"transform": "weighted geometric mean of the members' ms"},
                        "adapted": bool(getattr(self, "adapted_", False)),
                        "n_target_samples": getattr(self, "n_target_samples_", 0)}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], extra: dict[str, Any]
                   ) -> HelpEnsemble:
        self = cls(**params)
        self.members_ = []
        for i, m in enumerate(extra["members"]):
            prefix = f"m{i}."
            sub = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            self.members_.append(HelpPredictor.from_state(m["params"], sub, m["extra"]))
        self.weights_ = np.asarray(extra["weights"], dtype=np.float64)
        self.fitted_ = True
        if extra.get("adapted"):
            self.n_target_samples_ = int(extra.get("n_target_samples", 0))
            self.adapted_ = True
        return self


def _help_feature_spec(pred: HelpPredictor | HelpEnsemble) -> dict[str, Any]:
    refs = pred.members_[0].reference_ids() if isinstance(pred, HelpEnsemble) else pred.reference_ids()
    return {**onehot_spec(pred), "device_embedding": {
        "reference_archs": refs, "values": "the reference latencies, transformed and standardised by their own "
                                           "mean and std (the device's shape, its scale removed)"}}


def _simplex_grid(n: int, steps: int) -> list[np.ndarray]:
    """Weight vectors of n non-negative entries summing to 1, in multiples of 1/steps."""
    return [np.array(c, dtype=np.float64) / steps for c in itertools.product(range(steps + 1), repeat=n)
            if sum(c) == steps]


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def help_fbnet_reference(help_dir: Any) -> list[str]:
    """HELP's FBNet reference arch ids (rows of `arch.pt` named in `hardware_embedding_index.pt`)."""
    from spaces import create_space
    from spaces.fbnet import find_help_data, help_fbnet_archs, load_plain_torch_file

    data = find_help_data(help_dir)
    rows = load_plain_torch_file(data / "fbnet" / "hardware_embedding_index.pt")
    archs = help_fbnet_archs(data)
    sp = create_space("fbnet")
    return [sp.arch_id(archs[int(i)]) for i in rows]


# --- (b) Domino's meta-accuracy predictor -------------------------------------------------------------------


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
        "hidden": (_is_hidden, "a list of positive ints"),
        "inner_lr": (_is_pos_float, "a positive float"),
        "inner_steps": (_is_nonneg_int, "an int >= 0"),
        "meta_iters": (_is_nonneg_int, "an int >= 0"),
        "meta_batch": (_is_pos_int, "an int >= 1"),
        "n_support": (_is_pos_int, "an int >= 1"),
        "n_query": (_is_pos_int, "an int >= 1"),
        "outer_lr": (_is_pos_float, "a positive float"),
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

    def meta_fit(self, tasks: Mapping[str, tuple[Sequence[str], np.ndarray]]) -> MetaAccuracyPredictor:
        """Meta-train on `tasks[name] = (arch_ids, accuracies)` (one proxy task is enough). Forgets any fit."""
        self._validate_params()
        for k in ("fitted_", "adapted_", "adapted_params_"):
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
                                 "adapted": bool(getattr(self, "adapted_", False))}
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
        self.fitted_ = True
        if extra.get("adapted"):
            self.adapted_params_ = {n: _array(arrays, f"a.{n}", tuple(p.shape)) for n, p in engine.params().items()}
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
