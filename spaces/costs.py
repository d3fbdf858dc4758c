"""Cost counts of a network: FLOPs, parameters, memory accesses and arithmetic intensity.

Definitions follow the thesis (eq. 3.18-3.20): FLOPs are multiply-accumulates (no factor 2) and "MACs"
there means memory accesses in the ShuffleNetV2 sense (elements read or written: input feature map,
output feature map, weights). Only Conv2d and Linear layers are counted, as in the thesis; pooling,
batch norm, activations and additions are treated as free. Counting runs the module once with hooks, so
any space gets costs without writing a per-op formula, and ops that a builder skips are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads when a module is counted, not with the formulas
    import torch
    from torch import nn


def conv_intensity(h: int, w: int, i: int, o: int, k: int, phi: float = 1.0) -> float:
    """Arithmetic intensity of a stride-1 k x k conv, eq. 3.19, or of its phi-times-wider version, eq. 3.20.

    Intensity(phi) = HWIOK^2 / (HW(I+O)/phi + IOK^2); the thesis uses it to show that widening a layer
    raises intensity, i.e. moves a memory-bound layer towards the compute roof.
    """
    for label, value in (("h", h), ("w", w), ("i", i), ("o", o), ("k", k)):
        if value <= 0:
            raise ValueError(f"conv_intensity: {label} must be positive, got {value}")
    if phi <= 0:
        raise ValueError(f"conv_intensity: phi must be positive, got {phi}")
    flops = h * w * i * o * k * k
    return flops / (h * w * (i + o) / phi + i * o * k * k)


def conv_costs(
    in_shape: Sequence[int], out_shape: Sequence[int], kernel: Sequence[int], groups: int = 1
) -> tuple[int, int]:
    """(FLOPs, memory accesses) of one conv on a single image; shapes are (C, H, W)."""
    c_in, h_in, w_in = in_shape
    c_out, h_out, w_out = out_shape
    weights = (c_in // groups) * c_out * kernel[0] * kernel[1]
    flops = h_out * w_out * weights
    mem = h_in * w_in * c_in + h_out * w_out * c_out + weights
    return flops, mem


def linear_costs(n_in: int, n_out: int, rows: int = 1) -> tuple[int, int]:
    """(FLOPs, memory accesses) of one fully connected layer applied to `rows` vectors."""
    return rows * n_in * n_out, rows * (n_in + n_out) + n_in * n_out


def count_costs(module: nn.Module, input_shape: Sequence[int]) -> dict[str, float]:
    """Run `module` once on zeros of `input_shape` (batch 1) and sum the Conv2d and Linear costs.

    Returns {"flops", "params", "mem_access", "intensity"}; params counts every parameter (batch-norm
    scale and shift included, running statistics excluded).
    """
    import torch
    from torch import nn

    if len(input_shape) < 1 or input_shape[0] != 1:
        raise ValueError(f"count_costs: input_shape must have batch 1, got {tuple(input_shape)}")
    totals = {"flops": 0, "mem_access": 0}

    def on_conv(layer: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        flops, mem = conv_costs(inputs[0].shape[1:], output.shape[1:], layer.kernel_size, layer.groups)
        totals["flops"] += flops
        totals["mem_access"] += mem

    def on_linear(layer: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        rows = inputs[0].numel() // layer.in_features
        flops, mem = linear_costs(layer.in_features, layer.out_features, rows)
        totals["flops"] += flops
        totals["mem_access"] += mem

    handles = []
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            handles.append(layer.register_forward_hook(on_conv))
        elif isinstance(layer, nn.Linear):
            handles.append(layer.register_forward_hook(on_linear))
    try:
        with torch.no_grad():
            module(torch.zeros(tuple(input_shape)))
    finally:
        for handle in handles:
            handle.remove()
    flops, mem = totals["flops"], totals["mem_access"]
    return {
        "flops": flops,
        "params": sum(p.numel() for p in module.parameters()),
        "mem_access": mem,
        "intensity": flops / mem if mem else 0.0,
    }
