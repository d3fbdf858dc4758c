"""FTSO's result (`hwsearch.ftso`): the search contract plus the topology and operator steps' record. No torch
here, so that reading a result does not load it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hwsearch.result import SearchResult


@dataclass(kw_only=True)
class FTSOResult(SearchResult):
    """The contract plus: `beta` (per edge, after the topology step; `beta_init` where it started),
    `beta_grad_first` (∇β of the first β-step, before Adam), `kept` (edge indices), `ties` (per node: the
    edges tied at the cut and how the tie was broken), `topology` (per node, its kept inputs), `ops` (per
    edge, the op name), `operator` ("replace", "gradient" or "budget"), `op_alpha` (gradient: softmax α per
    kept edge), `budget` (budget: the exact enumeration's record), the per-step `log`, `data`, timings."""

    topology_op: str
    beta_form: str
    keep: int
    beta: list[float]
    beta_init: list[float]
    beta_grad_first: list[float]
    kept: list[int]
    ties: list[dict[str, Any]]
    topology: dict[str, list[int]]
    ops: list[str]
    operator: str
    op_alpha: dict[str, dict[str, float]] | None
    budget: dict[str, Any] | None
    feasible: bool | None
    iterations: int
    op_iterations: int
    log: list[dict[str, Any]]
    data: dict[str, Any]
    topology_s: float
    operator_s: float
    seed: int
