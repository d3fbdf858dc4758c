"""Domino's evolutionary Pareto search (thesis Eq. 5.3: maximise ACC(α) s.t. LAT(α) <= T, T swept).

NSGA-II (pymoo) over a space's archs (genes = op indices; for a grafting space's 0/1 mask, mutation is a bit
flip) with two predicted objectives, latency (minimised) and accuracy (maximised), and one constraint, latency
within the largest budget. Every distinct arch predicted counts as one evaluation (predictions are cached by
arch). The Pareto set is the non-dominated set among everything evaluated within the largest budget; each
budget's pick is its most accurate member within that budget (the thesis' Domino-{A,B,C,D}).

Choices where the thesis is silent (digest §3.6): OFA's EvolutionFinder defaults where they carry over
(population 100, per-gene mutation probability 0.1, uniform crossover); 60 generations instead of OFA's 500
(a 17-bit space's front settles well before, in seconds); NSGA-II's constraint domination instead of OFA's
rejection sampling, so no loop waits for a feasible draw. The initial population is the space's
`sample_unique` (a grafting space stratifies it by the number of grafted blocks, so both extremes are in it).
Budgets by default are `n_budgets` evenly inside the sample's predicted range, lo + (hi − lo)·k/(n + 1), k = 1..n:
the dearest sampled network (a grafting space's sample holds the all-original one) is no trade-off to pick.

The baseline: the same number of distinct random archs (`sample_unique` with the same seed: its first
`population` are the initial population), predicted; both sets' hypervolume against one reference point,
(1.05 × the largest budget, the lowest predicted accuracy within it of either set).
"""

from __future__ import annotations

import argparse
import math
import numbers
import string
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hwsearch.domino_result import DominoResult
from hwsearch.registry import register_search
from hwsearch.result import UNITS
from hwsearch.search_params import SEARCH_CONSTRAINTS, optional, parse_numbers, positive_number, search_space
from predictors.base import Constraint, InvalidParameterError, Params
from predictors.common import int_at_least, one_of
from spaces.errors import RuntimeFailure, UserInputError

if TYPE_CHECKING:
    from hwsearch.pipeline import SearchSetup
    from spaces import SearchSpace

REF_MARGIN = 1.05  # the hypervolume's reference latency, × the largest budget (a member at it still counts)


def _real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _member(space: SearchSpace, arch: tuple[int, ...], lat: float, acc: float) -> dict[str, Any]:
    return {"arch": list(arch), "arch_id": space.arch_id(arch), "predicted_ms": float(lat),
            "predicted_accuracy": float(acc)}


def _front(archs: list[tuple[int, ...]], lat: np.ndarray, acc: np.ndarray, limit: float) -> list[int]:
    """Indices of the non-dominated archs predicted within `limit` (finite, positive), by latency."""
    from hwsearch.pareto import pareto_front

    ok = np.flatnonzero(np.isfinite(lat) & np.isfinite(acc) & (lat > 0) & (lat <= limit))
    return [int(ok[i]) for i in pareto_front(lat[ok], acc[ok])]


class _Predictions:
    """Latency and accuracy of archs, each distinct arch predicted once (`len` = evaluations)."""

    def __init__(self, cost: Any, acc: Any, space: SearchSpace) -> None:
        self.cost, self.acc, self.space = cost, acc, space
        self.seen: dict[tuple[int, ...], tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self.seen)

    def __call__(self, archs: list[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
        from hwsearch.cost import predict_archs

        new = list(dict.fromkeys(a for a in archs if a not in self.seen))
        if new:
            lat = predict_archs(self.cost, self.space, new)
            acc = np.asarray(self.acc.predict([self.space.arch_id(a) for a in new]), dtype=float).reshape(-1)
            self.seen.update(zip(new, zip(lat.tolist(), acc.tolist(), strict=True), strict=True))
        values = np.array([self.seen[a] for a in archs], dtype=float).reshape(-1, 2)
        return values[:, 0], values[:, 1]


def _other_op_mutation(n_ops: int, prob_var: float) -> Any:
    """pymoo mutation for spaces of more than two ops: per gene with probability `prob_var`, another op."""
    from pymoo.core.mutation import Mutation

    class OtherOp(Mutation):
        def _do(self, problem: Any, x: np.ndarray, random_state: Any = None, **kwargs: Any) -> np.ndarray:
            hit = random_state.random(x.shape) < self.get_prob_var(problem, size=(len(x), 1))
            return np.where(hit, (x + random_state.integers(1, n_ops, size=x.shape)) % n_ops, x)

    return OtherOp(prob=1.0, prob_var=prob_var)


def _labels(n: int) -> list[str]:
    return [string.ascii_uppercase[i] if i < 26 else f"#{i + 1}" for i in range(n)]


@register_search("domino")
class DominoSearch(Params):
    """Domino's Pareto search (scikit-learn style: parameters in __init__, `fit` validates and runs, the result
    in `result_`; also `predictions_`: {arch: (latency, accuracy)} of every arch evaluated).

    `predictor`: the device's latency predictor (fitted, a saved folder or a `hwsearch.CostModel`); `accuracy`:
    a saved or fitted accuracy predictor of the space (required); `budgets` in ms, or None for `n_budgets`
    spread over the initial sample; `target` (optional) is added to the budgets and its pick is the result's
    arch; `population`, `generations` (of offspring after the initial population), `mutation_prob` (per gene),
    `crossover_prob` (per pair), `seed`; `space`/`space_config` default to the predictor's.
    """

    name: ClassVar[str] = "domino"
    summary: ClassVar[str] = ("Domino: NSGA-II Pareto set of accuracy vs predicted latency over a budget sweep, "
                              "against random masks")
    needs_target: ClassVar[bool] = False
    predictor_flag: ClassVar[str] = "--latency-predictor"  # what a refusal names for the common --predictor
    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **SEARCH_CONSTRAINTS,
        "metric": one_of("latency"),
        "budgets": ((lambda v: v is None or (isinstance(v, list | tuple) and len(v) > 0
                                            and all(positive_number(b) for b in v))),
                    "None or a non-empty list of positive numbers (ms)"),
        "n_budgets": int_at_least(1),
        "target": optional((positive_number, "a positive number")),
        "population": int_at_least(2),
        "generations": int_at_least(1),
        "mutation_prob": ((lambda v: positive_number(v) and v <= 1), "a probability in (0, 1]"),
        "crossover_prob": ((lambda v: (positive_number(v) and v <= 1) or (_real(v) and v == 0)),
                           "a probability in [0, 1]"),
        "seed": int_at_least(0),
    }

    def __init__(self, predictor: Any = None, accuracy: Any = None, budgets: list[float] | None = None,
                 n_budgets: int = 4, target: float | None = None, population: int = 100, generations: int = 60,
                 mutation_prob: float = 0.1, crossover_prob: float = 0.9, seed: int = 0, metric: str = "latency",
                 space: str | None = None, space_config: dict[str, Any] | None = None) -> None:
        self.predictor = predictor
        self.accuracy = accuracy
        self.budgets = budgets
        self.n_budgets = n_budgets
        self.target = target
        self.population = population
        self.generations = generations
        self.mutation_prob = mutation_prob
        self.crossover_prob = crossover_prob
        self.seed = seed
        self.metric = metric
        self.space = space
        self.space_config = space_config

    def __repr__(self) -> str:
        return f"DominoSearch({', '.join(f'{k}={v!r}' for k, v in self._json_params().items())})"

    def _json_params(self) -> dict[str, Any]:
        params = {k: v for k, v in self.get_params().items() if k != "predictor"}
        acc = params["accuracy"]
        if acc is not None:
            params["accuracy"] = str(acc) if isinstance(acc, str | Path) else getattr(acc, "kind", type(acc).__name__)
        params["budgets"] = None if self.budgets is None else [float(b) for b in self.budgets]
        return params

    def _validate(self) -> None:
        self._validate_params()
        if self.predictor is None:
            raise InvalidParameterError("DominoSearch needs a latency predictor (a fitted predictor, a saved "
                                        "predictor folder or a hwsearch.CostModel)")
        if self.accuracy is None:
            raise InvalidParameterError("DominoSearch needs an accuracy predictor (accuracy=...): a saved or "
                                        "fitted accuracy predictor of the space, e.g. the adapted maml-acc")

    # --- the search --------------------------------------------------------------------------------------

    def search(self) -> DominoResult:
        """`fit` and return its result."""
        return self.fit().result_

    def fit(self) -> DominoSearch:
        """Initial sample, budgets, NSGA-II, the Pareto set and picks, the random baseline (module docstring)."""
        from hwsearch.cost import as_predict_model
        from hwsearch.random_search import load_accuracy_predictor

        self._validate()
        start = time.perf_counter()
        cost = as_predict_model(self.predictor, self.metric)
        space = search_space("DominoSearch", cost, self.space, self.space_config)
        acc_pred, acc_label = load_accuracy_predictor(self.accuracy, space, otherwise=" (Domino needs one)")
        predict = _Predictions(cost, acc_pred, space)
        initial = space.sample_unique(min(self.population, space.size), np.random.default_rng(self.seed))
        lat0, _ = predict(initial)
        budgets = self._budgets(lat0)
        history = self._evolve(space, predict, initial, max(budgets))
        archs = list(predict.seen)
        evaluations = len(archs)
        lat, acc = predict(archs)
        if not np.isfinite(acc).any():
            raise RuntimeFailure(f"the accuracy predictor ({acc_label}) predicts no finite accuracy for any of the "
                                 f"{evaluations} networks evaluated")
        self._check_feasible(budgets, lat[np.isfinite(acc)], evaluations)
        front = _front(archs, lat, acc, max(budgets))
        self.predictions_ = dict(predict.seen)  # the search's own, before the baseline's
        rand_archs = space.sample_unique(evaluations, np.random.default_rng(self.seed))
        r_lat, r_acc = predict(rand_archs)
        r_front = _front(rand_archs, r_lat, r_acc, max(budgets))
        ref = self._reference(budgets, acc[front], r_acc[r_front])
        picks = self._picks(space, budgets, [archs[i] for i in front], lat[front], acc[front], r_lat, r_acc)
        chosen = next(p for p in picks if p["budget_ms"] == (self.target or max(budgets)))
        self.result_ = DominoResult(
            search=self.name, space=space.name, space_config=space.config, arch=chosen["arch"],
            arch_id=chosen["arch_id"], target=chosen["budget_ms"], metric=self.metric, unit=UNITS[self.metric],
            predicted=chosen["predicted_ms"], wall_s=time.perf_counter() - start, params=self._json_params(),
            predictor={"space": cost.space, "space_config": cost.space_config, "source": cost.source,
                       "device": cost.device_name},
            pareto=[_member(space, archs[i], lat[i], acc[i]) for i in front], budgets=budgets, picks=picks,
            evaluations=evaluations, hypervolume=self._hv(lat[front], acc[front], ref), reference=ref,
            random={"evaluations": len(rand_archs), "seed": self.seed,
                    "pareto": [_member(space, rand_archs[i], r_lat[i], r_acc[i]) for i in r_front],
                    "hypervolume": self._hv(r_lat[r_front], r_acc[r_front], ref)},
            random_cloud={"predicted_ms": r_lat.tolist(), "predicted_accuracy": r_acc.tolist()},
            history=history, accuracy_predictor=acc_label, population=len(initial),
            generations=history[-1]["generation"] if history else 0,
            seed=self.seed)
        return self

    def _budgets(self, lat0: np.ndarray) -> list[float]:
        """The budgets (ms, ascending, the target among them): given, or spread over the initial sample."""
        if self.budgets is not None:
            budgets = {float(b) for b in self.budgets}
        else:
            ok = lat0[np.isfinite(lat0) & (lat0 > 0)]
            if ok.size == 0 or ok.max() <= ok.min():
                raise RuntimeFailure(f"the latency predictor predicts no spread of positive latencies over the "
                                     f"{lat0.size} sampled networks, so no budgets to sweep: give --budgets")
            lo, hi = float(ok.min()), float(ok.max())
            budgets = {lo + (hi - lo) * k / (self.n_budgets + 1) for k in range(1, self.n_budgets + 1)}
        if self.target is not None:
            budgets.add(float(self.target))
        return sorted(budgets)

    def _evolve(self, space: SearchSpace, predict: _Predictions, initial: list[tuple[int, ...]],
                limit: float) -> list[dict[str, Any]]:
        """NSGA-II from `initial` for `generations` offspring generations; per generation: evaluations so far."""
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.callback import Callback
        from pymoo.core.problem import Problem
        from pymoo.operators.crossover.ux import UniformCrossover
        from pymoo.operators.mutation.bitflip import BitflipMutation
        from pymoo.optimize import minimize

        binary = space.n_ops == 2

        class Objectives(Problem):
            def __init__(self) -> None:
                super().__init__(n_var=space.n_layers, n_obj=2, n_ieq_constr=1, xl=0, xu=space.n_ops - 1,
                                 vtype=bool if binary else int)

            def _evaluate(self, x: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
                lat, acc = predict([tuple(int(v) for v in row) for row in np.asarray(x, dtype=np.int64)])
                bad = ~(np.isfinite(lat) & (lat > 0) & np.isfinite(acc))
                lat, acc = np.where(bad, 1e12, lat), np.where(bad, -1e12, acc)  # never chosen, never NaN
                out["F"] = np.column_stack([lat, -acc])
                out["G"] = (lat - limit)[:, None]

        history: list[dict[str, Any]] = []

        class Record(Callback):
            def notify(self, algorithm: Any) -> None:
                history.append({"generation": algorithm.n_gen - 1, "evaluations": len(predict),
                                "wall_s": round(time.perf_counter() - t0, 4)})

        mutation = (BitflipMutation(prob=1.0, prob_var=self.mutation_prob) if binary
                    else _other_op_mutation(space.n_ops, self.mutation_prob))
        algorithm = NSGA2(pop_size=len(initial), sampling=np.array(initial, dtype=bool if binary else np.int64),
                          crossover=UniformCrossover(prob=self.crossover_prob), mutation=mutation,
                          eliminate_duplicates=True)
        t0 = time.perf_counter()
        minimize(Objectives(), algorithm, ("n_gen", self.generations + 1), seed=self.seed, callback=Record(),
                 verbose=False)
        return history

    @staticmethod
    def _check_feasible(budgets: list[float], lat: np.ndarray, evaluations: int) -> None:
        """UserInputError when no network found is predicted within the smallest budget (so neither within the
        largest), naming the budget and the cheapest predicted latency."""
        ok = lat[np.isfinite(lat) & (lat > 0)]
        if ok.size == 0:
            raise RuntimeFailure(f"the latency predictor predicts no positive latency for any of the {evaluations} "
                                 "networks evaluated")
        cheapest = float(ok.min())
        for which, budget in (("largest", budgets[-1]), ("smallest", budgets[0])):
            if cheapest > budget:
                raise UserInputError(f"no network found within the {which} budget, {budget:.4g} ms: the cheapest "
                                     f"of the {evaluations} evaluated is predicted {cheapest:.4g} ms; give budgets "
                                     f"of at least that")

    def _picks(self, space: SearchSpace, budgets: list[float], members: list[tuple[int, ...]], lat: np.ndarray,
               acc: np.ndarray, r_lat: np.ndarray, r_acc: np.ndarray) -> list[dict[str, Any]]:
        """Per budget: the most accurate member within it (of equal ones the cheaper), and the best random."""
        from hwsearch.pareto import best_under

        ok = np.isfinite(r_lat) & np.isfinite(r_acc)
        picks = []
        for label, budget in zip(_labels(len(budgets)), budgets, strict=True):
            within = np.flatnonzero(lat <= budget)
            k = int(within[np.lexsort((lat[within], -acc[within]))[0]])
            best = best_under(r_lat[ok], r_acc[ok], budget)
            picks.append({"label": label, "budget_ms": budget, **_member(space, members[k], lat[k], acc[k]),
                          "random_best_accuracy": None if math.isnan(best) else float(best)})
        return picks

    @staticmethod
    def _reference(budgets: list[float], acc: np.ndarray, r_acc: np.ndarray) -> dict[str, Any]:
        return {"predicted_ms": REF_MARGIN * budgets[-1], "predicted_accuracy": float(min(acc.min(), r_acc.min())),
                "rule": f"{REF_MARGIN} x the largest budget; the lowest predicted accuracy within it of either set"}

    @staticmethod
    def _hv(lat: np.ndarray, acc: np.ndarray, ref: dict[str, Any]) -> float:
        from hwsearch.pareto import hypervolume

        return hypervolume(lat, acc, ref["predicted_ms"], ref["predicted_accuracy"])

    # --- `edgeprof search domino` (common options: hwsearch.pipeline) -------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Domino's options: the two predictors, the space, the budgets and the evolution's size."""
        parser.add_argument("--latency-predictor", dest="predictor", metavar="PATH",
                            help="a saved latency predictor of DEV on the space (the same as --predictor)")
        parser.add_argument("--accuracy-predictor", metavar="PATH",
                            help="a saved accuracy predictor of the space (card quantity 'accuracy'; a maml-acc "
                                 "predictor must be adapted) (required)")
        parser.add_argument("--space", help="the space to search; must be the latency predictor's (default: its)")
        parser.add_argument("--budgets", metavar="MS,MS,...",
                            help="latency budgets in ms (default: --n-budgets spread over a random sample)")
        parser.add_argument("--n-budgets", type=int, default=4,
                            help="budgets spread evenly inside the predicted range of a random sample (default 4: "
                                 "Domino-A..D)")
        parser.add_argument("--population", type=int, default=100, help="NSGA-II population (default 100)")
        parser.add_argument("--generations", type=int, default=60, help="offspring generations (default 60)")
        parser.add_argument("--mutation-prob", type=float, default=0.1, help="per-gene mutation (default 0.1)")
        parser.add_argument("--crossover-prob", type=float, default=0.9, help="per-pair crossover (default 0.9)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--verify-max", type=int, default=None, metavar="N",
                            help="with --verify: measure at most N members, the picks and others spread along the "
                                 "set (default: every member)")

    @classmethod
    def run_from_args(cls, args: argparse.Namespace, setup: SearchSetup) -> DominoResult:
        """The search the options describe (refusals name the option)."""
        if setup.metric != "latency":
            raise UserInputError("search domino sweeps latency budgets: give --target-ms (or none) and a latency "
                                 "predictor")
        if args.correct:
            raise UserInputError("search domino measures its whole Pareto set with --verify; --correct closes the "
                                 "loop of a single-target search (random, lightnas)")
        if not args.accuracy_predictor:
            raise UserInputError("search domino needs --accuracy-predictor PATH (a saved accuracy predictor of "
                                 "the space, e.g. the adapted maml-acc one)")
        from predictors.io import read_card

        quantity = read_card(args.accuracy_predictor).get("quantity", "latency")
        if quantity != "accuracy":
            raise UserInputError(f"--accuracy-predictor {args.accuracy_predictor} predicts {quantity}, not accuracy: "
                                 "give a saved accuracy predictor of the space (edgeprof train ... --quantity "
                                 "accuracy, or an adapted maml-acc)")
        space = setup.space
        if args.space is not None and args.space != space.name:
            raise UserInputError(f"--space {args.space}: the latency predictor {setup.predictor_path} is for "
                                 f"{space.name!r}; search its space, or give a predictor of {args.space!r}")
        if args.verify_max is not None and (args.verify_max < 1 or not args.verify):
            raise UserInputError(f"--verify-max bounds what --verify measures: a number >= 1 with --verify, got "
                                 f"{args.verify_max}" + ("" if args.verify else " without --verify"))
        budgets = None if args.budgets is None else parse_numbers(args.budgets, float, "--budgets")
        if budgets is not None and not all(positive_number(b) for b in budgets):
            raise UserInputError(f"--budgets takes positive milliseconds, got {args.budgets!r}")
        return cls(predictor=setup.predictor, accuracy=args.accuracy_predictor, budgets=budgets,
                   n_budgets=args.n_budgets, target=setup.target, population=args.population,
                   generations=args.generations, mutation_prob=args.mutation_prob,
                   crossover_prob=args.crossover_prob, seed=args.seed).search()

    @classmethod
    def after_search(cls, result: DominoResult, args: argparse.Namespace, log: Any, progress: Any
                     ) -> dict[str, Any]:
        """With --verify, measure every Pareto member on the device (stored in --db)."""
        from hwsearch.domino_result import verify_pareto

        if not args.verify:
            return {}
        return verify_pareto(result, args.device, args.db, args.rounds, log, progress, verified_pick=True,
                             max_members=args.verify_max)

    @classmethod
    def summary_lines(cls, res: dict[str, Any]) -> list[str]:
        """The lines `edgeprof search domino` prints after the found network's (hwsearch.domino_result)."""
        from hwsearch.domino_result import summary_lines

        return summary_lines(res)
