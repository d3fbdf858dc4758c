"""The `conv-probe` space: one convolution layer whose input and output channels are the arch, for channel
sweeps (the Comfort Zone's heat maps, thesis Fig. 3.10).

A probe is a space rather than a separate "model with parameters" record, so it flows through everything a
space already has: content-addressed ONNX and space-package exports, jobs, resumable stores keyed by (space,
config, arch id), costs and encodings. The fixed geometry (H, W, K, stride, the channel grid) is the config;
the arch is (index of the input channels, index of the output channels) into `channels`, so an arch id such
as `i128-o256` reads as the layer it builds and the grid is `channels` x `channels`, row-major.

Default grid: channels 16, 32, 48, 64, 96, 128, 192, 256 at 14 x 14, k 3, stride 1: 64 layers, from
intensity 52.7 (16 -> 16; 80.1 at 16 -> 256) to 167.5 (256 -> 256) by eq. 3.19, through the thesis's worked
example (128 -> 128: 146.2), in 8 x 8 cells a CPU measures in minutes. The thesis does not give its probe's
sizes (spec §5.3 gap); every one of them is a config key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from spaces.base import Arch, InvalidArchError, SearchSpace, check_int
from spaces.errors import UserInputError
from spaces.registry import register_space

if TYPE_CHECKING:
    from torch import nn

NAME = "conv-probe"
DEFAULT_CHANNELS: tuple[int, ...] = (16, 32, 48, 64, 96, 128, 192, 256)


def check_channels(channels: Any) -> tuple[int, ...]:
    """`channels` as a tuple of ints >= 1, strictly increasing (so no repeats), else a UserInputError."""
    if isinstance(channels, str | bytes) or not isinstance(channels, Sequence | np.ndarray) or len(channels) == 0:
        raise UserInputError(f"{NAME}: channels must be a non-empty list of ints, got {channels!r}")
    values = tuple(check_int(NAME, f"channels[{i}]", c) for i, c in enumerate(channels))
    for i in range(1, len(values)):
        if values[i] <= values[i - 1]:
            raise UserInputError(f"{NAME}: channels must be strictly increasing (no repeats), got "
                                 f"channels[{i - 1}] = {values[i - 1]} then channels[{i}] = {values[i]}")
    return values


class ConvProbeSpace(SearchSpace):
    """One k x k convolution (padding k // 2, no bias) at h x w; the arch picks its input and output channels."""

    name = NAME

    def __init__(self, h: int = 14, w: int = 14, k: int = 3, stride: int = 1,
                 channels: Sequence[int] = DEFAULT_CHANNELS) -> None:
        self.h, self.w = check_int(NAME, "h", h), check_int(NAME, "w", w)
        self.k, self.stride = check_int(NAME, "k", k), check_int(NAME, "stride", stride)
        if self.k % 2 == 0:
            raise UserInputError(f"{NAME}: k must be odd (padding k // 2 keeps H x W at stride 1), got {k}")
        self.channels = check_channels(channels)

    @property
    def ops(self) -> tuple[str, ...]:
        """Channel counts as tokens: op j of either layer is `channels[j]`."""
        return tuple(str(c) for c in self.channels)

    @property
    def n_layers(self) -> int:
        return 2  # (input channels, output channels)

    @property
    def config(self) -> dict[str, Any]:
        # a list, not a tuple: the config travels as JSON (store keys, model.json) and must compare equal after
        return {"h": self.h, "w": self.w, "k": self.k, "stride": self.stride, "channels": list(self.channels)}

    def arch_id(self, arch: Sequence[int]) -> str:
        i, o = self.validate(arch)
        return f"i{self.channels[i]}-o{self.channels[o]}"

    def parse(self, arch_id: str) -> Arch:
        if not isinstance(arch_id, str):
            raise InvalidArchError(f"{NAME}: arch id must be a str, got {type(arch_id).__name__}")
        parts = arch_id.split("-")
        if len(parts) != 2:
            raise InvalidArchError(f"{NAME}: arch id must read 'i<in channels>-o<out channels>' "
                                   f"(e.g. 'i128-o256'), got {arch_id!r}")
        return tuple(self._index(part, prefix, what)
                     for part, prefix, what in zip(parts, "io", ("input", "output"), strict=True))

    def _index(self, part: str, prefix: str, what: str) -> int:
        digits = part[1:]
        if not part.startswith(prefix) or not digits.isdigit():
            raise InvalidArchError(f"{NAME}: {what} part {part!r} must read '{prefix}<channels>', e.g. "
                                   f"'{prefix}{self.channels[0]}'")
        if int(digits) not in self.channels:
            raise InvalidArchError(f"{NAME}: {what} channels {int(digits)} ({part!r}) not in the grid: "
                                   f"{', '.join(map(str, self.channels))}")
        return self.channels.index(int(digits))

    def arch_for(self, i_channels: int, o_channels: int) -> Arch:
        """The arch of the layer with these channel counts; UserInputError when either is not in the grid."""
        for label, value in (("input", i_channels), ("output", o_channels)):
            if value not in self.channels:
                raise UserInputError(f"{NAME}: {label} channels {value!r} not in the grid: "
                                     f"{', '.join(map(str, self.channels))}")
        return self.channels.index(i_channels), self.channels.index(o_channels)

    def grid(self) -> list[Arch]:
        """Every arch, row-major: input channels outer, output channels inner (a heat map's rows and columns)."""
        n = len(self.channels)
        return [(i, o) for i in range(n) for o in range(n)]

    def to_graph(self, arch: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Two nodes (input, output feature map), one edge; features: one-hot of each side's channel count."""
        feats = self.to_onehot(arch).reshape(self.n_layers, self.n_ops)
        return np.eye(2, k=1, dtype=np.float32), feats

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        """The input shape of the grid's first (narrowest) layer; a layer's own is `input_shape_of(arch)`."""
        return (check_int(NAME, "batch", batch), self.channels[0], self.h, self.w)

    def input_shape_of(self, arch: Sequence[int], batch: int = 1) -> tuple[int, ...]:
        """(batch, input channels of `arch`, h, w): the arch sets the layer's input channels."""
        return (check_int(NAME, "batch", batch), self.channels[self.validate(arch)[0]], self.h, self.w)

    def _make_module(self, arch: Arch) -> nn.Module:
        """A plain Conv2d, no batch norm, activation or bias: exactly what eq. 3.18 counts, so the measured
        latency and the intensity it is plotted against describe the same operation."""
        from torch import nn

        i, o = self.channels[arch[0]], self.channels[arch[1]]
        return nn.Conv2d(i, o, self.k, stride=self.stride, padding=self.k // 2, bias=False)


@register_space(NAME)
def conv_probe(h: int = 14, w: int = 14, k: int = 3, stride: int = 1,
               channels: Sequence[int] = DEFAULT_CHANNELS) -> ConvProbeSpace:
    """One k x k conv at h x w, input and output channels from the `channels` grid (default 16..256, 8 steps)."""
    return ConvProbeSpace(h=h, w=w, k=k, stride=stride, channels=channels)
