"""LightNAS's training loop (torch): the supernet, α, λ and their optimisers, the two kinds of epoch, and what
a finished search leaves on the search object. `hwsearch.lightnas` holds the search's parameters and the
method (thesis ch. 4, the choices made here); it imports this module only when a search runs, so declaring
a search, or building its CLI options, needs no torch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from hwsearch.cost import (
    as_cost_model,
    is_ensemble,
    known_archs,
    member_predictions,
    reachable_range,
    refine_arch,
)
from hwsearch.data import batches, shard_indices, split
from hwsearch.distributed import DistContext, all_reduce_mean_, broadcast_, rank_device
from hwsearch.gumbel import arch_onehot, derive_arch, hard_gumbel, tau_schedule
from hwsearch.lightnas import lambda_step, refine_settings
from hwsearch.result import LightNASResult
from hwsearch.search_params import search_space
from hwsearch.supernet import build_supernet
from hwsearch.supernet_search import run_on_ranks
from spaces import SearchSpace
from spaces.errors import UserInputError

if TYPE_CHECKING:
    from hwsearch.lightnas import LightNAS


def run_search(p: LightNAS, train_data: Any, val_data: Any) -> None:
    """Run the search `p` describes (validated by the caller); under torchrun it joins the process group."""
    run_on_ranks(p, _fit, train_data, val_data)


def _setup(p: LightNAS, ctx: DistContext) -> tuple[SearchSpace, torch.device, Any]:
    cost = as_cost_model(p.predictor, p.metric)
    if (p.refine_kappa or 0) > 0 and not is_ensemble(cost):
        raise UserInputError(f"refine_kappa={p.refine_kappa:g} penalises the disagreement of an ensemble's members, "
                             f"but the predictor ({cost.source}) is not an ensemble; train one with `edgeprof "
                             "train mlp-ensemble` or set refine_kappa 0")
    space = search_space("LightNAS", cost, p.space, p.space_config)
    if (p.refine_trust or 0) > 0 and known_archs(cost, space) is None:
        raise UserInputError(f"refine_trust={p.refine_trust:g} measures distance to the archs the predictor was "
                             "trained on, but it does not list them; pass a saved predictor folder (its "
                             "train_archs.json) or set refine_trust 0")
    device = rank_device(p.device, ctx)
    return space, device, cost.to(device)


def _fit(p: LightNAS, train_data: Any, val_data: Any, ctx: DistContext) -> None:
    start = time.perf_counter()
    space, device, cost = _setup(p, ctx)
    target, unit = float(p.target), cost.unit
    reach = reachable_range(cost, space, p.reach_samples, p.seed, device)
    if not reach.lo <= target <= reach.hi:
        raise UserInputError(f"target {target:g} {unit} outside what the space can reach on this device per "
                         f"the predictor: [{reach.lo:.4g}, {reach.hi:.4g}] {unit}")
    if val_data is None and isinstance(train_data, tuple | list) and len(train_data) == 2:
        train_data, val_data = train_data  # a (w-split, α-split) pair, as digits_proxy returns
    elif val_data is None:
        train_data, val_data = split(train_data, 0.8, p.seed)
    for which, data in (("train_data", train_data), ("val_data", val_data)):
        check_data(data, space, which, p.data_resolution)

    run = _Run(p, space, cost, device, ctx, len(train_data))
    warmup = p._warmup()
    bar = _progress(p.progress and ctx.main, p.epochs)
    for epoch in range(p.epochs):
        tau = tau_schedule(epoch, p.epochs, p.tau0, p.tau_decay, p.tau_end)
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
    if p.refine:
        kappa, mu, radius = refine_settings(p.refine_kappa, p.refine_trust, p.refine_radius, is_ensemble(cost),
                                            known_archs(cost, space) is not None)
        arch, refine_info = refine_arch(derived, run.alpha, cost, space, target, p.refine_tolerance,
                                        device, kappa=kappa, radius=radius, mu=mu)
    p.alpha_ = run.alpha.detach().cpu()
    p.arch_, p.lambda_, p.supernet_, p.reach_ = arch, float(run.lam), run.net, reach
    p.cost_model_, p.rank_ = cost, ctx.rank
    p.result_ = LightNASResult(
        search=p.name, space=space.name, space_config=space.config, arch=list(arch),
        arch_id=space.arch_id(arch), target=target, metric=p.metric, unit=unit,
        predicted=run.predicted(arch), reachable=reach.to_dict(), lambda_history=run.lambda_history,
        log=run.log, epochs_log=run.epochs_log,
        data={"name": getattr(train_data, "name", type(train_data).__name__),
              "alpha_split": getattr(val_data, "name", type(val_data).__name__),
              "proxy": bool(getattr(train_data, "proxy", False)),
              "n_w": len(train_data), "n_alpha": len(val_data),
              "resolution": p.data_resolution or space.input_shape(1)[-1]},
        epochs=p.epochs, warmup_epochs=warmup, wall_s=time.perf_counter() - start, seed=p.seed,
        refine=refine_info, derived_arch=list(derived), derived_arch_id=space.arch_id(derived),
        derived_predicted=derived_pred, alpha=p.alpha_.tolist(), params=p._json_params(),
        predictor={"space": cost.space, "space_config": cost.space_config, "source": cost.source,
                   "device": cost.device_name},
        world_size=ctx.world, disagreement=_disagreement(cost, space, arch, device))


def _disagreement(cost: Any, space: SearchSpace, arch: tuple[int, ...], device: torch.device) -> float | None:
    """std/mean of an ensemble predictor's members at `arch` (None for a single predictor)."""
    if not is_ensemble(cost):
        return None
    members = member_predictions(cost, space, [arch], device)[:, 0]
    return float(members.std() / abs(members.mean()))



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


def check_data(data: Any, space: SearchSpace, which: str, resolution: int | None = None) -> None:
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
        raise UserInputError(f"{which} is empty")
    image, _ = data[0]
    expected = tuple(space.input_shape(1)[1:])
    if resolution is not None:
        expected = (expected[0], resolution, resolution)
    if tuple(image.shape) != expected:
        raise UserInputError(f"{which} images are {tuple(image.shape)} but the supernet of space {space.name!r} "
                         f"takes {expected}; load the data at resolution {expected[-1]}")
    classes = getattr(data, "num_classes", None)
    space_classes = getattr(space, "num_classes", None)
    if classes is not None and space_classes is not None and classes > space_classes:
        raise UserInputError(f"{which} has {classes} classes but space {space.name!r} is configured for "
                         f"{space_classes} (num_classes in the space config)")


class Progress:
    """A rich progress bar over epochs, on the main rank only, on stderr: stdout holds the result (--json).
    `describe(row)` says where the search is after each epoch (LightNAS: λ and the prediction)."""

    def __init__(self, epochs: int, name: str = "LightNAS",
                 describe: Callable[[dict[str, Any]], str] | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("eta"),
                            TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self.bar.start()
        self.name = name
        self.describe = describe or (lambda row: f"λ={row['lambda']:+.3f} pred={row['predicted_argmax']:.3g}")
        self.task = self.bar.add_task(name, total=epochs)

    def reset(self, name: str, epochs: int) -> None:
        """Start over (a new search of a series, e.g. one trial of a bisection)."""
        self.name = name
        self.bar.reset(self.task, total=epochs, description=name)

    def advance(self, row: dict[str, Any]) -> None:
        self.bar.update(self.task, advance=1, description=f"{self.name} {self.describe(row)}")

    def close(self) -> None:
        self.bar.stop()


def _progress(enabled: bool, epochs: int) -> Progress | None:
    return Progress(epochs) if enabled else None
