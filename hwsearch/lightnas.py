"""LightNAS (thesis ch. 4, stage 1): one differentiable single-path search that lands on a latency target.

Loss on the α-split: CE + λ·(LAT(P̄)/T − 1), where P̄ is the straight-through hard Gumbel sample and LAT
the frozen predictor on its flattened one-hot, so ∂/∂α of the cost term is (λ/T)·∂LAT/∂α: λ is unitless
(it weighs a relative latency error against the CE), which is why one η_λ serves ms and mJ targets of
any size. w descends (SGD), α descends (Adam), λ ascends: λ ← λ + η_λ·(LAT/T − 1) (eq. 4.11), so λ grows
while the arch is too slow and shrinks (below 0 if need be, no clamp) while it is too fast.

Choices the thesis leaves open, decided here:
- λ is updated from the prediction for argmax(α) (`lambda_path="argmax"`; "sample" uses the sampled
  path): the argmax arch is the one returned, so it is what must land on T, while the sampled path is
  near-random early (τ large, α small) and would make λ chase noise. Both predictions are logged.
- Damping (`lambda_damping`, ρ; not in the thesis): the α-gradient coefficient of the cost term is
  λ + ρ·(LAT(argmax α)/T − 1) instead of λ, the proportional term of a PI controller, i.e. the gradient
  of the augmented Lagrangian's ρ/2·(LAT/T − 1)² with the argmax gap. It vanishes on target, so it does
  not move the constrained optimum; it stops the plain descent-ascent from oscillating. Without it, on
  the toy runs below the argmax latency swung ±20-50% around T with growing amplitude (λ winds up while
  α, moving at Adam's ~lr per step, lags). ρ = 0 gives the thesis' update exactly.
- η_λ: the thesis' 5e-4 is tuned for 80 epochs of ~200 α-steps (~16k steps). A CPU search of a few
  epochs has ~50-500 α-steps, in which 5e-4 leaves λ ≈ 0 and the arch wherever CE noise drives it, so
  the default is DEFAULT_LAMBDA_LR (measurements there); pass lambda_lr=5e-4, lambda_damping=0 for the
  thesis' setting on long searches.
- α starts at 0; warm-up (α frozen) is round(epochs/9) epochs (the thesis' 10 of 90). After it, each
  epoch is one pass of w-steps over the w-split, then one pass of α-steps over the α-split.
- `refine` (on by default, flagged in the result): a post-step that, when the argmax arch ends off the
  target, takes the most α-probable arch within one layer of it that is within `refine_tolerance`.
- The energy variant (eq. 4.14) is the same math with an energy predictor: `metric="energy"` only
  changes labels and units (mJ).
"""

from __future__ import annotations

import math
import numbers
import time
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from hwsearch.cost import UNITS, as_cost_model, check_space, reachable_range, refine_arch
from hwsearch.data import batches, shard_indices, split
from hwsearch.distributed import DistContext, all_reduce_mean_, broadcast_, finish, init_distributed
from hwsearch.gumbel import FBNET_DECAY, arch_onehot, derive_arch, hard_gumbel, tau_schedule
from hwsearch.registry import register_search
from hwsearch.result import SearchResult
from hwsearch.supernet import build_supernet
from predictors.base import Constraint, InvalidParameterError, Params
from predictors.common import float_above, int_at_least, one_of
from spaces import SearchSpace, create_space

THESIS_LAMBDA_LR = 5e-4
# Defaults for short (CPU, few-epoch) searches, chosen on toy runs: a real MLP predictor (128-64, fitted on
# 1,200 archs, 0.3% MAPE) of a FLOPs-like synthetic latency of mbconv-small at width 0.25 / 16 px (21
# layers, predicted range 0.97-1.83 ms), digits proxy, 10 epochs, batch 32, 108 α-steps, targets 1.05,
# 1.4 and 1.75 ms. Error of the argmax arch at the end (before refine), seeds 0/1/2:
#   η_λ 0.1, ρ 10 (default):  -1.0/+0.4/-1.8%, -0.5/+5.6/-0.1%, -0.8/-4.1/-2.6%; after refine all within 2%
#   η_λ 5e-4, ρ 0 (thesis):   +15.6/-2.6/-11.1% (λ stays ~0.01: the arch is wherever CE noise left it)
#   η_λ 0.05, ρ 0:            +4.5/+19.8/-4.0% (λ winds up to ±0.6, the arch swings ±20-50% around T)
#   η_λ 0.05, ρ 3:            +3.4/+0.0/-1.1%;  η_λ 0.1, ρ 3: -1.5/+0.7/-1.2%
# The middle target is the hardest: there CE is indifferent (λ* ~ 0) and CE noise flips near-tied layers.
# NB201 (6 edges) is coarser: one edge moves latency 10-30%, so the argmax arch ends within 5% of T in
# only about half of the runs (15 of 30: 6 and 10 epochs, 3-5 targets, 3-5 seeds), and refine brings
# 27 of 30 within 2% and all 15 runs of the 6-epoch setting within 5%.
DEFAULT_LAMBDA_LR = 0.1
DEFAULT_LAMBDA_DAMPING = 10.0


def lambda_step(lam: float, predicted: float, target: float, lr: float) -> float:
    """One gradient-ascent step of the multiplier (eq. 4.11): λ + η_λ·(LAT/T − 1) (pure)."""
    return lam + lr * (predicted / target - 1.0)


def _optional(c: Constraint) -> Constraint:
    ok, what = c
    return (lambda v: v is None or ok(v)), f"None or {what}"


def _positive_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0


@register_search("lightnas")
class LightNAS(Params):
    """LightNAS search object (scikit-learn style: parameters in __init__, `fit` validates and runs,
    learned state ends in `_`: `result_`, `alpha_`, `arch_`, `lambda_`, `supernet_`, `reach_`).

    `predictor`: a fitted differentiable predictor (mlp, gnn, gcn), a saved predictor folder, or a
    `hwsearch.CostModel`; `target` in ms (latency) or mJ (energy); `space`/`space_config` default to the
    predictor's. `batch_size` is per process under torchrun.
    """

    name: ClassVar[str] = "lightnas"
    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "space": _optional((lambda v: isinstance(v, str) and bool(v), "a registered space name")),
        "space_config": ((lambda v: v is None or isinstance(v, dict)), "None or a dict"),
        "metric": one_of(*UNITS),
        "epochs": int_at_least(1),
        "warmup_epochs": _optional(int_at_least(0)),
        "batch_size": int_at_least(1),
        "w_lr": float_above(0.0),
        "w_momentum": float_above(0.0, inclusive=True),
        "w_weight_decay": float_above(0.0, inclusive=True),
        "alpha_lr": float_above(0.0),
        "alpha_weight_decay": float_above(0.0, inclusive=True),
        "lambda_lr": float_above(0.0),
        "lambda_init": (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)
                        and math.isfinite(v), "a finite number"),
        "lambda_path": one_of("argmax", "sample"),
        "lambda_damping": float_above(0.0, inclusive=True),
        "tau0": float_above(0.0),
        "tau_decay": (lambda v: isinstance(v, numbers.Real) and 0 < v <= 1, "a number in (0, 1]"),
        "tau_end": _optional(float_above(0.0)),
        "literal_gumbel": ((lambda v: isinstance(v, bool)), "a bool"),
        "refine": ((lambda v: isinstance(v, bool)), "a bool"),
        "refine_tolerance": float_above(0.0),
        "reach_samples": int_at_least(1),
        "seed": int_at_least(0),
        "device": ((lambda v: isinstance(v, str) and (v == "cpu" or v.startswith("cuda"))),
                   "'cpu' or 'cuda' (optionally 'cuda:N')"),
        "progress": ((lambda v: isinstance(v, bool)), "a bool"),
        "data_resolution": _optional(int_at_least(8)),
    }

    def __init__(self, predictor: Any = None, target: float | None = None, space: str | None = None,
                 space_config: dict[str, Any] | None = None, metric: str = "latency", epochs: int = 10,
                 warmup_epochs: int | None = None, batch_size: int = 64, w_lr: float = 0.1,
                 w_momentum: float = 0.9, w_weight_decay: float = 3e-5, alpha_lr: float = 1e-3,
                 alpha_weight_decay: float = 1e-3, lambda_lr: float = DEFAULT_LAMBDA_LR,
                 lambda_init: float = 0.0, lambda_path: str = "argmax",
                 lambda_damping: float = DEFAULT_LAMBDA_DAMPING, tau0: float = 5.0,
                 tau_decay: float = FBNET_DECAY, tau_end: float | None = None, literal_gumbel: bool = False,
                 refine: bool = True, refine_tolerance: float = 0.02, reach_samples: int = 20_000,
                 seed: int = 0, device: str = "cpu", progress: bool = False,
                 data_resolution: int | None = None) -> None:
        self.predictor = predictor
        self.target = target
        self.space = space
        self.space_config = space_config
        self.metric = metric
        self.epochs = epochs
        self.warmup_epochs = warmup_epochs
        self.batch_size = batch_size
        self.w_lr = w_lr
        self.w_momentum = w_momentum
        self.w_weight_decay = w_weight_decay
        self.alpha_lr = alpha_lr
        self.alpha_weight_decay = alpha_weight_decay
        self.lambda_lr = lambda_lr
        self.lambda_init = lambda_init
        self.lambda_path = lambda_path
        self.lambda_damping = lambda_damping
        self.tau0 = tau0
        self.tau_decay = tau_decay
        self.tau_end = tau_end
        self.literal_gumbel = literal_gumbel
        self.refine = refine
        self.refine_tolerance = refine_tolerance
        self.reach_samples = reach_samples
        self.seed = seed
        self.device = device
        self.progress = progress
        self.data_resolution = data_resolution

    # --- scikit-learn conventions (get_params, set_params, clone: predictors.base.Params) ---------------

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.get_params().items() if k != "predictor"}
        return f"LightNAS({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def _validate(self) -> None:
        self._validate_params()
        if self.predictor is None:
            raise InvalidParameterError("LightNAS needs a predictor (a fitted mlp/gnn/gcn predictor, a saved "
                                        "predictor folder or a hwsearch.CostModel)")
        if not _positive_number(self.target):
            raise InvalidParameterError(f"The 'target' parameter of LightNAS must be a positive number "
                                        f"({UNITS.get(self.metric, 'ms')}). Got {self.target!r} instead.")
        if self._warmup() >= self.epochs:
            raise InvalidParameterError(f"warmup_epochs ({self._warmup()}) must be < epochs ({self.epochs}): "
                                        "no epoch would update α")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InvalidParameterError(f"device {self.device!r} asked for, but torch sees no CUDA device")

    def _warmup(self) -> int:
        """α is frozen for this many epochs: the thesis' 10 of 90, scaled (round(epochs/9)) by default."""
        return round(self.epochs / 9) if self.warmup_epochs is None else self.warmup_epochs

    # --- the search --------------------------------------------------------------------------------------

    def search(self, train_data: Any, val_data: Any = None) -> SearchResult:
        """`fit` and return its result."""
        return self.fit(train_data, val_data).result_

    def fit(self, train_data: Any, val_data: Any = None) -> LightNAS:
        """Search: w on `train_data` (the w-split), α on `val_data` (the α-split). With `val_data` None,
        `train_data` may be a (w-split, α-split) pair (what digits_proxy returns) or one dataset, split
        80/20 with the seed. Under torchrun (WORLD_SIZE > 1) it joins the process group itself."""
        self._validate()
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)
        ctx = init_distributed(self.device)
        try:
            self._fit(train_data, val_data, ctx)
        finally:
            finish(ctx)
        return self

    def _setup(self, ctx: DistContext) -> tuple[SearchSpace, torch.device, Any]:
        cost = as_cost_model(self.predictor, self.metric)
        space_name = self.space or cost.space
        config = self.space_config if self.space is not None else (cost.space_config or {})
        try:
            space = create_space(space_name, **(config or {}))
        except (KeyError, ValueError, TypeError) as e:
            raise InvalidParameterError(f"LightNAS: space {space_name!r} with config {config} does not "
                                        f"build: {e}") from None
        check_space(cost, space)
        per_rank = self.device == "cuda" and ctx.active
        device = torch.device(f"cuda:{ctx.local_rank}" if per_rank else self.device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return space, device, cost.to(device)

    def _fit(self, train_data: Any, val_data: Any, ctx: DistContext) -> None:
        start = time.perf_counter()
        space, device, cost = self._setup(ctx)
        target, unit = float(self.target), cost.unit
        reach = reachable_range(cost, space, self.reach_samples, self.seed, device)
        if not reach.lo <= target <= reach.hi:
            raise ValueError(f"target {target:g} {unit} outside what the space can reach on this device per "
                             f"the predictor: [{reach.lo:.4g}, {reach.hi:.4g}] {unit}")
        if val_data is None and isinstance(train_data, tuple | list) and len(train_data) == 2:
            train_data, val_data = train_data  # a (w-split, α-split) pair, as digits_proxy returns
        elif val_data is None:
            train_data, val_data = split(train_data, 0.8, self.seed)
        for which, data in (("train_data", train_data), ("val_data", val_data)):
            _check_data(data, space, which, self.data_resolution)

        run = _Run(self, space, cost, device, ctx, len(train_data))
        warmup = self._warmup()
        bar = _progress(self.progress and ctx.main, self.epochs)
        for epoch in range(self.epochs):
            tau = tau_schedule(epoch, self.epochs, self.tau0, self.tau_decay, self.tau_end)
            w_loss, n_w = run.w_epoch(train_data, epoch, tau)
            n_alpha = run.alpha_epoch(val_data, epoch, tau) if epoch >= warmup else 0
            derived = derive_arch(run.alpha)
            run.epochs_log.append({"epoch": epoch, "tau": tau, "w_loss": w_loss, "w_steps": n_w,
                                   "alpha_steps": n_alpha, "lambda": float(run.lam),
                                   "arch_argmax": list(derived), "predicted_argmax": run.predicted(derived)})
            if bar is not None:
                bar.advance(run.epochs_log[-1])
        if bar is not None:
            bar.close()

        derived = derive_arch(run.alpha)
        derived_pred = run.predicted(derived)
        arch, refine_info = derived, {"enabled": False, "changed": False}
        if self.refine:
            arch, refine_info = refine_arch(derived, run.alpha, cost, space, target, self.refine_tolerance,
                                            device)
        self.alpha_ = run.alpha.detach().cpu()
        self.arch_, self.lambda_, self.supernet_, self.reach_ = arch, float(run.lam), run.net, reach
        self.cost_model_, self.rank_ = cost, ctx.rank
        self.result_ = SearchResult(
            search=self.name, space=space.name, space_config=space.config, arch=list(arch),
            arch_id=space.arch_id(arch), target=target, metric=self.metric, unit=unit,
            predicted=run.predicted(arch), reachable=reach.to_dict(), lambda_history=run.lambda_history,
            log=run.log, epochs_log=run.epochs_log,
            data={"name": getattr(train_data, "name", type(train_data).__name__),
                  "alpha_split": getattr(val_data, "name", type(val_data).__name__),
                  "proxy": bool(getattr(train_data, "proxy", False)),
                  "n_w": len(train_data), "n_alpha": len(val_data),
                  "resolution": self.data_resolution or space.input_shape(1)[-1]},
            epochs=self.epochs, warmup_epochs=warmup, wall_s=time.perf_counter() - start, seed=self.seed,
            refine=refine_info, derived_arch=list(derived), derived_arch_id=space.arch_id(derived),
            derived_predicted=derived_pred, alpha=self.alpha_.tolist(), params=self._json_params(),
            predictor={"space": cost.space, "space_config": cost.space_config, "source": cost.source,
                       "device": cost.device_name},
            world_size=ctx.world)

    def _json_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.get_params().items() if k != "predictor"}


class _Run:
    """The state of one search (supernet, α, λ, optimisers, logs) and its two kinds of epoch."""

    def __init__(self, p: LightNAS, space: SearchSpace, cost: Any, device: torch.device, ctx: DistContext,
                 n_train: int) -> None:
        self.p, self.space, self.cost, self.device, self.ctx = p, space, cost, device, ctx
        self.target = float(p.target)
        self.net = build_supernet(space, p.seed).to(device)
        self.model: torch.nn.Module = self.net
        if ctx.active:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True)  # the ops off this step's path are unused
        self.alpha = torch.zeros(space.n_layers, space.n_ops, device=device, requires_grad=True)
        self.w_opt = torch.optim.SGD(self.net.parameters(), lr=p.w_lr, momentum=p.w_momentum,
                                     weight_decay=p.w_weight_decay)
        w_steps = math.ceil(-(-n_train // ctx.world) / p.batch_size)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, T_max=p.epochs * w_steps,
                                                                eta_min=0.0)
        self.a_opt = torch.optim.Adam([self.alpha], lr=p.alpha_lr, weight_decay=p.alpha_weight_decay)
        self.gen = torch.Generator().manual_seed(p.seed)  # Gumbel noise: the same paths on every rank
        self.lam = torch.tensor([float(p.lambda_init)], dtype=torch.float64, device=device)
        self.lambda_history = [float(self.lam)]
        self.log: list[dict[str, Any]] = []
        self.epochs_log: list[dict[str, Any]] = []

    def predicted(self, arch: tuple[int, ...]) -> float:
        with torch.no_grad():
            return float(self.cost(arch_onehot(arch, self.space.n_ops, self.alpha).reshape(1, -1))[0])

    def w_epoch(self, data: Any, epoch: int, tau: float) -> tuple[float, int]:
        """One pass over this rank's shard of the w-split, one sampled path per batch; (mean CE, steps)."""
        p, ctx = self.p, self.ctx
        self.net.train()
        total, steps = 0.0, 0
        for x, y in batches(data, shard_indices(len(data), ctx.rank, ctx.world, p.seed, epoch), p.batch_size):
            paths = hard_gumbel(self.alpha.detach(), tau, self.gen, p.literal_gumbel)
            loss = F.cross_entropy(self.model(x.to(self.device), paths), y.to(self.device))
            self.w_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.w_opt.step()
            self.sched.step()
            total, steps = total + loss.item(), steps + 1
        return total / max(steps, 1), steps

    def alpha_epoch(self, data: Any, epoch: int, tau: float) -> int:
        """One pass of α-steps over this rank's shard of the α-split, λ ascending after each; the steps."""
        p, ctx, target = self.p, self.ctx, self.target
        index = shard_indices(len(data), ctx.rank, ctx.world, p.seed + 1, epoch)
        steps = 0
        for x, y in batches(data, index, p.batch_size):
            paths = hard_gumbel(self.alpha, tau, self.gen, p.literal_gumbel)
            # The bare supernet, not DDP: w is not stepped here, only α's gradient is wanted.
            ce = F.cross_entropy(self.net(x.to(self.device), paths), y.to(self.device))
            pred_sample = self.cost(paths.reshape(1, -1))[0]
            derived = derive_arch(self.alpha)
            pred_argmax = self.predicted(derived)
            lam, sample = float(self.lam), pred_sample.item()
            weight = lam + p.lambda_damping * (pred_argmax / target - 1.0)  # λ plus the damping term
            (grad,) = torch.autograd.grad(ce + weight * (pred_sample / target - 1.0), self.alpha)
            stats = all_reduce_mean_(torch.cat([grad.reshape(-1), ce.detach().reshape(1)]), ctx)
            self.a_opt.zero_grad(set_to_none=True)
            self.alpha.grad = stats[:-1].reshape_as(self.alpha).clone()
            self.a_opt.step()
            lat = pred_argmax if p.lambda_path == "argmax" else sample
            self.lam.fill_(lambda_step(lam, lat, target, p.lambda_lr))
            self.lambda_history.append(float(self.lam))
            ce_mean = float(stats[-1])
            self.log.append({"step": len(self.log) + 1, "epoch": epoch, "tau": tau, "lambda": lam,
                             "cost_weight": weight, "predicted_sample": sample,
                             "predicted_argmax": pred_argmax, "ce": ce_mean,
                             "loss": ce_mean + weight * (sample / target - 1.0), "arch_argmax": list(derived)})
            steps += 1
        broadcast_(self.alpha.data, ctx)  # guards against any drift; the ranks already agree
        broadcast_(self.lam, ctx)
        return steps


def _check_data(data: Any, space: SearchSpace, which: str, resolution: int | None = None) -> None:
    """Refuse data the supernet cannot take, naming what differs, before any training starts.

    `resolution`: the supernet trains on images of this side instead of the space's (a lower-resolution
    proxy that keeps a CPU search to minutes; the networks end in global pooling, so any side works, and
    the cost is still predicted for the space's own resolution).
    """
    try:
        n = len(data)
    except TypeError:
        raise TypeError(f"{which} must be a dataset (len and [i] -> (image, label)), got "
                        f"{type(data).__name__}") from None
    if n == 0:
        raise ValueError(f"{which} is empty")
    image, _ = data[0]
    expected = tuple(space.input_shape(1)[1:])
    if resolution is not None:
        expected = (expected[0], resolution, resolution)
    if tuple(image.shape) != expected:
        raise ValueError(f"{which} images are {tuple(image.shape)} but the supernet of space {space.name!r} "
                         f"takes {expected}; load the data at resolution {expected[-1]}")
    classes = getattr(data, "num_classes", None)
    space_classes = getattr(space, "num_classes", None)
    if classes is not None and space_classes is not None and classes > space_classes:
        raise ValueError(f"{which} has {classes} classes but space {space.name!r} is configured for "
                         f"{space_classes} (num_classes in the space config)")


class _Progress:
    """A rich progress bar over epochs, on the main rank only."""

    def __init__(self, epochs: int) -> None:
        from rich.progress import Progress

        self.bar = Progress(transient=False)
        self.bar.start()
        self.task = self.bar.add_task("LightNAS", total=epochs)

    def advance(self, row: dict[str, Any]) -> None:
        self.bar.update(self.task, advance=1, description=f"LightNAS λ={row['lambda']:+.3f} "
                        f"pred={row['predicted_argmax']:.3g}")

    def close(self) -> None:
        self.bar.stop()


def _progress(enabled: bool, epochs: int) -> _Progress | None:
    return _Progress(epochs) if enabled else None
