"""Batch training efficiency (BTE, thesis Definition 4.1) and training speed estimation (TSE, Ru et al. 2021):
few-epoch training proxies of a network's accuracy, computed from a per-batch loss log.

A candidate is trained E epochs (default 3) on N fixed mini-batches, no shuffling and no augmentation, so
batch n is the same images in the same order every epoch. With L_e(n) the loss of batch n at epoch e,

    BTE = Σ_n Π_{e=1}^{E-1} (L_e(n) - L_{e+1}(n)) / L_e(n)      (higher is better)
    TSE = Σ_e Σ_n L_e(n)                                          (lower is better)

What the thesis leaves open, and what this module does:

- (a) Which loss. `loss_log` records the *logged* training loss by default: the loss of batch n computed in
  its own training step of epoch e, before that step's update (what TSE uses; free, no extra pass). With
  `reevaluate=True` it also runs every batch forward after each epoch (no grad, the same train-mode BN) and
  row e is the loss of the network as it stands after epoch e: one forward pass over the data per epoch
  more (about a third of a training epoch). `loss_logs` returns both from one training run.
- (b) Negative factors (batch n's loss rose between two epochs). `negative` picks the rule:
  "zero": a batch with any negative factor contributes 0 (a rise cancels the batch);
  "signed": the product of the factors' magnitudes, negative if any factor is negative, so two rises never
  make a gain (the default); "literal": the plain product, Definition 4.1 read as written.
  Measured (benchmarks/bte_correlation.py, 200 NB201 cells, digits, 3 epochs): at the default lr no batch
  of any cell rose, so the three rules gave the same ranks; at lr 0.2 (40 cells) 8-15 % of the batches
  rose, none twice, "zero" led "signed" (= "literal" there) by <= 0.01 in ρ, well inside the sampling
  error (~0.13). The data cannot choose, so the default is picked on principle: "signed" keeps how much a
  batch worsened (where "zero" scores a rising batch like a flat one) and never rewards two rises (where
  "literal" does).
  With E = 2 (one factor) "signed" and "literal" agree; "zero" clips a batch's rise to 0.
- (c) Optimiser: SGD, momentum 0.9, weight decay 5e-4, constant learning rate (default 0.05), no schedule,
  no warm-up, no gradient clipping, mean cross-entropy. The constant rate makes epochs comparable, and
  makes the first E' rows of an E-epoch log exactly the log of an E'-epoch run (so one log scores every
  budget E' <= E). The last incomplete mini-batch is dropped, so every L_e(n) averages the same count.
- (d) Divergence: a log with a non-finite loss (NaN or inf: the training diverged) scores BTE = -inf and
  TSE = +inf, i.e. ranked last by both (proxy_eval's correlations keep ±inf). `loss_log` stops at the end
  of the first epoch with a non-finite loss and fills the rest with NaN. A logged loss of exactly 0 (a
  batch fitted to float precision) is recorded as `MIN_LOSS`, so the ratio stays defined.

The pure functions (`bte`, `tse`, `check_losses`) need only numpy; `loss_log` imports torch when called.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from spaces.errors import UserInputError

if TYPE_CHECKING:
    import torch
    from torch import nn

NEGATIVE_RULES: tuple[str, ...] = ("zero", "signed", "literal")
DEFAULT_NEGATIVE = "signed"
DEFAULT_EPOCHS = 3
DEFAULT_LR = 0.05
DEFAULT_MOMENTUM = 0.9
DEFAULT_WEIGHT_DECAY = 5e-4
MIN_LOSS = 1e-12


# --- pure functions on a loss log [E, N] ---------------------------------------------------------------------

def check_losses(losses: Any, min_epochs: int = 2) -> np.ndarray:
    """`losses` as a float64 array [E, N] (E epochs >= `min_epochs`, N >= 1 batches), or UserInputError saying
    what is wrong. NaN and ±inf are allowed (a diverged run, scored by the divergence rule); a finite loss
    must be positive (a cross-entropy is; a 0 would make the ratio undefined)."""
    try:
        arr = np.asarray(losses, dtype=float)
    except (TypeError, ValueError) as e:
        raise UserInputError(f"the loss log must be numbers shaped [epochs, batches]: {e}") from None
    if arr.ndim != 2:
        raise UserInputError(f"the loss log must be 2-D [epochs, batches], got shape {list(arr.shape)}")
    if arr.shape[0] < min_epochs:
        raise UserInputError(f"the loss log needs at least {min_epochs} epochs (rows), got {arr.shape[0]} "
                             f"(shape {list(arr.shape)})")
    if arr.shape[1] < 1:
        raise UserInputError(f"the loss log has no batches (shape {list(arr.shape)})")
    finite = arr[np.isfinite(arr)]
    if finite.size and finite.min() <= 0:
        e, n = np.argwhere(np.isfinite(arr) & (arr <= 0))[0]
        raise UserInputError(f"losses must be positive, got {arr[e, n]!r} at epoch {e + 1}, batch {n + 1} "
                             "(BTE divides by the loss)")
    return arr


def factors(losses: Any) -> np.ndarray:
    """The relative improvements (L_e(n) - L_{e+1}(n)) / L_e(n), shaped [E-1, N] (finite logs only)."""
    arr = check_losses(losses)
    return (arr[:-1] - arr[1:]) / arr[:-1]


def per_batch(losses: Any, negative: str = DEFAULT_NEGATIVE) -> np.ndarray:
    """Each batch's term of BTE ([N]) under the `negative` rule (see the module docstring)."""
    if negative not in NEGATIVE_RULES:
        raise UserInputError(f"negative must be one of {', '.join(NEGATIVE_RULES)}, got {negative!r}")
    f = factors(losses)
    prod = np.prod(f, axis=0)
    any_negative = (f < 0).any(axis=0)
    if negative == "literal":
        return prod
    if negative == "zero":
        return np.where(any_negative, 0.0, prod)
    return np.where(any_negative, -np.abs(prod), np.abs(prod))


def bte(losses: Any, negative: str = DEFAULT_NEGATIVE) -> float:
    """BTE of a loss log [E, N] (E >= 2): Σ_n Π_e relative improvement, higher is better; -inf when a loss
    is not finite (diverged)."""
    arr = check_losses(losses)
    if negative not in NEGATIVE_RULES:
        raise UserInputError(f"negative must be one of {', '.join(NEGATIVE_RULES)}, got {negative!r}")
    if not np.isfinite(arr).all():
        return -math.inf
    return float(per_batch(arr, negative).sum())


def tse(losses: Any) -> float:
    """TSE of a loss log [E, N] (E >= 1): the sum of every training loss, lower is better; +inf when a loss
    is not finite (diverged)."""
    arr = check_losses(losses, min_epochs=1)
    if not np.isfinite(arr).all():
        return math.inf
    return float(arr.sum())


def budgets(losses: Any, negative: Sequence[str] = NEGATIVE_RULES) -> dict[int, dict[str, float]]:
    """BTE under each rule and TSE at every budget E' = 2..E from one log (its first E' rows: with a constant
    learning rate they are what an E'-epoch run logs): {E': {"bte_<rule>": v, ..., "tse": v}}."""
    arr = check_losses(losses)
    return {e: {**{f"bte_{r}": bte(arr[:e], r) for r in negative}, "tse": tse(arr[:e])}
            for e in range(2, arr.shape[0] + 1)}


# --- training: the loss log ----------------------------------------------------------------------------------

def _check_train(epochs: int, batch_size: int, lr: float, momentum: float, weight_decay: float,
                 max_batches: int | None) -> None:
    def positive_int(name: str, v: Any, least: int) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise UserInputError(f"{name} must be an int >= {least}, got {v!r}")

    positive_int("epochs", epochs, 1)
    positive_int("batch_size", batch_size, 1)
    if max_batches is not None:
        positive_int("max_batches", max_batches, 1)
    for name, v, low in (("lr", lr, 0.0), ("momentum", momentum, 0.0), ("weight_decay", weight_decay, 0.0)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < low:
            raise UserInputError(f"{name} must be a finite number >= {low:g}, got {v!r}")
    if lr == 0:
        raise UserInputError("lr must be > 0 (nothing would train)")


def loss_logs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = DEFAULT_EPOCHS,
              batch_size: int = 64, lr: float = DEFAULT_LR, momentum: float = DEFAULT_MOMENTUM,
              weight_decay: float = DEFAULT_WEIGHT_DECAY, seed: int = 0, max_batches: int | None = None,
              reevaluate: bool = False) -> dict[str, Any]:
    """Train a copy of `model` (the model itself is left untouched) for `epochs` on the fixed mini-batches
    x[n*bs:(n+1)*bs] (the last incomplete one dropped; the first `max_batches` only), SGD as in the module
    docstring, and return {"logged": [epochs, N]} and, with `reevaluate`, {"reevaluated": [epochs, N]} (the
    loss of every batch after each epoch, one extra forward pass over the data per epoch), with the seconds
    spent training ("train_s") and re-evaluating ("reevaluate_s", 0 without it).

    Deterministic under `seed` (it seeds torch's RNG for anything stochastic in the network, restoring the
    caller's RNG afterwards). Runs on the model's device; gradients on even under an outer no_grad."""
    import copy
    import time

    import torch
    import torch.nn.functional as F

    _check_train(epochs, batch_size, lr, momentum, weight_decay, max_batches)
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        raise UserInputError(f"x must be [N, ...] and y [N] of the same N, got {list(x.shape)} and {list(y.shape)}")
    n = len(x) // batch_size
    if max_batches is not None:
        n = min(n, max_batches)
    if n < 1:
        raise UserInputError(f"{len(x)} training images make no full mini-batch of {batch_size}")
    net = copy.deepcopy(model)
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), torch.float32)
    xs = x[: n * batch_size].to(device=device, dtype=dtype)
    ys = y[: n * batch_size].to(device=device, dtype=torch.long)
    top_label = int(y[: n * batch_size].max())
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise UserInputError("the network has no trainable parameters")
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    logged = np.full((epochs, n), np.nan)
    again = np.full((epochs, n), np.nan) if reevaluate else None
    cpu_rng = torch.random.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    torch.manual_seed(int(seed))
    t_train = t_again = 0.0
    try:
        with torch.enable_grad():
            net.train()
            for e in range(epochs):
                t0 = time.perf_counter()
                step_losses = []
                for i in range(n):
                    xb, yb = xs[i * batch_size:(i + 1) * batch_size], ys[i * batch_size:(i + 1) * batch_size]
                    out = net(xb)
                    if e == 0 and i == 0 and (out.ndim != 2 or out.shape[1] <= top_label):
                        raise UserInputError(f"the network gives outputs {list(out.shape)} but the labels go up "
                                             f"to {top_label}: it needs [batch, classes > {top_label}]")
                    loss = F.cross_entropy(out, yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    step_losses.append(loss.detach())
                logged[e] = torch.stack(step_losses).double().cpu().numpy()  # one sync per epoch
                t1 = time.perf_counter()
                t_train += t1 - t0
                if again is not None:
                    with torch.no_grad():
                        again[e] = torch.stack([F.cross_entropy(net(xs[i * batch_size:(i + 1) * batch_size]),
                                                                ys[i * batch_size:(i + 1) * batch_size])
                                                for i in range(n)]).double().cpu().numpy()
                    t_again += time.perf_counter() - t1
                if not np.isfinite(logged[e]).all():
                    break  # diverged: the rest stays NaN, scored -inf
    finally:
        torch.random.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    out: dict[str, Any] = {"logged": _floor(logged), "train_s": t_train, "reevaluate_s": t_again}
    if again is not None:
        out["reevaluated"] = _floor(again)
    return out


def _floor(arr: np.ndarray) -> np.ndarray:
    """A loss of exactly 0 (a batch fitted to float precision) as MIN_LOSS, so that BTE's ratio is defined."""
    return np.where(arr == 0, MIN_LOSS, arr)


def loss_log(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = DEFAULT_EPOCHS,
             batch_size: int = 64, lr: float = DEFAULT_LR, momentum: float = DEFAULT_MOMENTUM,
             weight_decay: float = DEFAULT_WEIGHT_DECAY, seed: int = 0, max_batches: int | None = None,
             reevaluate: bool = False) -> np.ndarray:
    """The loss log [epochs, N] of training a copy of `model` on fixed batches (see `loss_logs`): the logged
    training loss, or with `reevaluate` the loss of every batch re-evaluated after each epoch."""
    logs = loss_logs(model, x, y, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                     weight_decay=weight_decay, seed=seed, max_batches=max_batches, reevaluate=reevaluate)
    return logs["reevaluated" if reevaluate else "logged"]


def bte_score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = DEFAULT_EPOCHS,
              batch_size: int = 64, negative: str = DEFAULT_NEGATIVE, **train: Any) -> float:
    """BTE of `model` trained `epochs` (>= 2) on (x, y) in fixed mini-batches of `batch_size`: `loss_log`
    then `bte`. `train`: lr, momentum, weight_decay, seed, max_batches, reevaluate."""
    if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs < 2:
        raise UserInputError(f"BTE compares consecutive epochs: epochs must be >= 2, got {epochs}")
    if negative not in NEGATIVE_RULES:
        raise UserInputError(f"negative must be one of {', '.join(NEGATIVE_RULES)}, got {negative!r}")
    return bte(loss_log(model, x, y, epochs=epochs, batch_size=batch_size, **train), negative)
