"""Random search, the honest baseline of every hardware-aware search: sample N distinct networks, ask the
cost predictor about all of them in one batch, and keep, of those predicted within the target, the one with
the best accuracy proxy. A search that cannot beat this at the same number of predictor queries has not
earned its machinery.

The accuracy proxy is the effective parameter count by default (more weights, more accuracy: crude, but
free and known for every space), or a fitted accuracy predictor (card quantity "accuracy", e.g. `edgeprof
train mlp --quantity accuracy --task cifar100`). Effective: NB201 builds edges that only see a constant
(their source node is cut off from the cell's input); counting them, the proxy's favourite cheap network on
raspi4 was |none~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_1x1~2|: 587 k parameters,
1.2 ms, 1% CIFAR-100 accuracy (chance). Counts come from a per-(layer, op) table built once per space and
config from L·(K−1)+1 shape-only (meta device) builds, checked against direct counts of a few archs (and,
for NB201, of all 15,625 cells once: no mismatch); a space whose counts do not add up per layer is
counted network by network instead.

If nothing sampled is predicted within the target, the predicted-cheapest network is returned with
`feasible: false` and an InfeasibleTargetWarning, so the closed loop still has a network to measure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hwsearch.registry import register_search
from hwsearch.result import UNITS, SearchResult
from hwsearch.search_params import SEARCH_CONSTRAINTS, check_predictor_and_target, search_space
from predictors.base import Constraint, InvalidParameterError, Params
from predictors.common import int_at_least
from spaces import SearchSpace, create_space
from spaces.errors import RuntimeFailure, UserInputError

if TYPE_CHECKING:
    from hwsearch.pipeline import SearchSetup

PARAMS_PROXY = "params"
_ADDITIVITY_CHECKS = 4  # random archs whose direct count must equal the table's


class InfeasibleTargetWarning(UserWarning):
    """No sampled network is predicted within the target: the predicted-cheapest one is returned."""


@dataclass(kw_only=True)
class RandomSearchResult(SearchResult):
    """The contract plus how the network was chosen: `n` archs sampled (`evaluations` predictor queries),
    `n_feasible` predicted within the target, the `proxy` that ranked them ("params" or the accuracy
    predictor) and its value for the returned arch; `feasible` False when none was within the target."""

    n: int
    n_feasible: int
    proxy: str
    proxy_value: float
    feasible: bool
    evaluations: int
    seed: int


# --- the parameter-count proxy ------------------------------------------------------------------------------

def _count_params(space: SearchSpace, arch: tuple[int, ...]) -> int:
    """Every parameter of the arch's network (what spaces.costs counts), built on the meta device."""
    import torch

    try:
        with torch.device("meta"):
            module = space._make_module(arch)
    except (RuntimeError, NotImplementedError):  # an op without a meta kernel: build it for real
        module = space.build(arch)
    return int(sum(p.numel() for p in module.parameters()))


Layers = Callable[[tuple[int, ...]], Sequence[int]]


def _nb201_effective(arch: tuple[int, ...]) -> tuple[int, ...]:
    """NB201 edges on a path from the cell's input to its output: built (spaces.nb201.live_edges) and fed
    by a node the input reaches. A built edge whose source the input never reaches computes on a constant."""
    from spaces.nb201 import EDGES, N_NODES, NONE, live_edges

    reached = {0}
    for node in range(1, N_NODES):
        if any(dst == node and src in reached and arch[e] != NONE for e, (src, dst) in enumerate(EDGES)):
            reached.add(node)
    return tuple(e for e in live_edges(arch) if EDGES[e][0] in reached)


def _layout(space: SearchSpace) -> tuple[tuple[int, ...], Layers, Layers]:
    """(the base arch of the table, the layers of an arch that are built, those on an input-to-output path).
    NB201 leaves out edges that cannot reach the cell's output, so its table is taken over the all-skip
    cell, where every edge is built and costs nothing, and an arch sums the increments of some edges only."""
    if space.name == "nb201":
        from spaces.nb201 import OPS, live_edges

        return (OPS.index("skip_connect"),) * space.n_layers, live_edges, _nb201_effective
    every = tuple(range(space.n_layers))
    return (0,) * space.n_layers, (lambda arch: every), (lambda arch: every)


@lru_cache(maxsize=32)
def _param_table(space_name: str, config_json: str) -> tuple[int, np.ndarray] | None:
    """(count of the base arch, [L, K] increments of each layer's op over the base's), or None when a check
    arch's direct count differs from the table's (the space's counts do not add up per layer)."""
    space = create_space(space_name, **json.loads(config_json))
    base_arch, built, _ = _layout(space)
    base = _count_params(space, base_arch)
    table = np.zeros((space.n_layers, space.n_ops), dtype=np.int64)
    for layer in range(space.n_layers):
        for op in range(space.n_ops):
            if op != base_arch[layer]:
                arch = base_arch[:layer] + (op,) + base_arch[layer + 1:]
                table[layer, op] = _count_params(space, arch) - base
    checks = space.sample_unique(min(_ADDITIVITY_CHECKS, space.size), np.random.default_rng(0))
    if any(_count_params(space, a) != base + int(table[list(built(a)), [a[i] for i in built(a)]].sum())
           for a in checks):
        return None
    return base, table


def param_counts(space: SearchSpace, archs: list[tuple[int, ...]] | np.ndarray, effective: bool = True
                 ) -> np.ndarray:
    """Parameter counts of `archs` (rows of op indices) in `space` (float).

    `effective` (the proxy's): only the parameters that can carry the input to the output. NB201 builds
    edges fed by a node the input never reaches (e.g. a cell whose input edges are all `none`): their weights
    exist but see a constant, and such a cell is at chance accuracy, so they do not count. Without it, every
    parameter of the built network, as spaces.costs counts them.
    """
    codes = np.asarray(archs, dtype=np.int64).reshape(-1, space.n_layers)
    _, built, on_path = _layout(space)
    layers = on_path if effective else built
    table = _param_table(space.name, json.dumps(space.config, sort_keys=True))
    if table is None:  # not additive per layer: every parameter of each built network
        return np.array([_count_params(space, tuple(map(int, a))) for a in codes], dtype=float)
    base, increments = table
    mask = np.zeros(codes.shape, dtype=bool)
    for i, arch in enumerate(codes.tolist()):
        mask[i, list(layers(tuple(arch)))] = True
    per_layer = increments[np.arange(space.n_layers), codes]
    return (base + np.where(mask, per_layer, 0).sum(axis=1)).astype(float)


# --- the accuracy-predictor proxy ---------------------------------------------------------------------------

def load_accuracy_predictor(predictor: Any, space: SearchSpace, otherwise: str = ", or none for the #params proxy"
                            ) -> tuple[Any, str]:
    """(a fitted accuracy predictor of `space`, its label for the result) from a saved folder or a fitted
    predictor. Refused (UserInputError naming it): a card whose quantity is not "accuracy", another space, a
    meta-trained predictor not adapted yet. Its device is not checked: accuracy is the task's, not the board's."""
    from predictors.evaluation import refusing_unadapted

    label = None
    if isinstance(predictor, str | Path):
        from predictors.io import load_predictor

        label, predictor = str(predictor), load_predictor(predictor)
    if not (callable(getattr(predictor, "predict", None)) and hasattr(predictor, "space")):
        raise InvalidParameterError(f"accuracy must be None (the #params proxy), a saved accuracy predictor folder "
                                    f"or a fitted predictor, got {type(predictor).__name__}")
    kind = getattr(predictor, "kind", type(predictor).__name__)
    name = label or f"{kind} predictor"
    card = getattr(predictor, "card_", None) or {}
    quantity = card.get("quantity", "accuracy" if not card else "latency")
    if quantity != "accuracy":
        raise UserInputError(f"{name} predicts {quantity}, not accuracy: give an accuracy predictor "
                             f"(edgeprof train ... --quantity accuracy --task TASK){otherwise}")
    theirs = (predictor.space, create_space(predictor.space, **(predictor.space_config or {})).config)
    if theirs != (space.name, space.config):
        raise UserInputError(f"{name} is for space {theirs[0]!r} {theirs[1]}, but the search is over "
                             f"{space.name!r} {space.config}")
    check = getattr(predictor, "check_is_adapted", None)
    if check is not None:
        with refusing_unadapted(name):
            check()
    task = card.get("task")
    return predictor, name + (f" ({task})" if task else "")


@register_search("random")
class RandomSearch(Params):
    """Random search (scikit-learn style: parameters in __init__, `fit` validates and runs, the result in
    `result_`; also `arch_`, `predicted_` and `proxy_` of every sampled arch).

    `predictor`: a fitted predictor of cost (any kind), a saved predictor folder or a `hwsearch.CostModel`;
    `target` in ms (latency) or mJ (energy); `n` distinct archs sampled with `seed`; `accuracy`: None for the
    #params proxy, or a saved / fitted accuracy predictor; `space`/`space_config` default to the predictor's.
    """

    name: ClassVar[str] = "random"
    summary: ClassVar[str] = "the baseline: N random networks, the best accuracy proxy predicted within the target"
    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **SEARCH_CONSTRAINTS,
        "n": int_at_least(1),
        "seed": int_at_least(0),
    }

    def __init__(self, predictor: Any = None, target: float | None = None, metric: str = "latency",
                 n: int = 1000, seed: int = 0, accuracy: Any = None, space: str | None = None,
                 space_config: dict[str, Any] | None = None) -> None:
        self.predictor = predictor
        self.target = target
        self.metric = metric
        self.n = n
        self.seed = seed
        self.accuracy = accuracy
        self.space = space
        self.space_config = space_config

    def __repr__(self) -> str:
        return f"RandomSearch({', '.join(f'{k}={v!r}' for k, v in self._json_params().items())})"

    def _validate(self) -> None:
        self._validate_params()
        check_predictor_and_target("RandomSearch", self.predictor, self.target, self.metric,
                                   "a fitted predictor, a saved predictor folder or a hwsearch.CostModel")

    def _json_params(self) -> dict[str, Any]:
        params = {k: v for k, v in self.get_params().items() if k != "predictor"}
        if params["accuracy"] is not None and not isinstance(params["accuracy"], str | Path):
            params["accuracy"] = getattr(params["accuracy"], "kind", type(params["accuracy"]).__name__)
        elif params["accuracy"] is not None:
            params["accuracy"] = str(params["accuracy"])
        return params

    # --- the search --------------------------------------------------------------------------------------

    def search(self) -> RandomSearchResult:
        """`fit` and return its result."""
        return self.fit().result_

    def fit(self) -> RandomSearch:
        """Sample, predict, choose (see the module's docstring)."""
        from hwsearch.cost import as_predict_model, predict_archs

        self._validate()
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)
        start = time.perf_counter()
        cost = as_predict_model(self.predictor, self.metric)
        space = search_space("RandomSearch", cost, self.space, self.space_config)
        if self.accuracy is None:
            acc_pred, proxy = None, PARAMS_PROXY
        else:
            acc_pred, proxy = load_accuracy_predictor(self.accuracy, space)
        archs = space.sample_unique(self.n, np.random.default_rng(self.seed))
        predicted = predict_archs(cost, space, archs)
        usable = np.isfinite(predicted) & (predicted > 0)
        if not usable.any():
            raise RuntimeFailure(f"the predictor ({cost.source}) predicts no positive {self.metric} for any of "
                                 f"the {len(archs)} sampled networks")
        if acc_pred is None:
            values = param_counts(space, archs)
        else:
            values = np.asarray(acc_pred.predict([space.arch_id(a) for a in archs]), dtype=float).reshape(-1)
        rank = np.where(np.isfinite(values), values, -np.inf)
        within = usable & (predicted <= self.target)
        if within.any():
            idx = np.flatnonzero(within)
            # the best proxy; of equal ones the cheapest; then the first drawn
            k = int(idx[np.lexsort((idx, predicted[idx], -rank[idx]))[0]])
        else:
            idx = np.flatnonzero(usable)
            k = int(idx[np.argmin(predicted[idx])])
            warnings.warn(f"random search: none of the {len(archs)} sampled networks is predicted within the "
                          f"target {self.target:g} {UNITS[self.metric]} (cheapest: {predicted[k]:.4g}); "
                          "returning the predicted-cheapest (feasible: false)", InfeasibleTargetWarning,
                          stacklevel=2)
        self.arch_, self.predicted_, self.proxy_ = archs[k], predicted, values
        self.result_ = RandomSearchResult(
            search=self.name, space=space.name, space_config=space.config, arch=list(archs[k]),
            arch_id=space.arch_id(archs[k]), target=float(self.target), metric=self.metric,
            unit=UNITS[self.metric], predicted=float(predicted[k]), wall_s=time.perf_counter() - start,
            params=self._json_params(),
            predictor={"space": cost.space, "space_config": cost.space_config, "source": cost.source,
                       "device": cost.device_name},
            n=len(archs), n_feasible=int(within.sum()), proxy=proxy, proxy_value=float(values[k]),
            feasible=bool(within.any()), evaluations=len(archs), seed=self.seed)
        return self

    # --- `edgeprof search random` (the common options and verification are hwsearch.pipeline's) ---------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Random search's own options: how many networks, the seed, the accuracy proxy."""
        parser.add_argument("--n", type=int, default=1000, help="networks to sample (default 1000)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--accuracy-predictor", metavar="PATH",
                            help="a saved accuracy predictor of the space (card quantity 'accuracy') to rank the "
                                 "networks within the target by (default: their parameter count)")

    @classmethod
    def run_from_args(cls, args: argparse.Namespace, setup: SearchSetup) -> RandomSearchResult:
        """The search the options describe; the infeasible-target warning goes to stderr as one line."""
        search = cls(predictor=setup.predictor, target=setup.target, metric=setup.metric, n=args.n,
                     seed=args.seed, accuracy=args.accuracy_predictor)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InfeasibleTargetWarning)
            result = search.search()
        for w in caught:
            if issubclass(w.category, InfeasibleTargetWarning):
                print(f"warning: {w.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return result
