"""LightNet++'s channel space (thesis §4.3.5): a per-layer channel scale on top of one LightNAS result.

An arch picks one scale in SCALES = {0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0} for each MBConv layer of a fixed
base network (a LightNAS arch of `mbconv` / `mbconv-small`); `(ONE,) * n_layers` is the base itself.

What the scale multiplies (the thesis leaves it open, spec §1.9): the MBConv **hidden (expansion) width**,
hidden = scale_channels(c_in * e, scale) (multiples of 8, so scale 1.0 gives c_in * e exactly), never the
output channels. Why:
- every configuration is valid as it stands: a layer's output width is the next layer's input and, inside a
  stage, the residual add needs input width == output width. A per-layer output scale would break those adds
  (or force one scale per stage, or 1x1 adapters that are not in the base), so the 7^n choices would not be
  independent per layer;
- the hidden width is where an MBConv spends its FLOPs and its activation memory (expand, depthwise and
  project all scale with it), so the scale still moves latency over a wide range;
- the stage widths, strides and residual links of the base stay the base's, so the stage-1 network is one
  point of this space and the stage-2 search only trades width per layer.
Skip layers have no hidden width: arch entries cover only the base's MBConv layers (`live_layers`); a base
without one is refused.

Config: {"base": base arch id, "base_space": "mbconv-small" | "mbconv", "width_mult", "resolution",
"num_classes", "stage_repeats"}. The factory also takes `base` = a path to a LightNAS result JSON (or the
result's dict): it reads arch_id, space and space_config and keeps the canonical config, so
`create_space("mbconv-channels", **space.config)` rebuilds the space without the file (stores and predictor
cards key on the config). With no base, the base is MobileNetV2-like: every layer k3e6 on mbconv-small.
Graph encoding: the chain of live layers; node features = scale one-hot (7) then the base op one-hot (6 MBConv
ops), the latter constant per space but telling a graph predictor which kernel/expansion each node scales.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spaces.base import Arch, SearchSpace, check_phi
from spaces.errors import UserInputError
from spaces.mbconv import _MB_SPECS, SKIP, MBConvSpace, _net, scale_channels
from spaces.registry import create_space, register_space

if TYPE_CHECKING:
    from torch import nn

NAME = "mbconv-channels"
SCALES: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
ONE = SCALES.index(1.0)
SCALE_TOKENS: tuple[str, ...] = tuple(f"x{s:g}" for s in SCALES)  # x0.5 x0.75 x1 x1.25 x1.5 x1.75 x2
BASE_SPACES: tuple[str, ...] = ("mbconv-small", "mbconv")
DEFAULT_BASE_SPACE = "mbconv-small"
DEFAULT_BASE_OP = "k3e6"  # MobileNetV2's op, used when no base is given
_KEYS = ("width_mult", "resolution", "num_classes", "stage_repeats")


def _read_result(base: str | Path) -> dict[str, Any]:
    """A LightNAS result JSON's dict, or a UserInputError naming the file and what is wrong."""
    path = Path(base)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise UserInputError(f"{NAME}: cannot read base result {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserInputError(f"{NAME}: base result {path} is not JSON ({e})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{NAME}: base result {path} must hold a JSON object (a LightNAS result)")
    return data


def _looks_like_path(base: str) -> bool:
    return base.endswith(".json") or "/" in base or "\\" in base or Path(base).is_file()


def _from_result(result: Mapping[str, Any], given: dict[str, Any], where: str) -> tuple[str, str, dict[str, Any]]:
    """(arch id, base space name, base space config) of a search result dict; explicit keys must agree."""
    missing = [k for k in ("arch_id", "space") if not isinstance(result.get(k), str)]
    if missing:
        raise UserInputError(f"{NAME}: base result {where} has no {' or '.join(missing)} (not a LightNAS result)")
    config = result.get("space_config") or {}
    if not isinstance(config, dict):
        raise UserInputError(f"{NAME}: base result {where}: space_config must be an object, got {config!r}")
    merged = dict(config)
    for key, value in given.items():
        stored = result["space"] if key == "base_space" else config.get(key)
        if value is None:
            continue
        if stored is not None and _plain(stored) != _plain(value):
            raise UserInputError(f"{NAME}: {key}={value!r} given, but base result {where} was searched with "
                                 f"{key}={stored!r}; leave {key} out")
        if key != "base_space":
            merged[key] = value
    return result["arch_id"], result["space"], merged


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _base_space(name: str, config: dict[str, Any]) -> MBConvSpace:
    if name not in BASE_SPACES:
        raise UserInputError(f"{NAME}: base_space must be an mbconv space ({', '.join(BASE_SPACES)}), got {name!r}")
    unknown = sorted(set(config) - set(_KEYS))
    if unknown:
        raise UserInputError(f"{NAME}: base space config has unknown key(s) {', '.join(unknown)}")
    space = create_space(name, **config)
    assert isinstance(space, MBConvSpace)
    return space


class MBConvChannelSpace(SearchSpace):
    """One scale index per MBConv (non-skip) layer of a fixed base network of an MBConv space."""

    def __init__(self, base_space: MBConvSpace, base_arch: Sequence[int]) -> None:
        self.name = NAME
        self.base_space = base_space
        try:
            self.base_arch: Arch = base_space.validate(base_arch)
        except UserInputError as e:
            raise UserInputError(f"{NAME}: bad base: {e}") from None
        self.live_layers: tuple[int, ...] = tuple(i for i, op in enumerate(self.base_arch) if op != SKIP)
        if not self.live_layers:
            raise UserInputError(f"{NAME}: base {base_space.arch_id(self.base_arch)} has no MBConv layer "
                                 "(all skip): there is no hidden width to scale")
        plan = base_space._plan
        # hidden width at scale 1.0 of each live layer: c_in * e
        self._full_hidden = tuple(plan[i][0] * _MB_SPECS[self.base_arch[i]][1] for i in self.live_layers)

    @property
    def ops(self) -> tuple[str, ...]:
        return SCALE_TOKENS

    @property
    def n_layers(self) -> int:
        return len(self.live_layers)

    @property
    def base_id(self) -> str:
        return self.base_space.arch_id(self.base_arch)

    @property
    def config(self) -> dict[str, Any]:
        return {"base": self.base_id, "base_space": self.base_space.name, **self.base_space.config}

    def arch_id(self, arch: Sequence[int]) -> str:
        return self.dashed_id(arch, SCALE_TOKENS)

    def parse(self, arch_id: str) -> Arch:
        return self.parse_dashed(arch_id, SCALE_TOKENS)

    def scales(self, arch: Sequence[int]) -> tuple[float, ...]:
        """The channel scale of each live layer."""
        return tuple(SCALES[i] for i in self.validate(arch))

    def hidden_widths(self, arch: Sequence[int]) -> tuple[int, ...]:
        """The hidden (expansion) width of each live layer: scale_channels(c_in * e, scale)."""
        return tuple(scale_channels(full, s) for full, s in zip(self._full_hidden, self.scales(arch), strict=True))

    def to_graph(self, arch: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Nodes = live layers in order (a chain); features = scale one-hot (7) + base op one-hot (6)."""
        scale = self.to_onehot(arch).reshape(self.n_layers, self.n_ops)
        op = np.zeros((self.n_layers, len(_MB_SPECS)), dtype=np.float32)
        op[np.arange(self.n_layers), [self.base_arch[i] for i in self.live_layers]] = 1.0
        adj = np.eye(self.n_layers, k=1, dtype=np.float32)
        return adj, np.concatenate([scale, op], axis=1)

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return self.base_space.input_shape(batch)

    def _top_level_label(self, arch: Sequence[int], part: str) -> str:
        """The base's label (stem, L03:k5e6, head...), with the scale after a live layer: L03:k5e6x1.25."""
        label = self.base_space._top_level_label(self.base_arch, part)
        if part.isdigit() and len(arch) == self.n_layers and int(part) - 2 in self.live_layers:
            label += SCALE_TOKENS[arch[self.live_layers.index(int(part) - 2)]]
        return label

    def widened(self, phi: float) -> SearchSpace:
        check_phi(self.name, phi)
        raise UserInputError(f"space {self.name} has no uniform width multiplier (its channel scale is per "
                             "layer): widen its base space instead")

    def _make_module(self, arch: Arch) -> nn.Module:
        hidden: list[int | None] = [None] * self.base_space.n_layers
        for layer, width in zip(self.live_layers, self.hidden_widths(arch), strict=True):
            hidden[layer] = width
        b = self.base_space
        return _net().mbconv_network(self.base_arch, b._plan, b.width_mult, b.num_classes, hidden)


def _space(base: Any, base_space: str | None, given: dict[str, Any]) -> MBConvChannelSpace:
    """The channel space of `base`: an arch id of `base_space`, a LightNAS result (path or dict) or None."""
    if base is None:
        name = base_space or DEFAULT_BASE_SPACE
        space = _base_space(name, {k: v for k, v in given.items() if v is not None})
        return MBConvChannelSpace(space, space.parse("-".join([DEFAULT_BASE_OP] * space.n_layers)))
    if hasattr(base, "to_dict") and not isinstance(base, Mapping):
        base = base.to_dict()  # a SearchResult
    if isinstance(base, Path) or (isinstance(base, str) and _looks_like_path(base)):
        arch_id, name, config = _from_result(_read_result(base), {"base_space": base_space, **given}, str(base))
    elif isinstance(base, Mapping):
        arch_id, name, config = _from_result(base, {"base_space": base_space, **given}, "(dict)")
    elif isinstance(base, str):
        arch_id, name = base, base_space or DEFAULT_BASE_SPACE
        config = {k: v for k, v in given.items() if v is not None}
    else:
        raise UserInputError(f"{NAME}: base must be an arch id, a LightNAS result file or its dict, "
                             f"got {type(base).__name__}")
    space = _base_space(name, config)
    try:
        arch = space.parse(arch_id)
    except UserInputError as e:
        raise UserInputError(f"{NAME}: bad base {arch_id!r}: {e}") from None
    return MBConvChannelSpace(space, arch)


@register_space(NAME)
def mbconv_channels(
    base: str | None = None,
    base_space: str | None = None,
    width_mult: float | None = None,
    resolution: int | None = None,
    num_classes: int | None = None,
    stage_repeats: Sequence[int] | None = None,
) -> MBConvChannelSpace:
    """Channel scales over `base` (arch id of `base_space`, or a LightNAS result JSON path); the base space's
    keys default to its registered config (or the result's)."""
    given = {"width_mult": width_mult, "resolution": resolution, "num_classes": num_classes,
             "stage_repeats": stage_repeats}
    return _space(base, base_space, given)


def channel_space_for(base: str | Path | Mapping[str, Any]) -> MBConvChannelSpace:
    """The channel space over a LightNAS result: a path to its JSON, its dict (or the result object)."""
    return _space(base, None, dict.fromkeys(_KEYS))

