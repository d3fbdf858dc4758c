"""Hardware-aware searches: LightNAS (differentiable, hits a latency or energy target), SurgeNAS (one-level,
ordered sampling, β·latency in the loss), Domino (Pareto), the zero-shot TPC-NAS and FTSO, random search (the
baseline), their parts, and the one path from a search's result to a network measured on the device
(`hwsearch.pipeline`). The zero-shot accuracy proxies are `hwsearch.proxies`.

Pick a search by name (`create_search("lightnas", predictor=..., target=...)`) or use the class; the
parts (single-path supernets, Gumbel sampling, search data without torchvision, the frozen cost model)
are importable on their own for other searches. Names are imported on first use (PEP 562), so that the
registry, the result contract and the CLI's options load without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "hwsearch.correct": ("Correction", "Probe", "close_loop"),
    "hwsearch.cost": ("CostModel", "LUTCost", "Reach", "as_cost_model", "as_predict_model", "lut_cost_model",
                      "reachable_range", "refine_arch"),
    "hwsearch.domino": ("DominoSearch",),
    "hwsearch.domino_result": ("DominoResult", "plot_pareto", "verify_pareto"),
    "hwsearch.data": ("ImageFolderDataset", "TensorData", "digits_proxy", "shard_indices", "split"),
    "hwsearch.ftso": ("FTSO",),
    "hwsearch.ftso_result": ("FTSOResult",),
    "hwsearch.gumbel": ("derive_arch", "hard_gumbel", "ordered_samples"),
    "hwsearch.schedule": ("tau_schedule",),
    "hwsearch.lightnas": ("LightNAS", "lambda_step"),
    "hwsearch.lightnas_channels": ("LightNASChannels",),
    "hwsearch.lightnas_channels_result": ("LightNASChannelsResult",),
    "hwsearch.pareto": ("best_under", "hypervolume", "pareto_front", "regret"),
    "hwsearch.random_search": ("InfeasibleTargetWarning", "RandomSearch", "RandomSearchResult", "param_counts"),
    "hwsearch.pipeline": ("SearchSetup", "VerifyPlan", "close_loop_on_device", "search_and_verify",
                          "verify", "verify_result"),
    "hwsearch.registry": ("UnknownSearchError", "create_search", "list_searches", "register_search",
                          "search_class"),
    "hwsearch.result": ("LightNASResult", "SearchContractError", "SearchResult", "plot_history", "target_errors"),
    "hwsearch.supernet": ("Supernet", "build_supernet"),
    "hwsearch.zeroshot": ("ZeroShotSearch",),
    "hwsearch.zeroshot_result": ("ZeroShotResult",),
    "hwsearch.surgenas": ("SurgeNAS",),
    "hwsearch.surgenas_result": ("SurgeNASResult", "plot_surgenas"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "Correction",
    "CostModel",
    "DominoResult",
    "DominoSearch",
    "FTSO",
    "FTSOResult",
    "ImageFolderDataset",
    "InfeasibleTargetWarning",
    "LUTCost",
    "LightNAS",
    "LightNASChannels",
    "LightNASChannelsResult",
    "LightNASResult",
    "Probe",
    "RandomSearch",
    "RandomSearchResult",
    "Reach",
    "SearchContractError",
    "SearchResult",
    "SearchSetup",
    "Supernet",
    "SurgeNAS",
    "SurgeNASResult",
    "TensorData",
    "UnknownSearchError",
    "VerifyPlan",
    "ZeroShotResult",
    "ZeroShotSearch",
    "as_cost_model",
    "as_predict_model",
    "best_under",
    "build_supernet",
    "close_loop",
    "close_loop_on_device",
    "create_search",
    "derive_arch",
    "digits_proxy",
    "hard_gumbel",
    "hypervolume",
    "lambda_step",
    "list_searches",
    "ordered_samples",
    "lut_cost_model",
    "param_counts",
    "pareto_front",
    "plot_history",
    "plot_pareto",
    "plot_surgenas",
    "reachable_range",
    "refine_arch",
    "register_search",
    "regret",
    "search_and_verify",
    "search_class",
    "shard_indices",
    "split",
    "target_errors",
    "tau_schedule",
    "verify",
    "verify_result",
    "verify_pareto",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'hwsearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
