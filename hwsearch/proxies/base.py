"""The one interface of every zero-shot accuracy proxy, the batches they read, and scoring archs of a space.

A proxy scores an untrained network: `score(model, batch) -> float`. `data_free` proxies (TPC, #params,
#FLOPs, SynFlow) ignore the batch's images (SynFlow reads only its shape); the others read `batch.x` and,
where `needs_labels`, `batch.y`. `higher_is_better` is False for the NTK condition number only: rank by
`oriented(value)` (the value, or its negation) so that higher always means "predicted more accurate".

We have no CIFAR images, so the data-dependent proxies take their batch from a stand-in (`make_batch`):
scikit-learn's digits upsampled to the network's input ("digits") or Gaussian noise with random labels
("gaussian"); the batch records which, and every result that uses one says so.

`score_arch` builds an arch of a space with a seed of its own (so a proxy's value is reproducible: the same
seed, the same init, the same batch, the same number), scores it, and turns any failure into a ProxyFailure
naming the proxy, the network and why, so that one failing network does not stop the others
(`score_archs` records NaN for it and goes on). A proxy may score many archs of a space at once without
building them (`fast_scores`: TPC, #params and #FLOPs from per-layer tables), which the searches use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from spaces.errors import RuntimeFailure, UserInputError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from spaces import SearchSpace

BATCH_KINDS: tuple[str, ...] = ("digits", "gaussian")


class ProxyFailure(RuntimeFailure):
    """A proxy could not score a network; the message names the proxy, the network and the reason."""


@dataclass(frozen=True)
class ProxyBatch:
    """Inputs [B, C, H, W] and integer labels [B] (in 0..num_classes-1), and what they are (`kind`: digits or
    gaussian; `source`: a sentence for reports)."""

    x: torch.Tensor
    y: torch.Tensor
    kind: str
    source: str
    num_classes: int

    @property
    def size(self) -> int:
        return int(self.x.shape[0])

    def describe(self) -> dict[str, Any]:
        """JSON-ready: kind, source, batch size and input shape."""
        return {"kind": self.kind, "source": self.source, "batch_size": self.size,
                "input_shape": list(self.x.shape[1:])}


def make_batch(kind: str, input_shape: Sequence[int], batch_size: int = 64, seed: int = 0,
               num_classes: int = 10) -> ProxyBatch:
    """A stand-in batch for the data-dependent proxies (`kind` "digits" or "gaussian"), of `batch_size` images
    shaped like `input_shape` ([1, C, H, W] or [C, H, W]), drawn with `seed`.

    digits: scikit-learn's 8x8 digits, bilinearly upsampled, replicated to C channels and standardised (the
    search proxy task's images); labels are the digits (0..9, taken modulo `num_classes`). gaussian: N(0, 1)
    images and uniform random labels in 0..num_classes-1."""
    import torch

    if kind not in BATCH_KINDS:
        raise UserInputError(f"batch kind must be one of {', '.join(BATCH_KINDS)}, got {kind!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise UserInputError(f"the proxy batch size must be an int >= 2 (Jacob_cov and NASWOT compare samples), "
                             f"got {batch_size!r}")
    shape = tuple(int(s) for s in input_shape)[-3:]
    c, h, w = shape
    gen = torch.Generator().manual_seed(int(seed))
    if kind == "gaussian":
        x = torch.randn((batch_size, c, h, w), generator=gen)
        y = torch.randint(0, num_classes, (batch_size,), generator=gen)
        return ProxyBatch(x, y, kind, f"Gaussian noise N(0, 1), {batch_size}x{c}x{h}x{w}, random labels",
                          num_classes)
    from hwsearch.data import digits_proxy

    if h != w:
        raise UserInputError(f"the digits batch needs square inputs, got {h}x{w}")
    data, held_out = digits_proxy(resolution=h, channels=c, seed=int(seed))
    images = torch.cat([data.images, held_out.images])
    labels = torch.cat([data.labels, held_out.labels])
    pick = torch.randperm(len(labels), generator=gen)[:batch_size]
    if len(pick) < batch_size:
        raise UserInputError(f"the digits batch holds at most {len(labels)} images, asked for {batch_size}")
    return ProxyBatch(images[pick].contiguous(), labels[pick] % num_classes, kind,
                      f"sklearn digits 8x8 upsampled to {c}x{h}x{w}, {batch_size} images", num_classes)


class Proxy:
    """Base of every proxy (scikit-learn style: parameters in __init__, nothing fitted).

    Subclasses set the class attributes and implement `score`; `fast_scores` is optional."""

    name: ClassVar[str] = ""
    data_free: ClassVar[bool] = False
    needs_labels: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True
    # True for the training proxies (BTE, TSE): they train a copy for a few epochs, seconds per network, so
    # a caller may size its budget (or warn) before scoring thousands of networks with one.
    trains: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    def score(self, model: nn.Module, batch: ProxyBatch) -> float:
        """The proxy's value for the untrained `model` (which it may modify: give it a fresh copy)."""
        raise NotImplementedError

    def fast_scores(self, space: SearchSpace, archs: Sequence[Sequence[int]]) -> np.ndarray | None:
        """Values of many archs of `space` at once without building them, or None (build and `score` each)."""
        return None

    def oriented(self, values: Any) -> Any:
        """Values turned so that higher means "predicted more accurate" (the negation where lower is better)."""
        return values if self.higher_is_better else -np.asarray(values, dtype=float)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: the name, the flags and the parameters (what a result records)."""
        params = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return {"name": self.name, "data_free": self.data_free, "needs_labels": self.needs_labels,
                "higher_is_better": self.higher_is_better, "params": params}


def arch_seed(seed: int, arch_id: str) -> int:
    """The init seed of one network in a proxy run: the run's seed mixed with the arch id (stable across
    processes, unlike hash())."""
    import zlib

    return (int(seed) * 1_000_003 + zlib.crc32(arch_id.encode())) % (2**31 - 1)


def build_for_proxy(space: SearchSpace, arch: Sequence[int], seed: int = 0) -> nn.Module:
    """A fresh network of `arch` with PyTorch's default initialisation drawn from `arch_seed(seed, id)`, in
    train mode (the proxies' reference code scores networks in train mode). Torch's global RNG is reseeded."""
    import torch

    torch.manual_seed(arch_seed(seed, space.arch_id(arch)))
    module = space._make_module(space.validate(arch))
    return module.train()


def score_arch(proxy: Proxy, space: SearchSpace, arch: Sequence[int], batch: ProxyBatch | None,
               seed: int = 0, build: Callable[..., nn.Module] = build_for_proxy) -> float:
    """`proxy`'s value of `arch` (built by `build(space, arch, seed)`), or ProxyFailure naming the network."""
    arch_id = space.arch_id(arch)
    if batch is None and not proxy.data_free:
        raise UserInputError(f"proxy {proxy.name!r} reads data: give it a batch (make_batch)")
    try:
        value = float(proxy.score(build(space, arch, seed), batch))
    except ProxyFailure:
        raise
    except (RuntimeError, ValueError, ArithmeticError, np.linalg.LinAlgError) as e:
        raise ProxyFailure(f"proxy {proxy.name!r} failed on {space.name} network {arch_id}: "
                           f"{type(e).__name__}: {e}") from e
    if math.isnan(value):
        raise ProxyFailure(f"proxy {proxy.name!r} gave NaN on {space.name} network {arch_id}")
    return value


def score_archs(proxy: Proxy, space: SearchSpace, archs: Sequence[Sequence[int]], batch: ProxyBatch | None = None,
                seed: int = 0, on_failure: Callable[[ProxyFailure], None] | None = None,
                on_scored: Callable[[int, float], None] | None = None) -> np.ndarray:
    """Values of `archs` (float array, NaN where the proxy failed: `on_failure` hears why, and the others go
    on). `fast_scores` when the proxy has it for this space, else one build and score per arch
    (`on_scored(i, value)` after each)."""
    fast = proxy.fast_scores(space, archs)
    if fast is not None:
        return np.asarray(fast, dtype=float).reshape(-1)
    out = np.full(len(archs), np.nan)
    for i, arch in enumerate(archs):
        try:
            out[i] = score_arch(proxy, space, arch, batch, seed)
        except ProxyFailure as e:
            if on_failure is None:
                raise
            on_failure(e)
        if on_scored is not None:
            on_scored(i, float(out[i]))
    return out
