"""Forward hooks shared by the activation-reading proxies (NASWOT, Zen-score, NTK): ReLU codes, the pre-GAP
feature map, and BatchNorm's batch statistics.

Module hooks see modules only: a functional `F.relu` or an `x.mean((2, 3))` pooling is invisible to them. The
spaces of this project build every activation and pool as a module (nb201_net, mbconv_net), so the hooks see
them all; a network that has none of what a proxy needs is refused with a message saying so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn


def relu_modules(model: nn.Module) -> list[nn.Module]:
    """Every module whose class name contains "ReLU" (ReLU, ReLU6, LeakyReLU...): NASLib's own test
    (`"ReLU" in str(type(module))`). For all of them the unit is "on" where its input is > 0; for ReLU6 that
    ignores the upper kink at 6, as NASLib does."""
    return [m for m in model.modules() if "ReLU" in type(m).__name__]


@contextmanager
def relu_codes(model: nn.Module, on_code: Callable[[torch.Tensor], None]) -> Iterator[int]:
    """While open, every call of a ReLU-like module hands `on_code` the binary code [B, units] (float, 1 where
    the input is > 0). A forward *pre*-hook reads the input before an inplace ReLU overwrites it (for ReLU
    and ReLU6 the sign is the same after, but the pre-hook does not rely on it). Yields the module count."""
    def pre_hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        on_code((x.detach().reshape(x.shape[0], -1) > 0).to(x.dtype))

    mods = relu_modules(model)
    handles = [m.register_forward_pre_hook(pre_hook) for m in mods]
    try:
        yield len(mods)
    finally:
        for h in handles:
            h.remove()


def _is_global_pool(module: nn.Module, out: torch.Tensor) -> bool:
    from torch import nn

    if not isinstance(module, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
        return False
    return out.dim() == 4 and out.shape[-2:] == (1, 1)


class NoGlobalPoolError(ValueError):
    """The network has no global average pool module, so it has no pre-GAP feature map to read."""


def pre_gap_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of the last global average pool (an AdaptiveAvgPool2d or AvgPool2d whose output is 1x1)
    that `model(x)` calls: Zen-NAS's `forward_pre_GAP`, found without knowing the network's layout. A
    network without one is a NoGlobalPoolError (a pool written as `x.mean((2, 3))` cannot be seen)."""
    from torch import nn

    seen: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if _is_global_pool(module, out):
            seen.append(args[0])

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AvgPool2d))]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    if not seen:
        raise NoGlobalPoolError(f"{type(model).__name__} has no global average pool module (AdaptiveAvgPool2d "
                                f"or AvgPool2d to 1x1), so there is no pre-GAP feature map to read")
    return seen[-1]


def batchnorm_batch_stats(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{BN module name: (batch mean, biased batch variance)} of the statistics each BatchNorm normalises by in
    one train-mode forward of `x` (the model's mode is restored; its running stats move by one step). A BN
    called twice in one forward has two sets of statistics and is refused."""
    import torch
    from torch import nn

    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def make_hook(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            if name in stats:
                raise ValueError(f"BatchNorm {name!r} is called twice in one forward: it has no one statistic")
            t = args[0].detach()
            dims = [d for d in range(t.dim()) if d != 1]
            stats[name] = (t.mean(dims), t.var(dims, unbiased=False))
        return hook

    bns = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    handles = [m.register_forward_pre_hook(make_hook(n)) for n, m in bns]
    was_training = model.training
    try:
        model.train()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return stats
