"""The frozen cost predictor a search differentiates, and what can be asked of it before and after a search.

`CostModel` is a module mapping the space's flat one-hot [B, L*K] to latency (ms) or energy (mJ), plus
the space it was fitted for. `as_cost_model` takes a fitted TorchPredictor (MLP, GNN, GCN), a saved
predictor folder, or a CostModel built by hand around any torch module, and freezes a copy: eval mode,
no parameter requires grad, so the search can push gradients through it to α but never changes it.
`as_predict_model` also takes the predictors without gradients (FLOPs, LUT, GBDT, meta), for evaluation only.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwsearch.result import UNITS
from spaces import SearchSpace, create_space
from spaces.errors import UserInputError

# Spaces up to this size are enumerated for the reachable range (NB201: 15,625 archs).
ENUMERATE_MAX = 1 << 16
_CHUNK = 8192


@dataclass
class CostModel:
    """A differentiable cost predictor: `module(onehot [B, L*K]) -> cost [B]` for `space`/`space_config`."""

    module: nn.Module
    space: str
    space_config: dict[str, Any] | None = None
    metric: str = "latency"
    device_name: str | None = None  # the board the predictor was fitted for, when known
    source: str = "module"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return UNITS[self.metric]

    def __call__(self, onehot: torch.Tensor) -> torch.Tensor:
        return self.module(onehot)

    def to(self, device: str | torch.device) -> CostModel:
        self.module.to(device)
        return self


class LUTCost(nn.Module):
    """Additive lookup-table cost (FBNet's latency LUT): base + Σ_l table[l, op_l], linear in the one-hot,
    so its gradient w.r.t. the one-hot is the table itself."""

    def __init__(self, table: np.ndarray | torch.Tensor, base: float = 0.0) -> None:
        super().__init__()
        table = torch.as_tensor(np.asarray(table, dtype=np.float32))
        if table.dim() != 2:
            raise ValueError(f"LUTCost: table must be [layers, ops], got shape {tuple(table.shape)}")
        self.register_buffer("table", table.reshape(-1))
        self.register_buffer("base", torch.tensor(float(base)))

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        return onehot @ self.table + self.base


def lut_cost_model(table: np.ndarray, space: SearchSpace, base: float = 0.0,
                   metric: str = "latency") -> CostModel:
    """A CostModel from a per-layer, per-op cost table [L, K] for `space` (e.g. a measured latency LUT)."""
    table = np.asarray(table, dtype=np.float64)
    if table.shape != (space.n_layers, space.n_ops):
        raise ValueError(f"lut_cost_model: table must be {(space.n_layers, space.n_ops)} for space "
                         f"{space.name!r}, got {table.shape}")
    return CostModel(LUTCost(table, base), space.name, space.config, metric, source="lookup table")


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and requires_grad False on every parameter (gradients still flow to the inputs)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def as_cost_model(predictor: Any, metric: str = "latency") -> CostModel:
    """A frozen CostModel from a fitted TorchPredictor, a saved predictor folder or a CostModel."""
    if metric not in UNITS:
        raise ValueError(f"metric must be one of {', '.join(map(repr, UNITS))}, got {metric!r}")
    seen: list[str] | None = None
    if isinstance(predictor, str | Path):
        from predictors.io import load_predictor, read_train_archs

        seen = sorted(read_train_archs(predictor)) or None
        predictor = load_predictor(predictor)
    if isinstance(predictor, CostModel):
        model = CostModel(predictor.module, predictor.space, predictor.space_config, metric,
                          predictor.device_name, predictor.source, dict(predictor.extra))
    elif hasattr(predictor, "torch_model") and hasattr(predictor, "space"):
        devices = (getattr(predictor, "card_", None) or {}).get("devices") or []
        kind = getattr(predictor, "kind", type(predictor).__name__)
        model = CostModel(predictor.torch_model(), predictor.space, predictor.space_config, metric,
                          ", ".join(devices) or None, f"{kind} predictor")
        seen = seen or getattr(predictor, "train_archs_", None)
        if seen:  # the archs it was fitted on: refine's trust region (`refine_arch`'s mu)
            model.extra["train_archs"] = list(seen)
    elif isinstance(predictor, nn.Module):
        raise TypeError("a bare torch module does not say which space it predicts for; wrap it as "
                        "hwsearch.CostModel(module, space=..., space_config=...)")
    else:
        raise TypeError(f"predictor must be a fitted differentiable predictor (one with torch_model(): mlp, "
                        f"gnn, gcn), a saved predictor folder or a hwsearch.CostModel, got "
                        f"{type(predictor).__name__}")
    freeze(model.module)
    return model


class PredictModule(nn.Module):
    """One-hot rows [B, L*K] -> `predictor.predict(arch ids)`: any fitted predictor (FLOPs, LUT, GBDT, meta)
    as a module, for what only evaluates the cost (the closed loop, the reachable range). No gradient
    flows through it; a differentiable search needs `as_cost_model`."""

    def __init__(self, predictor: Any) -> None:
        super().__init__()
        self.predictor = predictor
        self.space = create_space(predictor.space, **(predictor.space_config or {}))

    def forward(self, onehot: torch.Tensor) -> torch.Tensor:
        codes = onehot.detach().reshape(len(onehot), self.space.n_layers, self.space.n_ops).argmax(-1)
        ids = [self.space.arch_id(tuple(int(k) for k in row)) for row in codes.cpu().tolist()]
        values = np.asarray(self.predictor.predict(ids), dtype=np.float32) if ids else np.empty(0, np.float32)
        return torch.as_tensor(values, device=onehot.device)


def as_predict_model(predictor: Any, metric: str = "latency") -> CostModel:
    """A CostModel to evaluate archs with: `as_cost_model` for a differentiable predictor, else any fitted
    predictor with `predict(arch_ids)` and a space (wrapped in PredictModule)."""
    if isinstance(predictor, str | Path):
        from predictors.io import load_predictor

        predictor = load_predictor(predictor)
    if isinstance(predictor, CostModel) or hasattr(predictor, "torch_model"):
        return as_cost_model(predictor, metric)
    if metric not in UNITS:
        raise ValueError(f"metric must be one of {', '.join(map(repr, UNITS))}, got {metric!r}")
    if not (callable(getattr(predictor, "predict", None)) and hasattr(predictor, "space")):
        raise TypeError(f"predictor must be a fitted predictor (predict(arch_ids) and a space), a saved "
                        f"predictor folder or a hwsearch.CostModel, got {type(predictor).__name__}")
    devices = (getattr(predictor, "card_", None) or {}).get("devices") or []
    kind = getattr(predictor, "kind", type(predictor).__name__)
    return CostModel(PredictModule(predictor), predictor.space, predictor.space_config, metric,
                     ", ".join(devices) or None, f"{kind} predictor")


def check_space(model: CostModel, space: SearchSpace) -> None:
    """UserInputError (a ValueError) unless the predictor was fitted for `space` with the same config."""
    try:
        theirs = create_space(model.space, **(model.space_config or {})).config
    except (KeyError, ValueError, TypeError) as e:
        raise UserInputError(f"the predictor's space {model.space!r} with config {model.space_config} does not "
                         f"build: {e}") from None
    if model.space != space.name or theirs != space.config:
        raise UserInputError(f"the predictor is for space {model.space!r} {theirs}, but the search is over "
                         f"{space.name!r} {space.config}; fit or load a predictor for the search's space")


def _on_onehots(fn: Any, space: SearchSpace, archs: list[tuple[int, ...]] | np.ndarray,
                device: str | torch.device, dim: int = 0) -> np.ndarray:
    """`fn` (flat one-hot [B, L*K] -> a tensor with B along `dim`) over many archs (rows of op indices), in
    chunks, without gradients, joined along `dim` as float64."""
    codes = torch.as_tensor(np.asarray(archs, dtype=np.int64).reshape(-1, space.n_layers))
    out = []
    with torch.no_grad():
        for i in range(0, len(codes), _CHUNK):
            onehot = torch.nn.functional.one_hot(codes[i:i + _CHUNK], space.n_ops).float()
            out.append(fn(onehot.reshape(len(onehot), -1).to(device)).float().cpu())
    return torch.cat(out, dim=dim).numpy().astype(np.float64) if out else np.empty(0)


def predict_archs(model: CostModel, space: SearchSpace, archs: list[tuple[int, ...]] | np.ndarray,
                  device: str | torch.device = "cpu") -> np.ndarray:
    """Predicted cost of many archs (rows of op indices), in chunks, without gradients."""
    return _on_onehots(model, space, archs, device)


@dataclass(frozen=True)
class Reach:
    """The predicted cost range of a space: [lo, hi] and archs at the ends; how it was found."""

    lo: float
    hi: float
    lo_arch: tuple[int, ...]
    hi_arch: tuple[int, ...]
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {"lo": self.lo, "hi": self.hi, "lo_arch": list(self.lo_arch), "hi_arch": list(self.hi_arch),
                "method": self.method}


def _coordinate_search(model: CostModel, space: SearchSpace, start: np.ndarray, sign: float,
                       device: str | torch.device, sweeps: int = 4) -> tuple[np.ndarray, float]:
    """Greedy per-layer descent of sign*cost from `start`: each layer takes its best op given the rest."""
    arch = start.copy()
    best = sign * predict_archs(model, space, arch[None], device)[0]
    for _ in range(sweeps):
        changed = False
        for layer in range(space.n_layers):
            cands = np.repeat(arch[None], space.n_ops, axis=0)
            cands[:, layer] = np.arange(space.n_ops)
            values = sign * predict_archs(model, space, cands, device)
            k = int(np.argmin(values))
            if values[k] < best - 1e-12:
                arch, best, changed = cands[k], float(values[k]), True
        if not changed:
            break
    return arch, sign * best


def reachable_range(model: CostModel, space: SearchSpace, samples: int = 20_000, seed: int = 0,
                    device: str | torch.device = "cpu") -> Reach:
    """The min and max predicted cost over the space.

    Exact for spaces of up to ENUMERATE_MAX archs (every arch predicted). Larger spaces: the extremes of
    `samples` uniform archs, each refined by greedy per-layer descent (ascent for the max); a cost that
    is monotone-ish in each layer's op, as latency is, makes that reach the true ends or very near them.
    """
    if space.size <= ENUMERATE_MAX:
        archs = np.array(list(itertools.product(range(space.n_ops), repeat=space.n_layers)), dtype=np.int64)
        values = predict_archs(model, space, archs, device)
        lo, hi = int(np.argmin(values)), int(np.argmax(values))
        return Reach(float(values[lo]), float(values[hi]), tuple(map(int, archs[lo])),
                     tuple(map(int, archs[hi])), f"enumerated all {space.size} archs")
    rng = np.random.default_rng(seed)
    archs = rng.integers(0, space.n_ops, size=(samples, space.n_layers))
    values = predict_archs(model, space, archs, device)
    lo_arch, lo = _coordinate_search(model, space, archs[int(np.argmin(values))], 1.0, device)
    hi_arch, hi = _coordinate_search(model, space, archs[int(np.argmax(values))], -1.0, device)
    return Reach(float(min(lo, values.min())), float(max(hi, values.max())), tuple(map(int, lo_arch)),
                 tuple(map(int, hi_arch)), f"{samples} random archs + greedy per-layer descent/ascent")


def member_predictions(model: CostModel, space: SearchSpace, archs: list[tuple[int, ...]] | np.ndarray,
                       device: str | torch.device = "cpu") -> np.ndarray | None:
    """Every member's cost of many archs, [members, N], when the cost model is an ensemble (its module has
    `member_predictions(onehot) -> [K, B]`, as `predictors.ensemble.EnsembleHead`); None otherwise."""
    fn = getattr(model.module, "member_predictions", None)
    return None if fn is None else _on_onehots(fn, space, archs, device, dim=1)


def is_ensemble(model: CostModel) -> bool:
    """Whether the cost model can say how much its members disagree (what `refine_arch`'s kappa needs)."""
    return callable(getattr(model.module, "member_predictions", None))


def neighbourhood(arch: tuple[int, ...], n_ops: int, radius: int = 1) -> list[tuple[int, ...]]:
    """`arch` first, then every arch that differs from it in 1..`radius` layers (pure)."""
    arch = tuple(int(k) for k in arch)
    cands = [arch]
    for r in range(1, radius + 1):
        for layers in itertools.combinations(range(len(arch)), r):
            choices = [[op for op in range(n_ops) if op != arch[layer]] for layer in layers]
            for ops in itertools.product(*choices):
                c = list(arch)
                for layer, op in zip(layers, ops, strict=True):
                    c[layer] = op
                cands.append(tuple(c))
    return cands


def known_archs(model: CostModel, space: SearchSpace) -> np.ndarray | None:
    """The archs the cost model's predictor was fitted on, as op indices [M, L] (`extra["train_archs"]`, which
    `as_cost_model` fills from a saved predictor's train_archs.json or a predictor's `train_archs_`); None
    when it does not know them."""
    ids = model.extra.get("train_archs")
    if not ids:
        return None
    return np.asarray([space.parse(a) for a in ids], dtype=np.int64).reshape(-1, space.n_layers)


def distance_to_known(cands: np.ndarray, known: np.ndarray, cap: int) -> np.ndarray:
    """Per candidate [N, L]: the fewest layers in which it differs from any known arch [M, L], at most `cap`
    (pure)."""
    cands = np.asarray(cands, dtype=np.int64)
    out = np.full(len(cands), cap, dtype=np.int64)
    for i in range(0, len(cands), 256):
        diff = (cands[i:i + 256, None, :] != known[None, :, :]).sum(-1)
        out[i:i + 256] = np.minimum(diff.min(axis=1), cap)
    return out


def refine_arch(arch: tuple[int, ...], alpha: torch.Tensor, model: CostModel, space: SearchSpace,
                target: float, tolerance: float, device: str | torch.device = "cpu", kappa: float = 0.0,
                radius: int = 1, keep: int = 8, mu: float = 0.0, known: np.ndarray | None = None
                ) -> tuple[tuple[int, ...], dict[str, Any]]:
    """Post-step: among `arch` and the archs up to `radius` layers away from it, those predicted within
    `tolerance` (relative) of `target`, the one with the best score

        score(c) = Σ_l log softmax(α)_l[c_l] − κ·d(c) − μ·h(c),
        d(c) = std/mean of the ensemble members' costs of c,
        h(c) = layers in which c differs from the nearest arch the predictor was fitted on, at most radius + 1,

    `arch` if none qualifies. κ = 0 (the thesis' behaviour; any predictor) keeps the most α-probable arch,
    so the argmax arch is kept whenever it already meets the target and the step only trades the least
    α-probability for a target hit. κ > 0 (an ensemble cost model only, `is_ensemble`) trades α-probability
    for agreement: the mean is least trustworthy where the members disagree, and that is where a network
    predicted on target misses it when measured (issue 16: the open loop). κ is in
    nats per unit of relative disagreement: κ = 10 gives up 0.1 nat of α log-probability for 1 point (0.01)
    less disagreement. μ > 0 is a trust region around the training data (`known`: op indices [M, L], default
    `known_archs(model)`): a predictor is most accurate on the archs it was fitted on and next to them, so
    each layer further from them costs μ nats. On HELP's NB201 tables (an MLP ensemble on 900 cells), among
    the archs within two edges of a near-target cell and predicted within 2%, picking by least disagreement
    cut the mean true miss from 6.0/12.9/3.5% (a random pick; raspi4 47 ms, pixel3 p50, gold_6226 p50) to
    5.2/10.1/2.9%, a training cell first (h = 0) to 4.9/9.9/2.1%.
    `keep`: how many of the qualifying candidates (best score first) the info lists.
    """
    if kappa < 0 or not math.isfinite(kappa):
        raise ValueError(f"kappa must be a finite number >= 0, got {kappa!r}")
    if radius not in (1, 2):
        raise ValueError(f"radius must be 1 or 2, got {radius!r}")
    if mu < 0 or not math.isfinite(mu):
        raise ValueError(f"mu must be a finite number >= 0, got {mu!r}")
    if known is None and mu > 0:
        known = known_archs(model, space)
        if known is None:
            raise ValueError("mu > 0 needs the archs the predictor was fitted on (known, or a cost model whose "
                             "extra['train_archs'] lists them: a saved predictor folder has them)")
    members_fn = is_ensemble(model)
    if kappa > 0 and not members_fn:
        raise ValueError("kappa > 0 needs an ensemble cost model (one whose module has member_predictions, "
                         "e.g. a fitted mlp-ensemble predictor)")
    logp = torch.log_softmax(alpha.detach().float().cpu(), dim=-1).numpy()
    cands = neighbourhood(tuple(arch), space.n_ops, radius)
    values = predict_archs(model, space, cands, device)
    codes = np.asarray(cands, dtype=np.int64)
    score = logp[np.arange(space.n_layers)[None, :], codes].sum(axis=1)
    spread = None
    if members_fn:
        members = member_predictions(model, space, cands, device)
        spread = members.std(axis=0) / np.abs(members.mean(axis=0))
    ok = np.abs(values / target - 1.0) <= tolerance
    total = score - kappa * spread if kappa > 0 else score
    hops = None if known is None else distance_to_known(codes, known, radius + 1)
    if mu > 0:
        total = total - mu * hops
    info: dict[str, Any] = {"enabled": True, "tolerance": tolerance, "kappa": kappa, "mu": mu, "radius": radius,
                            "candidates": len(cands), "within_tolerance": int(ok.sum()), "before_arch": list(arch),
                            "before_predicted": float(values[0]),
                            "before_disagreement": None if spread is None else float(spread[0])}
    if not ok.any():
        info.update(changed=False, after_disagreement=info["before_disagreement"],
                    reason=f"no arch within {radius} layer(s) of the derived arch is within tolerance")
        return tuple(arch), info
    qualified = np.flatnonzero(ok)[np.argsort(-total[ok], kind="stable")]
    best = int(qualified[0])
    info.update(changed=best != 0, after_predicted=float(values[best]),
                log_prob_before=float(score[0]), log_prob_after=float(score[best]),
                after_disagreement=None if spread is None else float(spread[best]),
                ranked=[{"arch": list(cands[i]), "predicted": float(values[i]), "log_prob": float(score[i]),
                         "disagreement": None if spread is None else float(spread[i]),
                         "from_known": None if hops is None else int(hops[i])} for i in qualified[:keep]],
                after_from_known=None if hops is None else int(hops[best]))
    if best == 0:
        info["reason"] = "the derived arch is already within tolerance" + (" and scores best" if kappa else "")
    return cands[best], info


def relative_gap(value: float, target: float) -> float:
    """value/target - 1 (what λ ascends on)."""
    return value / target - 1.0 if math.isfinite(value) else math.inf
