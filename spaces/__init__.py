"""Search spaces: architecture encodings, samplers, torch builders, ONNX export and cost counting.

Pick a space by name: `create_space("nb201")`, `create_space("mbconv")` (thesis Table 3.1),
`create_space("mbconv-small")` (the same 21 layers, sized for millisecond CPU latencies) or
`create_space("fbnet")` (HW-NAS-Bench's FBNet space as HELP uses it, CIFAR-100), or Domino's grafting
spaces `create_space("mobilenetv2")`, `"resnet50"` and their `-small` sizes (one graft bit per block; `build`
is the merged network).
"""

from spaces import fbnet as _fbnet  # noqa: F401  (registers "fbnet")
from spaces import mbconv as _mbconv  # noqa: F401  (registers "mbconv", "mbconv-small")
from spaces import mobilenetv2 as _mobilenetv2  # noqa: F401  (registers "mobilenetv2", "mobilenetv2-small")
from spaces import nb201 as _nb201  # noqa: F401  (registers "nb201")
from spaces import resnet50 as _resnet50  # noqa: F401  (registers "resnet50", "resnet50-small")
from spaces.base import Arch, InvalidArchError, SearchSpace
from spaces.costs import conv_intensity, count_costs
from spaces.errors import UnknownNameError, UserInputError
from spaces.registry import UnknownSpaceError, create_space, list_spaces, register_space, unregister_space

_EXPORT_NAMES = ("ExportedModel", "export_onnx", "export_space_package", "onnx_metadata", "read_onnx_metadata")


def __getattr__(name: str) -> object:
    """Export helpers load onnx on first use only: a board that builds spaces eagerly (the agent's torch
    backend, from a zip of this package) needs torch, not onnx."""
    if name in _EXPORT_NAMES:
        from spaces import export

        return getattr(export, name)
    raise AttributeError(f"module 'spaces' has no attribute {name!r}")

__all__ = [
    "Arch",
    "ExportedModel",
    "InvalidArchError",
    "SearchSpace",
    "UnknownNameError",
    "UnknownSpaceError",
    "UserInputError",
    "conv_intensity",
    "count_costs",
    "create_space",
    "export_onnx",
    "export_space_package",
    "list_spaces",
    "onnx_metadata",
    "read_onnx_metadata",
    "register_space",
    "unregister_space",
]
