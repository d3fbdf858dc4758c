"""Cost counts of a network: FLOPs, parameters, memory accesses and arithmetic intensity.

Definitions follow the thesis (eq. 3.18-3.20): FLOPs are multiply-accumulates (no factor 2) and "MACs"
there means memory accesses in the ShuffleNetV2 sense (elements read or written: input feature map,
output feature map, weights). Only Conv2d and Linear layers are counted, as in the thesis; pooling,
batch norm, activations and additions are treated as free. Counting runs the module once with hooks, so
any space gets costs without writing a per-op formula, and ops that a builder skips are not counted.
`layer_costs` keeps each layer's entry (what `edgeprof costs` prints); `count_costs` is their sum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads when a module is counted, not with the formulas
    import torch
    from torch import nn

    from spaces.base import SearchSpace


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


def layer_kind(groups: int, in_channels: int) -> str:
    """'conv', 'depthwise' (one group per input channel) or 'group' (grouped 1x1/kxk, e.g. FBNet's _g2)."""
    if groups <= 1:
        return "conv"
    return "depthwise" if groups == in_channels else "group"


def layer_costs(module: nn.Module, input_shape: Sequence[int]) -> list[dict[str, Any]]:
    """One entry per Conv2d / Linear call when `module` runs once on zeros of `input_shape` (batch 1).

    Hooks see the layers a builder actually runs, in execution order, with their real input and output
    shapes (strides, padding and skipped ops included), so the per-layer figures need no per-space formula.
    Each entry: name (module path), kind, in_shape and out_shape (C, H, W; a Linear's are its feature
    vectors), kernel, stride (None for a Linear), groups, flops, mem_access, intensity (eq. 3.18-3.19).
    """
    import torch
    from torch import nn

    if len(input_shape) < 1 or input_shape[0] != 1:
        raise ValueError(f"layer_costs: input_shape must have batch 1, got {tuple(input_shape)}")
    layers: list[dict[str, Any]] = []

    def entry(name: str, kind: str, in_shape: Sequence[int], out_shape: Sequence[int], kernel: Any,
              stride: Any, groups: int, flops: int, mem: int) -> dict[str, Any]:
        return {"name": name, "kind": kind, "in_shape": [int(d) for d in in_shape],
                "out_shape": [int(d) for d in out_shape], "kernel": kernel, "stride": stride, "groups": groups,
                "flops": flops, "mem_access": mem, "intensity": flops / mem if mem else 0.0}

    def on_conv(name: str) -> Callable[..., None]:
        def hook(layer: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            in_shape, out_shape = inputs[0].shape[1:], output.shape[1:]
            flops, mem = conv_costs(in_shape, out_shape, layer.kernel_size, layer.groups)
            layers.append(entry(name, layer_kind(layer.groups, layer.in_channels), in_shape, out_shape,
                                list(layer.kernel_size), list(layer.stride), layer.groups, flops, mem))
        return hook

    def on_linear(name: str) -> Callable[..., None]:
        def hook(layer: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            rows = inputs[0].numel() // layer.in_features
            flops, mem = linear_costs(layer.in_features, layer.out_features, rows)
            layers.append(entry(name, "linear", inputs[0].shape[1:], output.shape[1:], None, None, 1, flops, mem))
        return hook

    handles = []
    for name, layer in module.named_modules():
        if isinstance(layer, nn.Conv2d):
            handles.append(layer.register_forward_hook(on_conv(name)))
        elif isinstance(layer, nn.Linear):
            handles.append(layer.register_forward_hook(on_linear(name)))
    try:
        with torch.no_grad():
            module(torch.zeros(tuple(input_shape)))
    finally:
        for handle in handles:
            handle.remove()
    return layers


def total_costs(layers: Sequence[dict[str, Any]], params: int) -> dict[str, float]:
    """{"flops", "params", "mem_access", "intensity"} of a network from its `layer_costs`: the network's
    intensity is total FLOPs over total memory accesses, not a mean of the layers' ratios."""
    flops = sum(layer["flops"] for layer in layers)
    mem = sum(layer["mem_access"] for layer in layers)
    return {"flops": flops, "params": params, "mem_access": mem, "intensity": flops / mem if mem else 0.0}


def count_costs(module: nn.Module, input_shape: Sequence[int]) -> dict[str, float]:
    """Run `module` once on zeros of `input_shape` (batch 1) and sum the Conv2d and Linear costs.

    Returns {"flops", "params", "mem_access", "intensity"}; params counts every parameter (batch-norm
    scale and shift included, running statistics excluded).
    """
    if len(input_shape) < 1 or input_shape[0] != 1:
        raise ValueError(f"count_costs: input_shape must have batch 1, got {tuple(input_shape)}")
    return total_costs(layer_costs(module, input_shape), sum(p.numel() for p in module.parameters()))


def arch_costs(space: SearchSpace, arch: Sequence[int]) -> dict[str, Any]:
    """{"layers": layer_costs, "totals": count_costs} of one arch of `space` from a single build and run
    (what `edgeprof costs` prints); each layer also has its `part` (`space.layer_label`), and the totals
    equal `space.costs(arch)`."""
    module = space.build(arch)
    layers = layer_costs(module, space.input_shape_of(arch, 1))
    for layer in layers:  # the space's own name for the part a layer belongs to ("L03:k5e6", "cell1.0")
        layer["part"] = space.layer_label(arch, layer["name"]) if layer["name"] else ""
    return {"layers": layers, "totals": total_costs(layers, sum(p.numel() for p in module.parameters()))}
