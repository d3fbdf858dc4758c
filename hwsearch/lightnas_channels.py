"""LightNAS stage 2 (thesis §4.3.5, Algorithm 2): a channel scale per layer of a stage-1 LightNet, chosen by an
evolution scored by batch training efficiency (BTE, hwsearch.bte) under the same latency target.

The space is `mbconv-channels` over the LightNAS result (`base`): one scale in {0.5, ..., 2.0} of each MBConv
layer's hidden width; all scales 1.0 is the stage-1 network itself. The predictor must be one trained on
measured channel configurations of that very base (thesis §2.2: one predictor per LightNet); another space or
another base is refused, naming both.

Algorithm 2 as run here (the thesis' defaults: P = 20, Q = 20, k = 10, r = 0.5, E = 3):
- P_0: the base configuration when it is predicted within the tolerance (so stage 2 never returns a network
  with a lower BTE than the stage-1 one: the base stays in the top-k until k better ones are found), then
  uniform random configurations under the constraint; for i = 1..Q: score P_{i-1} by BTE, Topk = the k best
  of Topk ∪ P_{i-1}, P_i = (P-k)/2 crossover children ∪ (P-k)/2 mutation children ∪ Topk (operators:
  hwsearch.lightnas_channels_engine). P_Q would never be scored, so it is not drawn: Q scorings in all.
- The constraint "LAT = T" is |predicted/T − 1| <= `tolerance` (default 2%: the stage-1 search's refine
  tolerance and the closed loop's default, so both stages aim at the same band; the thesis leaves it open).
  Candidates come by bounded rejection sampling, predicted in batches of `draw_batch`, at most `max_draws`
  proposals per candidate; a configuration already scored or drawn is rejected too (no slot spent twice).
  A target outside the predictor's reachable range (±tolerance) is refused before anything trains.
- BTE: each candidate trains from the same seed for `epochs` on the first `images` images of the digits
  proxy's training split at `resolution` px (the networks end in global pooling, so they run at any size; 32 px
  leaves a 1x1 map after the five stride-2 stages), fixed batches of `batch_size`, SGD at hwsearch.bte's
  constant rate; BTE of the logged training loss with hwsearch.bte's rule for negative factors. Scores are
  cached per configuration: a top-k member is never retrained.
Deterministic under `seed`. This module holds the parameters, their checks and the CLI options, and imports
no torch; the loop is hwsearch.lightnas_channels_engine.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hwsearch.lightnas_channels_result import LightNASChannelsResult, summary_lines
from hwsearch.registry import register_search
from hwsearch.search_params import SEARCH_CONSTRAINTS, check_predictor_and_target, optional
from predictors.base import Constraint, InvalidParameterError, Params
from predictors.common import float_above, int_at_least, one_of
from spaces.errors import UserInputError

if TYPE_CHECKING:
    from hwsearch.pipeline import SearchSetup
    from spaces.mbconv_channels import MBConvChannelSpace

NEGATIVE_RULES = ("zero", "signed", "literal")  # hwsearch.bte.NEGATIVE_RULES (not imported: it needs numpy only,
# but the CLI's parser is built from here and stays light)
DEFAULT_TOLERANCE = 0.02
DEFAULT_MAX_DRAWS = 10_000
DIGITS_TRAIN = 1438  # images in the digits proxy's training split (80% of 1,797)


def _fraction(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1


def _base_given(v: Any) -> bool:
    return v is None or isinstance(v, str | Path | dict) or hasattr(v, "to_dict")


@register_search("lightnas-channels")
class LightNASChannels(Params):
    """LightNAS stage 2 (scikit-learn style: parameters in __init__, `fit` runs, the result in `result_`).

    `predictor`: a fitted predictor of space mbconv-channels over the base (a saved folder, a fitted predictor
    or a hwsearch.CostModel); `target` in ms (or mJ with metric="energy"); `base`: the LightNAS result (JSON
    path, its dict, or the result), None for the predictor's own base. `population` P, `iterations` Q,
    `top_k` k, `rate` r (crossover and mutation); `tolerance`, `max_draws`, `draw_batch`: the rejection
    sampling; `epochs`, `resolution`, `images`, `batch_size`, `lr` (None: hwsearch.bte's), `negative`
    (None: hwsearch.bte's rule): the BTE training."""

    name: ClassVar[str] = "lightnas-channels"
    summary: ClassVar[str] = "LightNAS stage 2: per-layer channel scales of a LightNet by BTE-scored evolution"
    needs_target: ClassVar[bool] = False  # without --target-ms/-mj: the stage-1 target, read from --base
    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        "metric": SEARCH_CONSTRAINTS["metric"],
        "base": (_base_given, "None, a LightNAS result JSON path, its dict or the result"),
        "population": int_at_least(2), "iterations": int_at_least(1), "top_k": int_at_least(1),
        "rate": (_fraction, "a number in [0, 1]"), "tolerance": float_above(0.0),
        "max_draws": int_at_least(1), "draw_batch": int_at_least(1), "epochs": int_at_least(2),
        "resolution": int_at_least(8), "images": int_at_least(2), "batch_size": int_at_least(2),
        "lr": optional(float_above(0.0)), "negative": optional(one_of(*NEGATIVE_RULES)),
        "seed_base": ((lambda v: isinstance(v, bool)), "a bool"), "reach_samples": int_at_least(1),
        "seed": int_at_least(0), "progress": ((lambda v: isinstance(v, bool)), "a bool"),
        "threads": optional(int_at_least(1)),
    }

    def __init__(self, predictor: Any = None, target: float | None = None, base: Any = None,
                 metric: str = "latency", population: int = 20, iterations: int = 20, top_k: int = 10,
                 rate: float = 0.5, tolerance: float = DEFAULT_TOLERANCE, max_draws: int = DEFAULT_MAX_DRAWS,
                 draw_batch: int = 512, epochs: int = 3, resolution: int = 32, images: int = 512,
                 batch_size: int = 64, lr: float | None = None, negative: str | None = None,
                 seed_base: bool = True, reach_samples: int = 20_000, seed: int = 0, progress: bool = False,
                 threads: int | None = 1) -> None:
        self.predictor = predictor
        self.target = target
        self.base = base
        self.metric = metric
        self.population = population
        self.iterations = iterations
        self.top_k = top_k
        self.rate = rate
        self.tolerance = tolerance
        self.max_draws = max_draws
        self.draw_batch = draw_batch
        self.epochs = epochs
        self.resolution = resolution
        self.images = images
        self.batch_size = batch_size
        self.lr = lr
        self.negative = negative
        self.seed_base = seed_base
        self.reach_samples = reach_samples
        self.seed = seed
        self.progress = progress
        self.threads = threads

    def __repr__(self) -> str:
        return f"LightNASChannels({', '.join(f'{k}={v!r}' for k, v in self._json_params().items())})"

    def _json_params(self) -> dict[str, Any]:
        params = {k: v for k, v in self.get_params().items() if k != "predictor"}
        base = self.base
        if base is not None and not isinstance(base, str | Path):
            base = (base if isinstance(base, dict) else base.to_dict()).get("arch_id")
        params["base"] = None if base is None else str(base)
        return params

    def _validate(self) -> None:
        self._validate_params()
        check_predictor_and_target("LightNASChannels", self.predictor, self.target, self.metric,
                                   "a saved predictor folder, a fitted predictor or a hwsearch.CostModel of space "
                                   "mbconv-channels")
        if self.top_k >= self.population:
            raise InvalidParameterError(f"LightNASChannels: top_k ({self.top_k}) must be below the population "
                                        f"({self.population}), or no new candidate is ever drawn")
        if self.tolerance >= 1:
            raise InvalidParameterError(f"LightNASChannels: tolerance is a fraction of the target (0.02 = 2%), "
                                        f"got {self.tolerance}")
        if self.images < self.batch_size:
            raise InvalidParameterError(f"LightNASChannels: {self.images} images make no full batch of "
                                        f"{self.batch_size} (BTE needs at least one)")
        if self.images > DIGITS_TRAIN:
            raise InvalidParameterError(f"LightNASChannels: the digits proxy's training split has {DIGITS_TRAIN} "
                                        f"images, got images={self.images}")

    def search(self) -> LightNASChannelsResult:
        """`fit` and return its result."""
        return self.fit().result_

    def fit(self) -> LightNASChannels:
        """Run Algorithm 2 (see the module's docstring); the result in `result_`, every scored configuration's
        BTE in `scores_` (arch id -> BTE)."""
        from hwsearch.lightnas_channels_engine import fit_search

        self._validate()
        self.result_, self.scores_ = fit_search(self)
        return self

    # --- `edgeprof search lightnas-channels` ----------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Stage 2's own options: the base, Algorithm 2's sizes, the sampling and the BTE training."""
        parser.add_argument("--base", required=True, metavar="FOUND.json",
                            help="the stage-1 LightNAS result (edgeprof search lightnas --out FOUND.json)")
        parser.add_argument("--population", type=int, default=20, help="population P (default 20, the thesis')")
        parser.add_argument("--iterations", type=int, default=20, help="iterations Q (default 20)")
        parser.add_argument("--top-k", type=int, default=10, help="top-k kept each iteration (default 10)")
        parser.add_argument("--rate", type=float, default=0.5,
                            help="crossover and mutation rate r (default 0.5): a child's entry comes from the "
                                 "second parent, or is resampled, with probability r")
        parser.add_argument("--latency-tolerance", type=float, default=DEFAULT_TOLERANCE,
                            metavar="F", help="a candidate is predicted within this fraction of the target "
                                              f"(default {DEFAULT_TOLERANCE}: ±2%%)")
        parser.add_argument("--max-draws", type=int, default=DEFAULT_MAX_DRAWS,
                            help=f"proposals looked at per candidate at most (default {DEFAULT_MAX_DRAWS:,})")
        parser.add_argument("--epochs", type=int, default=3, help="BTE training epochs E (default 3, >= 2)")
        parser.add_argument("--resolution", type=int, default=32,
                            help="side of the digits images BTE trains on (default 32)")
        parser.add_argument("--images", type=int, default=512,
                            help=f"training images for BTE (default 512 of the proxy's {DIGITS_TRAIN})")
        parser.add_argument("--batch-size", type=int, default=64, help="BTE's fixed batch size (default 64)")
        parser.add_argument("--negative", choices=NEGATIVE_RULES, default=None,
                            help="how BTE counts a negative per-epoch factor (default: hwsearch.bte's)")
        parser.add_argument("--no-base", action="store_true",
                            help="do not seed P_0 with the stage-1 network (all scales 1.0)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--threads", type=int, default=1, help="torch threads for BTE training (default 1; "
                                                                   "0 keeps torch's)")

    @classmethod
    def run_from_args(cls, args: argparse.Namespace, setup: SearchSetup) -> LightNASChannelsResult:
        """The search the options describe; a predictor of another space or base is refused naming both."""
        from hwsearch.cost import as_predict_model

        cost = as_predict_model(setup.predictor, setup.metric)
        channel_space(args.base, cost.space, cost.space_config, f"the predictor {setup.predictor_path}",
                      f"--base {args.base}")
        target = setup.target if setup.target is not None else base_target(args.base, setup.metric)
        search = cls(predictor=cost, target=target, base=args.base, metric=setup.metric,
                     population=args.population, iterations=args.iterations, top_k=args.top_k, rate=args.rate,
                     tolerance=args.latency_tolerance, max_draws=args.max_draws, epochs=args.epochs,
                     resolution=args.resolution, images=args.images, batch_size=args.batch_size,
                     negative=args.negative, seed_base=not args.no_base, seed=args.seed,
                     progress=setup.progress and not args.json,
                     threads=args.threads if args.threads != 0 else None)
        return search.search()

    @classmethod
    def summary_lines(cls, res: dict[str, Any]) -> list[str]:
        return summary_lines(res)


def base_target(base: str | Path, metric: str) -> float:
    """The target the stage-1 search at `base` (a LightNAS result JSON) aimed at: stage 2's when none is given.
    UserInputError when the file has none, or one of another metric."""
    import json

    try:
        res = json.loads(Path(base).read_text())
    except (OSError, ValueError) as e:
        raise UserInputError(f"--base {base}: cannot read a LightNAS result from it ({e})") from None
    target, theirs = (res.get("target"), res.get("metric", "latency")) if isinstance(res, dict) else (None, None)
    if not isinstance(target, int | float) or isinstance(target, bool) or not target > 0:
        raise UserInputError(f"--base {base} holds no target to keep; give --target-ms (or --target-mj)")
    if theirs != metric:
        raise UserInputError(f"--base {base} searched for {theirs}, not {metric}: give the target of this "
                             f"search (--target-ms or --target-mj)")
    return float(target)


def _describe(space: MBConvChannelSpace) -> str:
    return f"base {space.base_id} ({space.base_space.name} {space.base_space.config})"


def channel_space(base: Any, space: str, config: dict[str, Any] | None, who: str = "the predictor",
                  given: str = "the base") -> MBConvChannelSpace:
    """The channel space the search explores: the one over `base` (a LightNAS result), checked to be the space
    the predictor (`space`/`config`) was trained on; with `base` None, the predictor's. UserInputError naming
    both spaces or both bases otherwise."""
    from spaces import create_space
    from spaces.mbconv_channels import NAME, channel_space_for

    if space != NAME:
        raise UserInputError(f"{who} predicts space {space!r} ({config or {}}), not channel configurations of a "
                             f"LightNet: stage 2 needs a predictor trained on measured {NAME} configurations of "
                             f"{given} (profile --space {NAME}, then train)")
    theirs = create_space(NAME, **(config or {}))
    if base is None:
        return theirs
    ours = channel_space_for(base)
    if ours.config != theirs.config:
        raise UserInputError(f"{who} was trained on channel configurations of {_describe(theirs)}, but "
                             f"{given} is {_describe(ours)}: a LightNet's channel predictor serves that LightNet "
                             "only (measure its channel configurations and train one)")
    return ours
