"""FTSO (First Topology, Second Operator; spec §2) on the NAS-Bench-201 cell, with a latency budget for the
operator step (spec §2.8, ours: the paper has no hardware term).

1. Topology. A supernet in NB201's macro skeleton whose cell has one op on every edge (`skip_connect` by
   default, as the paper; `avg_pool_3x3` and `nor_conv_3x3` as its max-pool / sep3 ablations), each edge's
   output multiplied by an edge weight β shared by all cells. One epoch (default) or N iterations of the
   paper's alternation: an Adam step on β (lr 6e-4, betas (0.5, 0.999), weight decay 1e-3) on a held-out
   batch, then an SGD-momentum step on the weights (cosine from 0.025 to 0) on a train batch (Table 4).
   Then each node keeps its top-`keep` inputs by β.
2. Operators. "replace" (default): every kept edge gets the strongest op (nor_conv_3x3: NB201 has no sep
   conv), the dropped edges `none`. "gradient": a DARTS mixed op over skip, conv1x1, conv3x3 and avg-pool
   on the kept edges, α and w alternated as above, argmax α per edge (β is not re-learned: the kept edges are
   summed as NB201's cell sums them, so β could not change an argmax). With a latency predictor and a
   budget (--max-latency-ms): of every assignment of those four ops to the kept edges (4^k, at most 4^5 =
   1,024 with keep 2, asked of the predictor in one batch) the strongest predicted within the budget, where
   strength is the sum of op ranks conv3x3 3 > conv1x1 2 > avg-pool 1 > skip 0; equal sums go to the one
   with the stronger ops on the higher-β edges, then the lower prediction. None within: the predicted-
   cheapest, `feasible: false` and a warning (as random search).

What the topology step can tell on NB201, measured (the figures are in the README and the module's tests):
- NB201's cell has one input node and its output is node 3 alone, so a skip-only cell is linear in its
  input. With PC-DARTS' softmax over a node's inputs (`beta_form="softmax"`) every node equals the input for
  any β: the cell is the identity, ∇β is 0 in exact arithmetic, and the "search" is all ties. With the paper's printed
  rule n_j = Σ β_ij·o(n_i) (`"linear"`, the default, β starting at 1/in-degree so each node starts as the
  mean of its inputs, the identity) the cell is c(β)·x with c = β03 + β13β01 + β23(β02 + β12β01): ∇β is
  dL/dc times a path-count factor, one number per cell scaled per edge, and the batch norms after the cells
  remove most of it (they divide c out; only the reductions' shortcut, which has none, feels it). Measured
  on the default config (digits, seed 0): the first ∇β is (1/2, 1/3, 1/3, 1, 1, 1) × 0.0205, exactly
  ∂c/∂β at the start, so node 3's three inputs get the same gradient; Adam moves every β by ±lr whatever
  the factor, so after one iteration they are equal, and after one epoch (23 iterations) they differ by
  4.8e-5 while β moved 1.05e-2 (0.5%). With softmax the first ∇β is 6e-10 (float rounding of 0).
  The skip topology therefore carries no data-specific information on NB201 (β's order at node 3,
  2 > 1 > 0 on seeds 0-2, follows the path factors; its cut margin is 0.2% of the movement);
  `avg_pool_3x3` makes the nodes differ (x, Px, P²x: a polynomial in a blur) and gives a clear cut, and
  `nor_conv_3x3` trains real ops (the paper's costlier ablations).
- "Top-2 inputs per node" on NB201 (nodes with 1, 2 and 3 inputs) only decides which of node 3's three
  inputs is dropped. `keep` k keeps min(k, in-degree) inputs per node: k = 2 is the paper's rule (5 edges
  kept), k = 1 a chain-like cell, k = 3 keeps all six.
- Ties are explicit. At a node's cut the β within `tie_tol` × (the largest |β − β_start| of any edge) of the
  k-th largest are tied (exactly equal when β did not move); the tie is broken by a stated rule and recorded
  in `ties`: first keep an edge that is its source node's last out-edge not dropped (dropping 2→3 would cut
  node 2 and the two edges kept into it off the output), then the edge from the shallower node (the shorter
  path from the input; the paper's best ImageNet cell is "the shallowest and widest"). For the skip
  topology on NB201 the rule, not β, picks the cell: node 3 drops 1→3.

The true accuracy of the found cell is not looked up here: the benchmarks judge the result.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hwsearch.registry import register_search
from hwsearch.search_params import SEARCH_CONSTRAINTS, add_training_arguments, optional, positive_number
from predictors.base import Constraint, InvalidParameterError, Params
from predictors.common import float_above, int_at_least, one_of
from spaces.errors import UserInputError

if TYPE_CHECKING:
    from hwsearch.ftso_result import FTSOResult
    from hwsearch.pipeline import SearchSetup
    from spaces import SearchSpace

TOPOLOGY_OPS = ("skip_connect", "avg_pool_3x3", "nor_conv_3x3")
CANDIDATE_OPS = ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")  # a kept edge's ops
STRENGTH = {"skip_connect": 0, "avg_pool_3x3": 1, "nor_conv_1x1": 2, "nor_conv_3x3": 3}
# NB201's edges (source, target) and op names, repeated here so that the rules need no torch
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
N_NODES = 4
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
TIE_RULE = ("keep the edge that is its source node's last out-edge not dropped, then the one from the "
            "shallower node")


class InfeasibleBudgetWarning(UserWarning):
    """No assignment of ops to the kept edges is predicted within the budget: the cheapest is returned."""


# --- the rules (pure) -----------------------------------------------------------------------------------

def keep_edges(beta: list[float], keep: int, tie_tol: float, beta0: list[float]
               ) -> tuple[tuple[int, ...], list[dict[str, Any]]]:
    """(kept edge indices, per node the record of its cut): each node keeps its min(keep, in-degree) inputs
    of largest β, ties at the cut broken by TIE_RULE (see the module docstring)."""
    b = np.asarray(beta, dtype=float)
    moved = float(np.max(np.abs(b - np.asarray(beta0, dtype=float))))
    eps = tie_tol * moved
    dropped: set[int] = set()
    records = []
    for node in range(N_NODES - 1, 0, -1):  # the output's inputs first: their cut decides which nodes live
        inputs = [e for e, (_, dst) in enumerate(EDGES) if dst == node]
        k = min(keep, len(inputs))
        order = sorted(inputs, key=lambda e: -b[e])
        record: dict[str, Any] = {"node": node, "inputs": [EDGES[e][0] for e in inputs], "keep": k,
                                  "beta": {str(EDGES[e][0]): float(b[e]) for e in inputs}}
        if k == len(inputs):
            records.append({**record, "kept": [EDGES[e][0] for e in inputs], "tied": [], "margin": None})
            continue
        cut = b[order[k - 1]]
        sure = [e for e in order if b[e] > cut + eps]
        tied = [e for e in order if abs(b[e] - cut) <= eps]
        by_rule = sorted(tied, key=lambda e: (not _last_out(e, dropped), EDGES[e][0]))[:k - len(sure)]
        kept = sure + by_rule
        dropped |= set(inputs) - set(kept)
        records.append({**record, "kept": sorted(EDGES[e][0] for e in kept),
                        "tied": [EDGES[e][0] for e in tied] if len(tied) > k - len(sure) else [],
                        "margin": float(b[order[k - 1]] - b[order[k]]), "eps": eps,
                        "by_rule": bool(len(tied) > k - len(sure)),
                        **({"rule": TIE_RULE} if len(tied) > k - len(sure) else {})})
    kept_all = tuple(e for e in range(len(EDGES)) if e not in dropped)
    return kept_all, sorted(records, key=lambda r: r["node"])


def _last_out(e: int, dropped: set[int]) -> bool:
    """Whether edge `e` is its source node's last out-edge not dropped (the input node never dies)."""
    src = EDGES[e][0]
    return src != 0 and not any(f != e and f not in dropped for f, (s, _) in enumerate(EDGES) if s == src)


def replace_ops(kept: tuple[int, ...], op: str = "nor_conv_3x3") -> tuple[int, ...]:
    """Strategy 2: `op` on every kept edge, `none` elsewhere (op indices of NB201)."""
    return tuple(OPS.index(op) if e in kept else OPS.index("none") for e in range(len(EDGES)))


def argmax_ops(kept: tuple[int, ...], probs: list[list[float]]) -> tuple[int, ...]:
    """Strategy 1: per kept edge the candidate op of largest softmax α (equal ones: the stronger op)."""
    arch = [OPS.index("none")] * len(EDGES)
    for e in kept:
        best = max(range(len(CANDIDATE_OPS)), key=lambda o: (probs[e][o], STRENGTH[CANDIDATE_OPS[o]]))
        arch[e] = OPS.index(CANDIDATE_OPS[best])
    return tuple(arch)


def budget_ops(space: SearchSpace, kept: tuple[int, ...], beta: list[float], cost: Any, target: float
               ) -> tuple[tuple[int, ...], dict[str, Any]]:
    """§2.8 (ours): of every assignment of CANDIDATE_OPS to the kept edges (one batched prediction), the
    strongest predicted within `target`; equal strength: stronger ops on higher-β edges, then the cheaper.
    None within: the predicted-cheapest with an InfeasibleBudgetWarning. Returns (arch, its record)."""
    from hwsearch.cost import predict_archs

    by_beta = sorted(kept, key=lambda e: (-beta[e], e))
    combos = list(itertools.product(CANDIDATE_OPS, repeat=len(kept)))
    archs = []
    for combo in combos:
        arch = [OPS.index("none")] * len(EDGES)
        for e, op in zip(kept, combo, strict=True):
            arch[e] = OPS.index(op)
        archs.append(tuple(arch))
    predicted = predict_archs(cost, space, archs)
    strength = np.array([sum(STRENGTH[OPS[a[e]]] for e in kept) for a in archs])
    within = np.isfinite(predicted) & (predicted <= target)
    if within.any():
        k = max(np.flatnonzero(within), key=lambda i: (strength[i], tuple(STRENGTH[OPS[archs[i][e]]]
                                                                         for e in by_beta), -predicted[i], -i))
    else:
        k = int(np.nanargmin(predicted))
        warnings.warn(f"ftso: no assignment of {', '.join(CANDIDATE_OPS)} to the {len(kept)} kept edges is "
                      f"predicted within {target:g} {cost.unit} (cheapest: {predicted[k]:.4g}); returning the "
                      "predicted-cheapest (feasible: false)", InfeasibleBudgetWarning, stacklevel=2)
    full = replace_ops(kept)
    return archs[k], {"candidates": len(archs), "queries": 1, "n_within": int(within.sum()),
                      "feasible": bool(within.any()), "strength": int(strength[k]),
                      "max_strength": int(3 * len(kept)), "predicted": float(predicted[k]),
                      "replace_arch_id": space.arch_id(full),
                      "replace_predicted": float(predicted[archs.index(full)]),
                      "rule": "max sum of op ranks (conv3x3 3, conv1x1 2, avg_pool 1, skip 0) predicted within the "
                              "budget; ties: stronger ops on higher-beta edges, then the lower prediction"}


# --- the search object ----------------------------------------------------------------------------------

@register_search("ftso")
class FTSO(Params):
    """FTSO on NB201 (scikit-learn style: parameters in __init__, `fit(train_data, val_data)` validates and
    runs, the result in `result_`; also `arch_`, `beta_`, `kept_`).

    `predictor` (optional): a fitted predictor of cost (any kind), a saved folder or a `hwsearch.CostModel`:
    the result's `predicted`, and with `target` (ms or mJ) the budget of the operator step. Without one,
    `space_config` sets the NB201 config (default: the benchmark's). `train_data`: a (w split, β split) pair
    as `hwsearch.data.digits_proxy` returns, or one dataset split 80/20 by `seed`.
    """

    name: ClassVar[str] = "ftso"
    summary: ClassVar[str] = "FTSO on NB201: topology by a one-op supernet, then ops (replace, gradient, or a budget)"
    needs_predictor: ClassVar[bool] = False
    needs_target: ClassVar[bool] = False
    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **SEARCH_CONSTRAINTS,
        "target": optional((positive_number, "a positive number")),
        "topology_op": one_of(*TOPOLOGY_OPS),
        "beta_form": one_of("linear", "softmax"),
        "keep": int_at_least(1),
        "tie_tol": float_above(0.0, inclusive=True),
        "epochs": int_at_least(1),
        "iterations": optional(int_at_least(1)),
        "operator": one_of("replace", "gradient"),
        "replace_op": one_of(*CANDIDATE_OPS),
        "op_iterations": optional(int_at_least(1)),
        "batch_size": int_at_least(1),
        "arch_lr": float_above(0.0),
        "arch_weight_decay": float_above(0.0, inclusive=True),
        "w_lr": float_above(0.0),
        "w_weight_decay": float_above(0.0, inclusive=True),
        "seed": int_at_least(0),
        "threads": optional(int_at_least(1)),
    }

    def __init__(self, predictor: Any = None, target: float | None = None, metric: str = "latency",
                 space: str | None = None, space_config: dict[str, Any] | None = None,
                 topology_op: str = "skip_connect", beta_form: str = "linear", keep: int = 2, tie_tol: float = 0.01,
                 epochs: int = 1, iterations: int | None = None, operator: str = "replace",
                 replace_op: str = "nor_conv_3x3", op_iterations: int | None = None, batch_size: int = 64,
                 arch_lr: float = 6e-4, arch_weight_decay: float = 1e-3, w_lr: float = 0.025,
                 w_weight_decay: float = 3e-4, seed: int = 0, threads: int | None = 1) -> None:
        self.predictor = predictor
        self.target = target
        self.metric = metric
        self.space = space
        self.space_config = space_config
        self.topology_op = topology_op
        self.beta_form = beta_form
        self.keep = keep
        self.tie_tol = tie_tol
        self.epochs = epochs
        self.iterations = iterations
        self.operator = operator
        self.replace_op = replace_op
        self.op_iterations = op_iterations
        self.batch_size = batch_size
        self.arch_lr = arch_lr
        self.arch_weight_decay = arch_weight_decay
        self.w_lr = w_lr
        self.w_weight_decay = w_weight_decay
        self.seed = seed
        self.threads = threads

    def __repr__(self) -> str:
        return f"FTSO({', '.join(f'{k}={v!r}' for k, v in self._json_params().items())})"

    def _json_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.get_params().items() if k != "predictor"}

    def _validate(self) -> None:
        self._validate_params()
        if self.space not in (None, "nb201"):
            raise InvalidParameterError(f"FTSO searches the NB201 cell; got space {self.space!r}")
        if self.target is not None and self.predictor is None:
            raise InvalidParameterError("FTSO with a target (a latency budget) needs a predictor of the board")
        if self.target is not None and self.operator == "gradient":
            raise InvalidParameterError("FTSO with a target picks the ops within the budget by the predictor; the "
                                        "gradient operator strategy takes no target")

    def _space_and_cost(self) -> tuple[SearchSpace, Any]:
        from spaces import create_space

        if self.predictor is None:
            try:
                return create_space("nb201", **(self.space_config or {})), None
            except (TypeError, ValueError) as e:
                raise UserInputError(f"FTSO: NB201 config {self.space_config} does not build: {e}") from None
        from hwsearch.cost import as_predict_model
        from hwsearch.search_params import search_space

        cost = as_predict_model(self.predictor, self.metric)
        space = search_space("FTSO", cost, self.space, self.space_config)
        if space.name != "nb201":
            raise UserInputError(f"FTSO searches the NB201 cell, but the predictor is for space {space.name!r}")
        return space, cost

    def search(self, train_data: Any, val_data: Any = None) -> FTSOResult:
        """`fit` and return its result."""
        return self.fit(train_data, val_data).result_

    def fit(self, train_data: Any, val_data: Any = None) -> FTSO:
        """Validate, forget the last search's state, run both steps (torch: imported only now)."""
        from hwsearch import ftso_engine
        from hwsearch.data import split
        from hwsearch.lightnas_engine import check_data

        self._validate()
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)
        space, cost = self._space_and_cost()
        if val_data is None and isinstance(train_data, tuple | list) and len(train_data) == 2:
            train_data, val_data = train_data
        elif val_data is None:
            train_data, val_data = split(train_data, 0.8, self.seed)
        side = int(train_data[0][0].shape[-1])  # any side: the network ends in global pooling
        for which, data in (("train_data", train_data), ("val_data", val_data)):
            check_data(data, space, which, side)
        ftso_engine.run_search(self, train_data, val_data, space, cost)
        return self

    # --- `edgeprof search ftso` ---------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """FTSO's own options: the topology op and rule, the operator strategy, the length, the data."""
        parser.add_argument("--topology-op", default="skip", choices=["skip", "avg_pool_3x3", "nor_conv_3x3"],
                            help="the one op of the topology supernet (default skip, as the paper; the others are "
                                 "its max-pool / sep3 ablations)")
        parser.add_argument("--beta-form", default="linear", choices=["linear", "softmax"],
                            help="edge weights: n_j = sum beta_ij*o(n_i) (linear, default) or a softmax over the "
                                 "node's inputs (with skip on NB201 the cell is then the identity: no gradient)")
        parser.add_argument("--keep", type=int, default=2, help="inputs kept per node, at most its in-degree "
                                                                "(default 2, the paper's top-2)")
        parser.add_argument("--tie-tol", type=float, default=0.01,
                            help="beta within this share of the largest beta movement of the cut are tied and the "
                                 "stated rule breaks the tie (default 0.01; 0: beta order unless exactly equal)")
        parser.add_argument("--operator", default="replace", choices=["replace", "gradient"],
                            help="replace every kept edge with nor_conv_3x3 (default), or a DARTS mixed-op search "
                                 "on the kept edges; with --max-latency-ms: the strongest ops within the budget")
        parser.add_argument("--iterations", type=int, default=None,
                            help="topology iterations instead of --epochs (1: the paper's 1-iteration search)")
        parser.add_argument("--op-iterations", type=int, default=None,
                            help="with --operator gradient: its iterations (default: as the topology step)")
        parser.add_argument("--space-config", default=None, metavar="JSON",
                            help="without --predictor: the NB201 config, e.g. '{\"num_classes\": 100}'")
        add_training_arguments(parser, epochs=1)

    @classmethod
    def run_from_args(cls, args: argparse.Namespace, setup: SearchSetup) -> FTSOResult:
        """The search the options describe, on --data or the digits proxy (refusals name the option)."""
        from hwsearch.search_params import training_data
        from spaces import create_space

        if args.operator == "gradient" and setup.target is not None:
            raise UserInputError("--operator gradient and a latency budget: the budget picks the ops itself "
                                 "(leave --operator out)")
        for option, value, least in (("--keep", args.keep, 1), ("--iterations", args.iterations, 1),
                                     ("--op-iterations", args.op_iterations, 1), ("--epochs", args.epochs, 1),
                                     ("--batch-size", args.batch_size, 1)):
            if value is not None and value < least:
                raise UserInputError(f"{option} must be at least {least}, got {value}")
        if not args.tie_tol >= 0:
            raise UserInputError(f"--tie-tol must be a number >= 0, got {args.tie_tol}")
        if args.op_iterations is not None and args.operator != "gradient":
            raise UserInputError("--op-iterations sets the gradient operator search: add --operator gradient")
        config = None
        if args.space_config is not None:
            if setup.predictor is not None:
                raise UserInputError("--space-config: the search runs over the predictor's NB201 config; leave it out")
            try:
                config = json.loads(args.space_config)
            except json.JSONDecodeError as e:
                raise UserInputError(f"--space-config is not JSON: {e}") from None
            if not isinstance(config, dict):
                raise UserInputError(f"--space-config takes a JSON object, got {args.space_config!r}")
        if setup.predictor is not None:
            space = setup.space
            if space.name != "nb201":
                raise UserInputError(f"search ftso runs on the NB201 cell; {setup.predictor_path} is for "
                                     f"{space.name!r}")
        else:
            try:
                space = create_space("nb201", **(config or {}))
            except (TypeError, ValueError) as e:
                raise UserInputError(f"--space-config {args.space_config}: {e}") from None
        search = cls(predictor=setup.predictor, target=setup.target, metric=setup.metric,
                     space_config=None if setup.predictor is not None else space.config,
                     topology_op="skip_connect" if args.topology_op == "skip" else args.topology_op,
                     beta_form=args.beta_form, keep=args.keep, tie_tol=args.tie_tol, epochs=args.epochs,
                     iterations=args.iterations,
                     operator=args.operator, op_iterations=args.op_iterations, batch_size=args.batch_size,
                     seed=args.seed, threads=args.threads if args.threads != 0 else None)
        search._validate()
        data = training_data(args, space)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InfeasibleBudgetWarning)
            result = search.search(data)
        for w in caught:
            if issubclass(w.category, InfeasibleBudgetWarning):
                print(f"warning: {w.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return result

    @classmethod
    def summary_lines(cls, res: dict[str, Any]) -> list[str]:
        """β per edge, the kept topology (ties named), the ops, the budget's record."""
        edges = [f"{s}->{d}" for s, d in EDGES]
        lines = [f"topology ({res['topology_op']}, {res['iterations']} iteration(s), beta {res['beta_form']}): "
                 + "  ".join(f"{n} {b:+.5f}{'' if e in res['kept'] else ' (dropped)'}"
                             for e, (n, b) in enumerate(zip(edges, res["beta"], strict=True)))]
        for r in res["ties"]:
            if r.get("by_rule"):
                lines.append(f"  node {r['node']}: inputs {', '.join(map(str, r['tied']))} tied (margin "
                             f"{r['margin']:.2e} <= {r['eps']:.2e}); kept {r['kept']} by rule: {r['rule']}")
        lines.append("ops: " + "  ".join(f"{n} {op}" for n, op in zip(edges, res["ops"], strict=True))
                     + f"  [{res['operator']}]")
        b = res.get("budget")
        if b:
            lines.append(f"budget: {b['n_within']} of {b['candidates']} assignments predicted within; strength "
                         f"{b['strength']}/{b['max_strength']}" + ("" if b["feasible"] else " (none within)")
                         + f"; all conv3x3 would be {b['replace_predicted']:.4g} {res['unit']}")
        return lines
