"""SurgeNAS's training loop (torch): one search at a fixed β (`_Run`), the bisection on β that a target asks
for, and what a finished search leaves on the search object. The method and the choices made are in
`hwsearch.surgenas`; this module is imported only when a search runs.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from hwsearch.cost import CostModel, as_cost_model, reachable_range
from hwsearch.data import batches, shard_indices
from hwsearch.distributed import DistContext, all_reduce_mean_, broadcast_, rank_device
from hwsearch.gumbel import arch_onehot, derive_arch, ordered_samples
from hwsearch.lightnas_engine import Progress, check_data
from hwsearch.schedule import tau_schedule
from hwsearch.search_params import search_space
from hwsearch.supernet import Supernet, build_supernet
from hwsearch.supernet_search import run_on_ranks
from hwsearch.surgenas_result import SurgeNASResult
from spaces import SearchSpace, create_space
from spaces.errors import UserInputError

if TYPE_CHECKING:
    from hwsearch.surgenas import SurgeNAS

BRACKET_FACTOR = 4.0  # β is multiplied by this, away from 0, until the target is bracketed
BETA_FLOOR = 1e-4  # β·T that stands for β = 0 at the end of a bracket (geometric midpoints need a non-zero end)


def run_search(p: SurgeNAS, train_data: Any, val_data: Any) -> None:
    """Run the search `p` describes (validated by the caller); under torchrun it joins the process group."""
    run_on_ranks(p, _fit, train_data, val_data)


def phi_at(alpha_step: int | None, alpha_steps: int, phi0: float) -> float:
    """φ of the identity term: φ0 in the warm-up (`alpha_step` None), then linear from φ0 at the first α-step
    to 0 at the last (pure)."""
    if alpha_step is None:
        return float(phi0)
    if alpha_steps <= 1:
        return 0.0
    return float(phi0 * (1.0 - alpha_step / (alpha_steps - 1)))


def tau_at(alpha_step: int | None, alpha_steps: int, tau0: float, tau_end: float) -> float:
    """τ: τ0 in the warm-up (`alpha_step` None), then geometric from τ0 at the first α-step to `tau_end` at the
    last (per step, so that a search of a few epochs anneals smoothly too) (pure)."""
    if alpha_step is None:
        return float(tau0)
    return tau_schedule(alpha_step, max(alpha_steps, 1), tau0, tau_end=tau_end)


def next_beta(trials: list[tuple[float, float]], target: float) -> float:
    """The β to try next from the (β, predicted cost) of the trials so far (pure). β = 0 comes first (the
    caller runs it).

    Too slow everywhere tried: β = 1/T from 0 (β·LAT ≈ 1, the CE's scale), then ×4. Too fast everywhere:
    β = −1/T from 0 (a reward for latency, as LightNAS's λ goes below 0, for a target above what β = 0 finds),
    then ×4 away from 0. Bracketed (some β too slow, a larger one fast enough; always on one side of 0, which
    was tried): the geometric midpoint of the two, 0 standing for ±BETA_FLOOR/T. On short searches the latency
    jumps at β·T of 1e-3 or less (Adam's first sign-like steps let any steady bias win), which halving from 1/T
    would take ten trials to reach; the geometric midpoints cover four decades in four. The midpoint is never a
    β already tried: one between the bracket's ends would have moved an end."""
    if not trials:
        return 0.0
    over = [b for b, c in trials if c > target]  # too slow: β too small
    under = [b for b, c in trials if c <= target]
    above = [b for b in under if over and b > max(over)]
    if above:
        lo, hi = max(over), min(above)
        sign = 1.0 if hi > 0 else -1.0
        floor = BETA_FLOOR / target
        return sign * math.sqrt((abs(lo) or floor) * (abs(hi) or floor))
    if over:
        b = max(over)
        return 1.0 / target if b == 0 else (b * BRACKET_FACTOR if b > 0 else b / BRACKET_FACTOR)
    b = min(under)
    return -1.0 / target if b == 0 else (b * BRACKET_FACTOR if b < 0 else b / BRACKET_FACTOR)


def _fit(p: SurgeNAS, train_data: Any, val_data: Any, ctx: DistContext) -> None:
    start = time.perf_counter()
    cost, space = _cost_and_space(p)
    device = rank_device(p.device, ctx)
    if cost is not None:
        cost = cost.to(device)
    if val_data is None and isinstance(train_data, tuple | list) and len(train_data) == 2:
        train_data, val_data = train_data  # (train, held-out), as digits_proxy returns
    check_data(train_data, space, "train_data", p.data_resolution)
    if val_data is not None:
        check_data(val_data, space, "val_data", p.data_resolution)
    reach = None
    if p.target is not None:
        reach = reachable_range(cost, space, 20_000, p.seed, device)
        if not reach.lo <= float(p.target) <= reach.hi:
            raise UserInputError(f"target {float(p.target):g} {cost.unit} outside what the space can reach on this "
                                 f"device per the predictor: [{reach.lo:.4g}, {reach.hi:.4g}] {cost.unit}")
    bar = Progress(p.epochs, "SurgeNAS", _describe) if p.progress and ctx.main else None
    try:
        runs = _searches(p, space, cost, device, ctx, train_data, bar)
    finally:
        if bar is not None:
            bar.bar.stop()
    # nearest the target by ratio (|log(pred/T)|: 2x over and 2x under are as far), of two as near the cheaper
    best = runs[-1] if p.target is None else min(runs, key=lambda r: (abs(math.log(r.predicted / float(p.target))),
                                                                        r.predicted))
    trials = [{**r.summary(p.target), "chosen": r is best} for r in runs]
    heldout = None if val_data is None else _heldout_accuracy(best, train_data, val_data, p.batch_size)
    unit = cost.unit if cost is not None else ("ms" if p.metric == "latency" else "mJ")
    p.alpha_, p.arch_, p.beta_, p.supernet_ = best.alpha.detach().cpu(), best.arch, best.beta, best.net
    p.trials_, p.cost_model_, p.rank_ = trials, cost, ctx.rank
    p.result_ = SurgeNASResult(
        search=p.name, space=space.name, space_config=space.config, arch=list(best.arch),
        arch_id=space.arch_id(best.arch), target=None if p.target is None else float(p.target), metric=p.metric,
        unit=unit, predicted=best.predicted, alpha=p.alpha_.tolist(), wall_s=time.perf_counter() - start,
        params=p._json_params(),
        predictor={} if cost is None else {"space": cost.space, "space_config": cost.space_config,
                                           "source": cost.source, "device": cost.device_name},
        beta=best.beta, trials=trials, log=best.log, epochs_log=best.epochs_log,
        data={"name": getattr(train_data, "name", type(train_data).__name__),
              "heldout": None if val_data is None else getattr(val_data, "name", type(val_data).__name__),
              "proxy": bool(getattr(train_data, "proxy", False)), "n": len(train_data),
              "n_heldout": 0 if val_data is None else len(val_data),
              "resolution": p.data_resolution or space.input_shape(1)[-1]},
        epochs=p.epochs, warmup_epochs=p._warmup(), seed=p.seed, fairness=best.fairness(),
        choices=_choices(p, reach), heldout_accuracy=heldout, world_size=ctx.world)


def _cost_and_space(p: SurgeNAS) -> tuple[CostModel | None, SearchSpace]:
    if p.predictor is None:
        try:
            return None, create_space(p.space, **(p.space_config or {}))
        except (ValueError, TypeError) as e:
            raise UserInputError(f"SurgeNAS: space {p.space!r} with config {p.space_config} does not build: {e}") \
                from None
    cost = as_cost_model(p.predictor, p.metric)
    return cost, search_space("SurgeNAS", cost, p.space, p.space_config)


def _searches(p: SurgeNAS, space: SearchSpace, cost: CostModel | None, device: torch.device, ctx: DistContext,
              data: Any, bar: Progress | None) -> list[_Run]:
    """One search at `p.beta`; with a target, the bisection's searches (see hwsearch.surgenas)."""
    if p.target is None:
        return [_Run(p, space, cost, device, ctx, p.beta).search(data, bar)]
    target, runs = float(p.target), []
    while len(runs) < p.max_trials:
        beta = next_beta([(r.beta, r.predicted) for r in runs], target)  # 0 first
        if bar is not None:
            bar.reset(f"SurgeNAS trial {len(runs) + 1} β={beta:.3g}", p.epochs)
        runs.append(_Run(p, space, cost, device, ctx, beta).search(data, bar))
        if abs(runs[-1].predicted / target - 1.0) <= p.target_tolerance:
            break
    return runs


@dataclass
class _Step:
    alpha_step: int | None
    phi: float
    tau: float


class _Run:
    """One SurgeNAS search at a fixed β: supernet, α, optimisers, logs, the sampled (layer, op) counts."""

    def __init__(self, p: SurgeNAS, space: SearchSpace, cost: CostModel | None, device: torch.device,
                 ctx: DistContext, beta: float) -> None:
        self.p, self.space, self.cost, self.device, self.ctx, self.beta = p, space, cost, device, ctx, float(beta)
        self.net: Supernet = build_supernet(space, p.seed).to(device)
        self.model: torch.nn.Module = self.net
        if ctx.active:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True)  # the ops off a sub-network's path are unused in its pass
        self.alpha = torch.zeros(space.n_layers, space.n_ops, device=device, requires_grad=True)
        self.a_opt = torch.optim.Adam([self.alpha], lr=p.alpha_lr, betas=(0.5, 0.999),
                                      weight_decay=p.alpha_weight_decay)
        self.gen = torch.Generator().manual_seed(p.seed)  # the same sub-networks on every rank and every trial
        self.counts = torch.zeros(space.n_layers, space.n_ops, dtype=torch.long)
        self.iterations = 0
        self.log: list[dict[str, Any]] = []
        self.epochs_log: list[dict[str, Any]] = []
        self.arch: tuple[int, ...] = ()
        self.predicted: float | None = None

    def predict(self, paths: torch.Tensor) -> torch.Tensor | None:
        return None if self.cost is None else self.cost(paths.reshape(1, -1))[0]

    def predicted_arch(self, arch: tuple[int, ...]) -> float | None:
        if self.cost is None:
            return None
        with torch.no_grad():
            return float(self.predict(arch_onehot(arch, self.space.n_ops, self.alpha)))

    def search(self, data: Any, bar: Progress | None) -> _Run:
        p, ctx = self.p, self.ctx
        warmup = p._warmup()
        steps_per_epoch = math.ceil(math.ceil(len(data) / ctx.world) / p.batch_size)
        w_opt = torch.optim.SGD(self.net.parameters(), lr=p.w_lr, momentum=p.w_momentum,
                                weight_decay=p.w_weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=p.epochs * steps_per_epoch, eta_min=0.0)
        alpha_steps, done = (p.epochs - warmup) * steps_per_epoch, 0
        self.epochs_log.append(self._epoch_row(-1, None))  # α before the search: uniform
        for epoch in range(p.epochs):
            self.net.train()
            for x, y in batches(data, shard_indices(len(data), ctx.rank, ctx.world, p.seed, epoch), p.batch_size):
                at = done if epoch >= warmup else None
                step = _Step(at, phi_at(at, alpha_steps, p.phi0) if p.identity else 0.0,
                             tau_at(at, alpha_steps, p.tau0, p.tau_end))
                self._iteration(x.to(self.device), y.to(self.device), step, w_opt)
                sched.step()
                done += int(at is not None)
            broadcast_(self.alpha.data, ctx)  # guards against any drift; the ranks already agree
            self.epochs_log.append(self._epoch_row(epoch, self.log[-1] if self.log else None))
            if bar is not None:
                bar.advance(self.epochs_log[-1])
        self.arch = derive_arch(self.alpha)
        self.predicted = self.predicted_arch(self.arch)
        return self

    def _epoch_row(self, epoch: int, last: dict[str, Any] | None) -> dict[str, Any]:
        """α's state after `epoch` (-1: before the search) and the last step's τ, φ and CE."""
        arch = derive_arch(self.alpha)
        return {"epoch": epoch, **{k: None if last is None else last[k] for k in ("tau", "phi", "ce")},
                "arch_argmax": list(arch), "predicted_argmax": self.predicted_arch(arch),
                "alpha_softmax": torch.softmax(self.alpha.detach(), -1).cpu().tolist()}

    def _iteration(self, x: torch.Tensor, y: torch.Tensor, step: _Step, w_opt: torch.optim.Optimizer) -> None:
        """Algorithm 1 on one batch: |O| sub-networks, each forward and backward (gradients add up), one step.

        The sub-networks share the sampling graph (α → masked, renormalised P^i), so each backward stops at its
        own one-hot (a leaf) and the one-hots' gradients go through the sampling graph to α once at the end:
        the exact gradient of Σᵢ Lᵢ, with one sub-network's activations alive at a time."""
        p, searching = self.p, step.alpha_step is not None
        samples = ordered_samples(self.alpha if searching else self.alpha.detach(), step.tau, self.gen)
        w_opt.zero_grad(set_to_none=True)
        self.alpha.grad = None
        ce_sum, costs, leaves = 0.0, [], []
        for i, sample in enumerate(samples):
            paths = sample.detach().requires_grad_(searching)
            leaves.append(paths)
            last = i == len(samples) - 1
            sync = self.model.no_sync() if self.ctx.active and not last else contextlib.nullcontext()
            with sync:
                ce = F.cross_entropy(self.model(x, paths, step.phi), y)
                loss = ce
                if searching and self.cost is not None:
                    lat = self.predict(paths)
                    costs.append(float(lat.detach()))
                    if self.beta:
                        loss = loss + self.beta * lat
                loss.backward()
            ce_sum += ce.item()
            self.counts += paths.detach().round().long().cpu()
        self.iterations += 1
        if searching:  # the one-hots' gradients through the sampling graph to α
            grads = [leaf.grad if leaf.grad is not None else torch.zeros_like(leaf) for leaf in leaves]
            torch.autograd.backward(samples, grads)
        if p.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), p.grad_clip)
        w_opt.step()
        grad_norm = None
        if searching:
            grad = self.alpha.grad if self.alpha.grad is not None else torch.zeros_like(self.alpha)
            stats = all_reduce_mean_(torch.cat([grad.reshape(-1), torch.tensor([ce_sum], device=grad.device)]),
                                     self.ctx)
            self.alpha.grad = stats[:-1].reshape_as(self.alpha).clone()
            ce_sum = float(stats[-1])
            grad_norm = float(self.alpha.grad.norm())
            self.a_opt.step()
        arch = derive_arch(self.alpha)
        self.log.append({"step": len(self.log) + 1, "alpha_step": step.alpha_step, "tau": step.tau, "phi": step.phi,
                         "ce": ce_sum, "alpha_grad_norm": grad_norm, "arch_argmax": list(arch),
                         "predicted_argmax": self.predicted_arch(arch),
                         "predicted_sampled_mean": sum(costs) / len(costs) if costs else None})

    def fairness(self) -> dict[str, Any]:
        """How often each (layer, op) was trained: `iterations` times each when the sampling is fair."""
        c = self.counts
        return {"iterations": self.iterations, "min": int(c.min()), "max": int(c.max()),
                "equal": bool((c == self.iterations).all())}

    def summary(self, target: float | None) -> dict[str, Any]:
        return {"beta": self.beta, "arch": list(self.arch), "arch_id": self.space.arch_id(self.arch),
                "predicted": self.predicted,
                "error_vs_target": None if target is None or self.predicted is None else
                self.predicted / float(target) - 1.0}


def _heldout_accuracy(run: _Run, train_data: Any, data: Any, batch_size: int) -> float:
    """The found network's accuracy (%) on held-out data through a copy of the trained supernet (φ = 0, its path
    only), batch norm re-estimated along the path on training images first: the search's running statistics
    mix every path and φ, and left the path at chance (7-12% on the digits proxy, 36% re-estimated)."""
    import copy

    from hwsearch.proxy_check import path_accuracy

    return path_accuracy(copy.deepcopy(run.net), run.space, run.arch, data, calibration_data=train_data,
                         batch_size=batch_size)


def _describe(row: dict[str, Any]) -> str:
    pred = row.get("predicted_argmax")
    return f"CE={row['ce']:.3g}" + ("" if pred is None else f" pred={pred:.3g}")


def _choices(p: SurgeNAS, reach: Any) -> dict[str, Any]:
    return {"sampling": "ordered: |O| sub-networks per iteration without replacement (Algorithm 1), each forward "
                        "and backward on the same batch, one SGD and one Adam step",
            "identity": ("phi*X on every layer whose output has its input's shape (MBConv: not the first layer of a "
                         "stage; NB201: every edge, as (O(X) + phi*X)/(1 + phi))") if p.identity else "off (ablation)",
            "phi": f"{p.phi0} in the warm-up, then linear to 0 over the alpha-steps" if p.identity else None,
            "tau": f"{p.tau0} in the warm-up, then geometric per alpha-step to {p.tau_end}",
            "alpha_optimizer": f"Adam lr {p.alpha_lr}, betas (0.5, 0.999), weight decay {p.alpha_weight_decay}",
            "warmup_epochs": p._warmup(),
            "beta": "per predictor unit: loss = sum_i CE_i + beta * LAT(path_i)",
            "target": None if p.target is None else
            {"method": "bisection on beta, one complete search per trial (beta 0, then +-1/T, x4 away from 0 to "
                       "bracket, then geometric midpoints, 0 standing for +-1e-4/T)", "max_trials": p.max_trials,
             "tolerance": p.target_tolerance,
             "reachable": None if reach is None else reach.to_dict()}}
