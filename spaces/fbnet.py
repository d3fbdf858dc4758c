"""The FBNet space as HW-NAS-Bench and HELP use it (CIFAR-100): 22 searchable layers, 9 ops, 9^22 archs.

Encoding: an arch is 22 op indices in HELP's / HW-NAS-Bench's op order (`OPS`, the same list as
`op_idx_list` in HELP's `data/fbnet/metainfo.pt`), so HELP's `arch.pt` rows are archs as they stand and
the ids join with HELP's FBNet latency tables. The arch id is the op names joined by '-'.

Macro-structure, from HW-NAS-Bench's FBNet builder with its CIFAR settings (checked against
`hw_nas_bench_api/fbnet_models/model_infer.py`: equal costs, and equal outputs with copied weights, on 23
archs): stem 3x3 conv stride 1 (16) -> seven stages of (out channels, layers, stride of the first layer) =
(16,1,1) (24,4,1) (32,4,2) (64,4,2) (112,4,1) (184,4,2) (352,1,1) -> 1x1 conv (1504) -> global average
pool -> FC (100 classes), 32x32 input.
Block details that follow HW-NAS-Bench rather than the FBNet paper or `spaces/mbconv.py`:
- a `kK_eE[_gG]` block always has its 1x1 expansion conv, even at e == 1, and both 1x1 convs use G
  groups, with a channel shuffle after the expansion when G > 1; depthwise convs are K x K with the
  layer's stride; convs are followed by BN and ReLU, except the linear 1x1 projection (BN only); the
  block adds its input when stride is 1 and channels are kept;
- `skip` is the identity where the layer keeps its shape, else a 1x1 conv with the layer's stride,
  BN and ReLU (HW-NAS-Bench's `Skip`); stem and head convs are conv-BN-ReLU.
Only the CIFAR setting is built; HW-NAS-Bench's ImageNet variant (stride-2 stem and first stage, a 1984
head) is not. HW-NAS-Bench's FBNet latencies on some devices are sums of per-block lookup tables, not
end-to-end runs (see the data notes in the shared folder), so a built network's measured latency need
not equal a table value.

`load_plain_torch_file` reads HELP's `.pt` files (torch zip archives holding plain pickled lists and
dicts) without torch and without running code from the file; the HELP importers use it too.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spaces.base import Arch, InvalidArchError, SearchSpace, check_int, lazy_module, lazy_names
from spaces.errors import UserInputError
from spaces.registry import register_space

if TYPE_CHECKING:
    from torch import nn

OPS: tuple[str, ...] = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
SKIP = OPS.index("skip")
STEM_CHANNELS = 16
HEAD_CHANNELS = 1504
# (out channels, layers, stride of the first layer) per stage, CIFAR setting
STAGES: tuple[tuple[int, int, int], ...] = (
    (16, 1, 1), (24, 4, 1), (32, 4, 2), (64, 4, 2), (112, 4, 1), (184, 4, 2), (352, 1, 1),
)
N_LAYERS = sum(n for _, n, _ in STAGES)  # 22
_BLOCK_RE = re.compile(r"k(\d+)_e(\d+)(?:_g(\d+))?")


def op_spec(name: str) -> tuple[int, int, int]:
    """(kernel, expansion, groups) of a block name such as 'k5_e6' or 'k3_e1_g2'."""
    match = _BLOCK_RE.fullmatch(name)
    if match is None:
        raise ValueError(f"fbnet: {name!r} is not a block name of the form k<K>_e<E>[_g<G>]")
    kernel, expansion, groups = match.groups()
    return int(kernel), int(expansion), int(groups or 1)


def layer_plan() -> list[tuple[int, int, int]]:
    """(in channels, out channels, stride) of each of the 22 searchable layers, in order."""
    plan, c_in = [], STEM_CHANNELS
    for c_out, repeats, stride in STAGES:
        for i in range(repeats):
            plan.append((c_in, c_out, stride if i == 0 else 1))
            c_in = c_out
    return plan


# The network's modules (spaces/fbnet_net.py) load with torch on first use.
_net = lazy_module("spaces.fbnet_net")
__getattr__ = lazy_names(__name__, _net,
                         ("conv_bn", "ChannelShuffle", "FBNetBlock", "make_layer", "FBNetNetwork"))


class FBNetSpace(SearchSpace):
    """HW-NAS-Bench's FBNet space, CIFAR setting; `num_classes` and `resolution` may be changed."""

    def __init__(self, name: str = "fbnet", num_classes: int = 100, resolution: int = 32) -> None:
        self.name = name
        self.num_classes = check_int(name, "num_classes", num_classes)
        self.resolution = check_int(name, "resolution", resolution)

    @property
    def ops(self) -> tuple[str, ...]:
        return OPS

    @property
    def n_layers(self) -> int:
        return N_LAYERS

    @property
    def config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "resolution": self.resolution}

    def arch_id(self, arch: Sequence[int]) -> str:
        return self.dashed_id(arch, OPS)

    def parse(self, arch_id: str) -> Arch:
        return self.parse_dashed(arch_id, OPS)

    def to_graph(self, arch: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """22 nodes (the searchable layers) with op one-hot features, chained l -> l+1."""
        feats = self.to_onehot(arch).reshape(self.n_layers, self.n_ops)
        return np.eye(self.n_layers, k=1, dtype=np.float32), feats

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (check_int(self.name, "batch", batch), 3, self.resolution, self.resolution)

    def layer_label(self, arch: Sequence[int], name: str) -> str:
        """stem, L<i>:<op> for the searchable layers (L<i> if arch is not a full arch), head, pool, classifier."""
        first = name.split(" + ")[0].strip().lstrip("/")
        parts = first.replace("/", ".").split(".")
        if parts[0] != "layers":
            return parts[0]
        i = next((int(p) for p in parts[1:] if p.isdigit()), None)
        if i is None or not 0 <= i < self.n_layers:
            return "layers"
        full = len(arch) == self.n_layers and all(0 <= op < self.n_ops for op in arch)
        return f"L{i:02d}:{OPS[arch[i]]}" if full else f"L{i:02d}"

    def _make_module(self, arch: Arch) -> nn.Module:
        return _net().FBNetNetwork(arch, self.num_classes)


@register_space("fbnet")
def fbnet(num_classes: int = 100, resolution: int = 32) -> FBNetSpace:
    """HW-NAS-Bench / HELP FBNet space on CIFAR-100 input (32x32, 100 classes) unless overridden."""
    return FBNetSpace("fbnet", num_classes=num_classes, resolution=resolution)


# --- HELP files ------------------------------------------------------------------------------------------

# Globals a plain table may name: numpy scalars and dtypes (tables saved from numpy values). Anything else
# (torch tensors, arbitrary callables) is refused, so reading a file never runs code from it.
_SAFE_GLOBALS = {
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only plain lists/dicts are read)")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("holds tensor storages (only plain lists/dicts are read)")


def load_plain_pickle(data: bytes, what: str) -> Any:
    """Unpickle `data` allowing only builtin containers and numpy scalars; UserInputError naming `what`."""
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same: not a plain table
        raise UserInputError(f"{what}: not a plain pickled table: {e}") from None


def load_plain_torch_file(path: str | Path) -> Any:
    """The list or dict inside a `torch.save` zip archive, read with zipfile + a restricted unpickler."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.endswith("data.pkl")]
            if len(members) != 1:
                raise UserInputError(f"{path}: expected one '*/data.pkl' member in the torch archive, "
                                 f"found {len(members)}")
            data = archive.read(members[0])
    except zipfile.BadZipFile:
        raise UserInputError(f"{path}: not a torch zip archive (torch.save format) or damaged") from None
    return load_plain_pickle(data, str(path))


def find_help_data(root: str | Path) -> Path:
    """HELP's `data` folder from the shared folder, the `HELP` folder or the `HELP/data` folder itself."""
    root = Path(root)
    for candidate in (root / "data" / "HELP" / "data", root / "HELP" / "data", root / "data", root):
        if (candidate / "nasbench201").is_dir() or (candidate / "fbnet").is_dir():
            return candidate
    raise UserInputError(f"{root}: no HELP data here (looked for nasbench201/ or fbnet/ under {root}, "
                     f"{root / 'data'}, {root / 'HELP' / 'data'} and {root / 'data' / 'HELP' / 'data'})")


def help_fbnet_archs(root: str | Path) -> list[Arch]:
    """The 5,000 archs of HELP's `data/fbnet/arch.pt`, in file order (row i has latency i in each table).

    `root` is the shared folder, HELP's folder or HELP's `data` folder. Every row is validated, so a
    damaged file fails here with the row named instead of later inside a predictor.
    """
    path = find_help_data(root) / "fbnet" / "arch.pt"
    rows = load_plain_torch_file(path)
    if not isinstance(rows, list) or not rows:
        raise UserInputError(f"{path}: expected a non-empty list of op-index lists, got {type(rows).__name__}")
    space = fbnet()
    archs = []
    for i, row in enumerate(rows):
        try:
            archs.append(space.validate(row))
        except InvalidArchError as e:
            raise UserInputError(f"{path}: row {i}: {e}") from None
    return archs
