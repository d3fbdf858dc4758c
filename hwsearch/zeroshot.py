"""TPC-NAS (zero-shot, mutation-only evolution, spec §1.6) under a board's predicted latency or energy.

The paper's Algorithm 2: P = {F0}, a small initial network; each iteration mutates a random member (one layer
while |P| <= 10, then two; the paper's code mutates F0 itself while |P| <= 10, which never grows P under a
budget that leaves F0 fewer than 10 feasible neighbours), rejects the child if it breaks a constraint or the
depth cap, else scores it with the proxy and inserts it; when |P| > N the lowest-scoring member goes (aging by
lowest score, not by age); the highest score wins. Here a layer-wise space's "block" is a layer and a mutation
gives it another op (MBConv: the kernel, the expansion, or `skip`, which changes the depth; NB201: an edge's
op). The constraints are the paper's (FLOPs, #params, the depth cap in main-path conv layers:
`hwsearch.proxies.tpc.conv_depth`) plus what the paper left to future work (its §5.3): a board's latency or
energy from a saved predictor, the spec's §4.3 "constraint filter" where TPC-NAS measured GPU latency in the
loop.

Batched, unlike the paper's one-child loop: each generation draws `batch` children from the population as it
stood at the generation's start, checks them against the cheap constraints, asks the predictor about the rest
in ONE call, scores the survivors in one `fast_scores` call, inserts them and trims P back to N. Keeping the N
best of what was inserted is the same set the paper's insert-then-drop-one reaches; what differs is that the
children of one generation cannot descend from each other (with `batch=1` it is the paper's loop). A child
already in P is not inserted again (the paper's code lets copies crowd the population). Rejected and
duplicate children count as iterations, as the paper's `continue` does, so the loop always ends.

F0 is `init` or the predicted-cheapest network (exact on NB201; sampled plus per-layer descent on MBConv):
the smallest a board can run. If F0 breaks a constraint, nothing smaller is known: the search warns
(InfeasibleTargetWarning) and returns F0 with `feasible: false`, as random search returns its cheapest.
A proxy without a fast path (the gradient ones: one network built per child) is cached per arch and run with
few iterations (default SLOW_ITERATIONS).
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from hwsearch.random_search import InfeasibleTargetWarning
from hwsearch.registry import register_search
from hwsearch.result import UNITS
from hwsearch.search_params import SEARCH_CONSTRAINTS, optional, positive_number, search_space
from hwsearch.zeroshot_engine import (
    SLOW_PREDICTOR_MS,
    Checks,
    Scorer,
    SlowPredictorWarning,
    all_measures,
    candidate,
    fast_counter,
    finite,
    mutate,
    one_line,
    predicted_cheapest,
)
from hwsearch.zeroshot_result import ZeroShotResult, measure_final, summary_lines
from predictors.base import Constraint, InvalidParameterError, Params
from predictors.common import int_at_least
from spaces import SearchSpace, create_space
from spaces.errors import RuntimeFailure, UserInputError

if TYPE_CHECKING:
    from hwsearch.pipeline import SearchSetup

FAST_ITERATIONS = 480_000  # the paper's; with a fast-path proxy (TPC, #params, #FLOPs) mbconv takes ~1 min here
SLOW_ITERATIONS = 500  # default with a proxy that builds each network (grad_norm, synflow, ...)
TOP_K = 10  # final candidates recorded
_POSITIVE = (positive_number, "a positive number")


@register_search("zeroshot")
class ZeroShotSearch(Params):
    """TPC-NAS: maximise a zero-shot proxy (default TPC) under predicted latency/energy, FLOPs, #params and
    depth constraints by mutation-only evolution (scikit-learn style: parameters in __init__, `fit` runs, the
    result in `result_`; `scores_` maps every scored arch id to its oriented score).

    `predictor` (a fitted cost predictor, a saved folder or a CostModel) with `target` (ms or mJ), or None to
    search under FLOPs/params/depth only (then `space` is needed); `max_flops`/`max_params` in millions,
    `max_depth` main-path conv layers; `population` N (paper 512), `iterations` (children proposed; None:
    FAST_ITERATIONS or SLOW_ITERATIONS by proxy), `batch` children per generation (1: the paper's loop)."""

    name: ClassVar[str] = "zeroshot"
    summary: ClassVar[str] = "TPC-NAS: mutation-only evolution maximising a zero-shot proxy under the constraints"
    needs_predictor: ClassVar[bool] = False
    needs_target: ClassVar[bool] = False
    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **SEARCH_CONSTRAINTS,
        "target": optional(_POSITIVE), "max_flops": optional(_POSITIVE), "max_params": optional(_POSITIVE),
        "max_depth": optional(int_at_least(1)), "population": int_at_least(1),
        "iterations": optional(int_at_least(0)), "batch": int_at_least(1), "seed": int_at_least(0),
        "proxy_batch_size": int_at_least(2), "init": optional((lambda v: isinstance(v, str | list | tuple),
                                                               "an arch id or a list of op indices")),
    }

    def __init__(self, predictor: Any = None, target: float | None = None, metric: str = "latency",
                 proxy: str = "tpc", max_flops: float | None = None, max_params: float | None = None,
                 max_depth: int | None = None, population: int = 512, iterations: int | None = None,
                 batch: int = 64, seed: int = 0, init: str | list[int] | None = None, proxy_data: str = "gaussian",
                 proxy_batch_size: int = 64, space: str | None = None,
                 space_config: dict[str, Any] | None = None) -> None:
        self.predictor = predictor
        self.target = target
        self.metric = metric
        self.proxy = proxy
        self.max_flops = max_flops
        self.max_params = max_params
        self.max_depth = max_depth
        self.population = population
        self.iterations = iterations
        self.batch = batch
        self.seed = seed
        self.init = init
        self.proxy_data = proxy_data
        self.proxy_batch_size = proxy_batch_size
        self.space = space
        self.space_config = space_config

    def __repr__(self) -> str:
        return f"ZeroShotSearch({', '.join(f'{k}={v!r}' for k, v in self._json_params().items())})"

    def _json_params(self) -> dict[str, Any]:
        params = {k: v for k, v in self.get_params().items() if k != "predictor"}
        params["init"] = None if self.init is None else (self.init if isinstance(self.init, str)
                                                         else [int(a) for a in self.init])
        return params

    def _validate(self) -> None:
        self._validate_params()
        if self.predictor is not None and self.target is None:
            raise InvalidParameterError("ZeroShotSearch: a predictor needs a target (ms or mJ) to constrain")
        if self.predictor is None and self.target is not None:
            raise InvalidParameterError("ZeroShotSearch: a target needs a predictor of the board")
        if self.predictor is None and self.space is None:
            raise InvalidParameterError("ZeroShotSearch without a predictor needs its space (space=...)")
        if self.predictor is None and self.max_flops is None and self.max_params is None:
            raise InvalidParameterError("ZeroShotSearch needs a constraint: a predictor and target, max_flops or "
                                        "max_params (the proxies grow with size: unconstrained, the largest wins)")

    def search(self) -> ZeroShotResult:
        """`fit` and return its result."""
        return self.fit().result_

    def _setup(self) -> tuple[SearchSpace, Any, Any]:
        from hwsearch.cost import as_predict_model
        from hwsearch.proxies import create_proxy

        cost = None
        if self.predictor is not None:
            cost = as_predict_model(self.predictor, self.metric)
            space = search_space("ZeroShotSearch", cost, self.space, self.space_config)
        else:
            try:
                space = create_space(self.space, **(self.space_config or {}))
            except (KeyError, ValueError, TypeError) as e:
                raise InvalidParameterError(f"ZeroShotSearch: space {self.space!r} does not build: {e}") from None
        return space, cost, create_proxy(self.proxy)

    def _initial(self, space: SearchSpace, checks: Checks) -> tuple[int, ...]:
        if self.init is not None:
            arch = space.parse(self.init) if isinstance(self.init, str) else space.validate(self.init)
            return tuple(int(a) for a in arch)
        if checks.cost is not None:
            return predicted_cheapest(space, checks.predict, self.seed)
        return predicted_cheapest(space, lambda a: fast_counter("flops", space).fast_scores(space, a), self.seed)

    def _check_speed(self, space: SearchSpace, checks: Checks, iterations: int) -> None:
        """SlowPredictorWarning when a batch of the predictor takes over SLOW_PREDICTOR_MS per arch (one that
        builds every network, as the FLOPs kind does): the search would take hours, as TPC-NAS §5.3 warns."""
        if checks.cost is None:
            return
        archs = np.random.default_rng(self.seed).integers(0, space.n_ops, size=(self.batch, space.n_layers))
        checks.predict(archs[:1])  # the first call's set-up is not the predictor's speed
        t0 = time.perf_counter()
        checks.predict(archs)
        ms = 1e3 * (time.perf_counter() - t0) / len(archs)
        if ms > SLOW_PREDICTOR_MS:
            warnings.warn(f"zeroshot search: the predictor answers in {ms:.3g} ms per network (a batch of "
                          f"{len(archs)}); {iterations:,} iterations will take about {ms * iterations / 6e4:.0f} "
                          "min. Use an MLP/GNN predictor, or fewer --iterations", SlowPredictorWarning,
                          stacklevel=3)

    def fit(self) -> ZeroShotSearch:
        """The evolution (see the module's docstring)."""
        self._validate()
        start = time.perf_counter()
        space, cost, proxy = self._setup()
        checks = Checks(space, cost, self.target, self.max_flops, self.max_params, self.max_depth)
        score = Scorer(proxy, space, self.proxy_data, self.proxy_batch_size, self.seed)
        iterations = self.iterations if self.iterations is not None else (
            FAST_ITERATIONS if score.fast else SLOW_ITERATIONS)
        rng = np.random.default_rng(self.seed)
        self._check_speed(space, checks, iterations)
        init = np.array([self._initial(space, checks)], dtype=np.int64)
        init_queries, checks.queries, checks.predict_s = checks.queries, 0, 0.0  # the loop's queries are timed
        ok0, m0 = checks(init)
        s0 = score(init)
        # the population: archs [n, L], oriented scores, measures, insertion order (older wins ties)
        pop = {"arch": init, "score": s0, "order": np.zeros(1, dtype=np.int64),
               **m0}
        self.scores_: dict[str, float] = {space.arch_id(tuple(init[0])): float(s0[0])}
        history = [[0, finite(s0[0])]]
        duplicates, done, order = 0, 0, 1
        self.population_max_ = 1  # the largest |P| after a generation's trim (never above N)
        radix = space.n_ops ** np.arange(space.n_layers, dtype=np.int64)
        members = {int(init[0] @ radix)}
        if not ok0[0]:
            iterations = 0
            warnings.warn(f"zeroshot search: the initial network {space.arch_id(tuple(init[0]))} (the smallest "
                          f"known) breaks the constraints ({'; '.join(checks.reasons(m0, 0, UNITS[self.metric]))})"
                          "; returning it (feasible: false)", InfeasibleTargetWarning, stacklevel=2)
        while done < iterations:
            b = min(self.batch, iterations - done)
            n = len(pop["score"])
            parents = pop["arch"][rng.integers(0, n, size=b)]
            children = mutate(parents, 1 if n <= 10 else 2, space.n_ops, rng)
            done += b
            codes = children @ radix
            _, first = np.unique(codes, return_index=True)
            fresh = np.zeros(b, dtype=bool)
            fresh[first] = True
            fresh &= np.array([int(c) not in members for c in codes])
            duplicates += int(b - fresh.sum())
            children, codes = children[fresh], codes[fresh]
            ok, m = checks(children)
            if not ok.any():
                continue
            children, codes, m = children[ok], codes[ok], {k: v[ok] for k, v in m.items()}
            s = score(children)
            self.scores_.update({space.arch_id(tuple(a)): float(v) for a, v in zip(children, s, strict=True)})
            keep = np.isfinite(s)
            if not keep.any():
                continue
            new = {"arch": children[keep], "score": s[keep],
                   "order": np.arange(order, order + int(keep.sum())), **{k: v[keep] for k, v in m.items()}}
            order += int(keep.sum())
            pop = {k: np.concatenate([pop[k], new[k]]) for k in pop}
            members.update(int(c) for c in codes[keep])
            if len(pop["score"]) > self.population:
                survivors = np.lexsort((pop["order"], -pop["score"]))[:self.population]
                gone = np.setdiff1d(np.arange(len(pop["score"])), survivors)
                members.difference_update(int(c) for c in pop["arch"][gone] @ radix)
                pop = {k: v[np.sort(survivors)] for k, v in pop.items()}
            self.population_max_ = max(self.population_max_, len(pop["score"]))
            best = float(pop["score"].max())
            if best > (history[-1][1] if history[-1][1] is not None else -np.inf):
                history.append([done, best])
        if score.failures and not np.isfinite(pop["score"]).any():
            raise RuntimeFailure(f"proxy {proxy.name!r} failed on all {score.evaluations} networks it scored; the "
                                 f"last: {score.last_failure or 'a value that is not finite'}")
        history.append([done, finite(float(pop["score"].max()))])
        self.population_ = pop
        self.result_ = self._result(space, cost, proxy, pop, ok0[0], init[0], checks, score, iterations,
                                    duplicates, history, time.perf_counter() - start)
        self.result_.init_queries = init_queries
        return self

    def _result(self, space: SearchSpace, cost: Any, proxy: Any, pop: dict[str, np.ndarray], feasible: bool,
                init: np.ndarray, checks: Checks, score: Scorer, iterations: int, duplicates: int,
                history: list[list[Any]], wall_s: float) -> ZeroShotResult:
        predicted = np.where(np.isnan(pop["predicted"]), np.inf, pop["predicted"])
        ranked = np.lexsort((pop["order"], predicted, -pop["score"]))  # best score, then cheapest, then oldest
        if not feasible:
            ranked = np.array([0])
        ranked = ranked[:TOP_K]
        full = all_measures(space, pop["arch"][ranked], [k for k, v in checks.limits.items() if v is not None])
        top = [candidate(space, pop, int(i), proxy, {k: v[j] for k, v in full.items()})
               for j, i in enumerate(ranked)]
        w = top[0]
        unit = UNITS[self.metric]
        return ZeroShotResult(
            search=self.name, space=space.name, space_config=space.config, arch=w["arch"], arch_id=w["arch_id"],
            target=None if self.target is None else float(self.target), metric=self.metric, unit=unit,
            predicted=w["predicted"], wall_s=wall_s, params=self._json_params(),
            predictor={} if cost is None else {"space": cost.space, "space_config": cost.space_config,
                                               "source": cost.source, "device": cost.device_name},
            proxy=proxy.name, proxy_info=proxy.describe(), proxy_value=w["proxy_value"], fast_proxy=score.fast,
            feasible=bool(feasible),
            constraints={"target": self.target, "unit": unit, "max_flops_m": self.max_flops,
                         "max_params_m": self.max_params, "max_depth": self.max_depth},
            flops_m=w["flops_m"], params_m=w["params_m"], depth=w["depth"],
            init_arch_id=space.arch_id(tuple(int(a) for a in init)), iterations=iterations,
            generations=-(-iterations // self.batch), batch=self.batch, population=self.population,
            population_final=len(pop["score"]), evaluations=score.evaluations, proxy_failures=score.failures,
            proxy_failure=score.last_failure,
            proxy_ms_per_arch=1e3 * score.seconds / score.evaluations if score.evaluations else None,
            rejected={**checks.rejected, "duplicate": duplicates}, predictor_queries=checks.queries,
            predictor_ms_per_arch=1e3 * checks.predict_s / checks.queries if checks.queries else None,
            history=history, top=top, seed=self.seed)

    # --- `edgeprof search zeroshot` ----------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """TPC-NAS's own options: the proxy, the other constraints, the evolution's size, the final measuring."""
        parser.add_argument("--proxy", default="tpc", help="the zero-shot proxy to maximise (default tpc; "
                                                           "any of `edgeprof proxies list`)")
        parser.add_argument("--max-flops", type=float, metavar="M",
                            help="FLOPs budget in millions (multiply-accumulates, as spaces.costs counts FLOPs)")
        parser.add_argument("--max-params", type=float, metavar="M", help="parameter budget in millions")
        parser.add_argument("--max-depth", type=int, metavar="D",
                            help="depth cap: main-path conv layers (TPC grows with depth; the paper caps it)")
        parser.add_argument("--space", help="the space to search without --predictor (FLOPs/params constraints "
                                            "only, as the paper); with one, the predictor's space is searched")
        parser.add_argument("--population", type=int, default=512, help="population N (default 512, the paper's)")
        parser.add_argument("--iterations", type=int, default=None,
                            help=f"children proposed (paper 480,000; default {FAST_ITERATIONS:,} with a fast-path "
                                 f"proxy, {SLOW_ITERATIONS} with one that builds every network)")
        parser.add_argument("--batch", type=int, default=64,
                            help="children per generation, predicted in one call (default 64; 1: the paper's loop)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--init", metavar="ARCH_ID", help="the initial network (default: the predicted-cheapest)")
        parser.add_argument("--proxy-data", choices=["gaussian", "digits"], default="gaussian",
                            help="stand-in batch of a data-dependent proxy (default gaussian)")
        parser.add_argument("--proxy-batch-size", type=int, default=64)
        parser.add_argument("--measure-final", type=int, default=None, metavar="K",
                            help="with --verify: measure the K best candidates on DEV and keep the best by the "
                                 "proxy whose measured value is within the target")

    @classmethod
    def run_from_args(cls, args: argparse.Namespace, setup: SearchSetup) -> ZeroShotResult:
        """The search the options describe; refusals name the option, the infeasible warning is one line."""
        k = args.measure_final
        if k is not None and (k < 1 or not args.verify or setup.target is None):
            raise UserInputError(f"--measure-final K measures the K best candidates against the target: K >= 1 "
                                 f"with --verify and --target-ms/--target-mj (got {k}"
                                 + ("" if args.verify else ", no --verify") + ")")
        if k is not None and args.correct:
            raise UserInputError("--measure-final and --correct both choose the network by measuring: give one")
        if setup.predictor is None and args.space is None:
            raise UserInputError("search zeroshot without --predictor searches --space under --max-flops/--max-params")
        if setup.predictor is not None and args.space is not None and args.space != setup.space.name:
            raise UserInputError(f"--space {args.space}: the predictor {setup.predictor_path} is for "
                                 f"{setup.space.name!r}")
        search = cls(predictor=setup.predictor, target=setup.target, metric=setup.metric, proxy=args.proxy,
                     max_flops=args.max_flops, max_params=args.max_params, max_depth=args.max_depth,
                     population=args.population, iterations=args.iterations, batch=args.batch, seed=args.seed,
                     init=args.init, proxy_data=args.proxy_data, proxy_batch_size=args.proxy_batch_size,
                     space=None if setup.predictor is not None else args.space)
        with warnings.catch_warnings():
            warnings.simplefilter("always", InfeasibleTargetWarning)
            warnings.simplefilter("always", SlowPredictorWarning)
            warnings.showwarning = one_line(warnings.showwarning)
            result = search.search()
        return result

    @classmethod
    def after_search(cls, result: ZeroShotResult, args: argparse.Namespace, log: Any, progress: Any
                     ) -> dict[str, Any]:
        """With --verify --measure-final K: the K best candidates measured on DEV (hwsearch.zeroshot_result)."""
        if not (args.verify and args.measure_final):
            return {}
        return measure_final(result, args.device, args.db, args.rounds, args.measure_final, log, progress)

    @classmethod
    def summary_lines(cls, res: dict[str, Any]) -> list[str]:
        return summary_lines(res)
