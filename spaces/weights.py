"""Deterministic weight initialisation, so that an arch id alone fixes the network's weights.

Latency does not depend on weight values, but exports must be byte-identical for content addressing and
zero-shot proxies must be reproducible, so weights come from a generator seeded by the arch id and never
from torch's global RNG.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads when weights are initialised, not when an arch id is seeded
    import torch
    from torch import nn


def seed_from_id(arch_id: str) -> int:
    """A 63-bit seed from the sha256 of the arch id (stable across processes, unlike `hash`)."""
    digest = hashlib.sha256(arch_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """Initialise every parameter and buffer of `module` in place, drawing only from `generator`.

    Batch norms get the identity (unit scale, zero shift, zero mean, unit variance), so in eval mode they
    do not rescale; convs therefore get Kaiming-normal in fan-in mode, which keeps activations at unit
    scale through a deep MBConv net (fan-out shrinks them by ~1e-9 over 21 layers). Linears get
    N(0, 0.01); a grafted block's affine activation (spaces/reparam.py) starts as the identity. Any other
    parameterised layer is refused rather than left as uninitialised memory.
    """
    import torch
    from torch import nn

    handled: set[int] = set()
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d | nn.Linear):
                if isinstance(layer, nn.Conv2d):
                    nn.init.kaiming_normal_(
                        layer.weight, mode="fan_in", nonlinearity="relu", generator=generator
                    )
                else:
                    nn.init.normal_(layer.weight, 0.0, 0.01, generator=generator)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
            elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
                layer.reset_parameters()
            elif getattr(layer, "is_channel_affine", False):  # spaces.reparam.ChannelAffine: a = 1, b = 0
                nn.init.ones_(layer.weight)
                nn.init.zeros_(layer.bias)
            else:
                continue
            handled.update(id(t) for t in layer.parameters(recurse=False))
            handled.update(id(t) for t in layer.buffers(recurse=False))
    missed = [
        name for name, t in [*module.named_parameters(), *module.named_buffers()] if id(t) not in handled
    ]
    if missed:
        raise ValueError(f"init_weights: no rule to initialise {', '.join(missed)}")
