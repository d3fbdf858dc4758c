"""Hardware-aware searches: LightNAS (differentiable, hits a latency or energy target) and its parts.

Pick a search by name (`create_search("lightnas", predictor=..., target=...)`) or use the class; the
parts (single-path supernets, Gumbel sampling, search data without torchvision, the frozen cost model)
are importable on their own for other searches.
"""

from hwsearch.correct import Correction, Probe, close_loop
from hwsearch.cost import (
    CostModel,
    LUTCost,
    Reach,
    as_cost_model,
    lut_cost_model,
    reachable_range,
    refine_arch,
)
from hwsearch.data import ImageFolderDataset, TensorData, digits_proxy, shard_indices, split
from hwsearch.gumbel import derive_arch, hard_gumbel, tau_schedule
from hwsearch.lightnas import LightNAS, lambda_step
from hwsearch.registry import UnknownSearchError, create_search, list_searches, register_search
from hwsearch.result import SearchResult, plot_history, target_errors
from hwsearch.supernet import Supernet, build_supernet

__all__ = [
    "Correction",
    "CostModel",
    "ImageFolderDataset",
    "LUTCost",
    "LightNAS",
    "Probe",
    "Reach",
    "SearchResult",
    "Supernet",
    "TensorData",
    "UnknownSearchError",
    "as_cost_model",
    "build_supernet",
    "close_loop",
    "create_search",
    "derive_arch",
    "digits_proxy",
    "hard_gumbel",
    "lambda_step",
    "list_searches",
    "lut_cost_model",
    "plot_history",
    "reachable_range",
    "refine_arch",
    "register_search",
    "shard_indices",
    "split",
    "target_errors",
    "tau_schedule",
]
