"""LightNAS (thesis ch. 4, stage 1): one differentiable single-path search that lands on a latency target.

Loss on the α-split: CE + λ·(LAT(P̄)/T − 1), where P̄ is the straight-through hard Gumbel sample and LAT
the frozen predictor on its flattened one-hot, so ∂/∂α of the cost term is (λ/T)·∂LAT/∂α: λ is unitless
(it weighs a relative latency error against the CE), which is why one η_λ serves ms and mJ targets of
any size. w descends (SGD), α descends (Adam), λ ascends: λ ← λ + η_λ·(LAT/T − 1) (eq. 4.11), so λ grows
while the arch is too slow and shrinks (below 0 if need be, no clamp) while it is too fast.

Choices the thesis leaves open, decided here:
- λ is updated from the prediction for argmax(α) (`lambda_path="argmax"`; "sample" uses the sampled
  path): the argmax arch is the one returned, so it is what must land on T, while the sampled path is
  near-random early (τ large, α small) and would make λ chase noise. Both predictions are logged.
- Damping (`lambda_damping`, ρ; not in the thesis): the α-gradient coefficient of the cost term is
  λ + ρ·(LAT(argmax α)/T − 1) instead of λ, the proportional term of a PI controller, i.e. the gradient
  of the augmented Lagrangian's ρ/2·(LAT/T − 1)² with the argmax gap. It vanishes on target, so it does
  not move the constrained optimum; it stops the plain descent-ascent from oscillating. Without it, on
  the toy runs below the argmax latency swung ±20-50% around T with growing amplitude (λ winds up while
  α, moving at Adam's ~lr per step, lags). ρ = 0 gives the thesis' update exactly.
- η_λ: the thesis' 5e-4 is tuned for 80 epochs of ~200 α-steps (~16k steps). A CPU search of a few
  epochs has ~50-500 α-steps, in which 5e-4 leaves λ ≈ 0 and the arch wherever CE noise drives it, so
  the default is DEFAULT_LAMBDA_LR (measurements there); pass lambda_lr=5e-4, lambda_damping=0 for the
  thesis' setting on long searches.
- α starts at 0; warm-up (α frozen) is round(epochs/9) epochs (the thesis' 10 of 90). After it, each
  epoch is one pass of w-steps over the w-split, then one pass of α-steps over the α-split.
- `refine` (on by default, flagged in the result): a post-step that, when the argmax arch ends off the
  target, takes the most α-probable arch within one layer of it that is within `refine_tolerance`.
- Open-loop remedy (issue 16): refine's pick can weigh what the predictor is unsure of.
  `refine_kappa` κ: with an ensemble predictor (kind "mlp-ensemble", whose mean the α-gradient and λ see)
  a candidate scores Σ log softmax(α) − κ·(std/mean of the members' predictions). `refine_trust` μ: a trust
  region, μ nats per layer between a candidate and the nearest arch the predictor was trained on (known to
  an mlp-ensemble and a saved predictor folder). `refine_radius`: candidates up to 1 or 2 layers from the
  argmax. None (the default) means: κ = DEFAULT_KAPPA, μ = DEFAULT_TRUST (where the training archs are
  known) and radius 2 for an ensemble predictor, where both LightNAS benchmarks measured the remedy's
  open-loop error below the thesis pick's (NB201 tables: mean |error| 48% -> 4.4% over 16 runs;
  local-cpu mbconv-small: 29 -> 19% and 35 -> 21% in two runs of 7 targets); κ 0, μ 0, radius 1 for any
  other predictor: the thesis' pick, unchanged. `hwsearch.cost.refine_arch` states the rule; the result's
  `refine` records κ, μ, the candidates, the pick's disagreement and its distance from the training data.
- `threads` (default 1): torch's intra-op threads on the CPU during the search. A proxy search's convolutions
  (batch 64 of 16-32 px) are too small to split, and where other processes compete for the cores, threads
  waiting for each other made a 2-epoch NB201 search on 16 px digits 16x slower (143 s on 2 threads against
  9 s on one, 2 cores at load 4). Raise it for large images on an idle many-core CPU; None keeps torch's.
- The energy variant (eq. 4.14) is the same math with an energy predictor: `metric="energy"` only
  changes labels and units (mJ).

This module holds the search's parameters, their checks and its `edgeprof search lightnas` options, and
imports no torch (the CLI builds its parser from it); the training loop is `hwsearch.lightnas_engine`.
"""

from __future__ import annotations

import argparse
import math
import numbers
from typing import TYPE_CHECKING, Any, ClassVar

from hwsearch.registry import register_search
from hwsearch.result import LightNASResult
from hwsearch.schedule import FBNET_DECAY
from hwsearch.search_params import (
    SEARCH_CONSTRAINTS,
    add_training_arguments,
    check_predictor_and_target,
    optional,
    training_data,
)
from hwsearch.supernet_search import SupernetSearch
from predictors.base import Constraint, InvalidParameterError
from predictors.common import float_above, int_at_least, one_of
from spaces.errors import UserInputError

if TYPE_CHECKING:
    from hwsearch.pipeline import SearchSetup

THESIS_LAMBDA_LR = 5e-4
# Defaults for short (CPU, few-epoch) searches, chosen on toy runs: a real MLP predictor (128-64, fitted on
# 1,200 archs, 0.3% MAPE) of a FLOPs-like synthetic latency of mbconv-small at width 0.25 / 16 px (21
# layers, predicted range 0.97-1.83 ms), digits proxy, 10 epochs, batch 32, 108 α-steps, targets 1.05,
# 1.4 and 1.75 ms. Error of the argmax arch at the end (before refine), seeds 0/1/2:
#   η_λ 0.1, ρ 10 (default):  -1.0/+0.4/-1.8%, -0.5/+5.6/-0.1%, -0.8/-4.1/-2.6%; after refine all within 2%
#   η_λ 5e-4, ρ 0 (thesis):   +15.6/-2.6/-11.1% (λ stays ~0.01: the arch is wherever CE noise left it)
#   η_λ 0.05, ρ 0:            +4.5/+19.8/-4.0% (λ winds up to ±0.6, the arch swings ±20-50% around T)
#   η_λ 0.05, ρ 3:            +3.4/+0.0/-1.1%;  η_λ 0.1, ρ 3: -1.5/+0.7/-1.2%
# The middle target is the hardest: there CE is indifferent (λ* ~ 0) and CE noise flips near-tied layers.
# NB201 (6 edges) is coarser: one edge moves latency 10-30%, so the argmax arch ends within 5% of T in
# only about half of the runs (15 of 30: 6 and 10 epochs, 3-5 targets, 3-5 seeds), and refine brings
# 27 of 30 within 2% and all 15 runs of the 6-epoch setting within 5%.
DEFAULT_LAMBDA_LR = 0.1
DEFAULT_LAMBDA_DAMPING = 10.0
# refine's open-loop remedy for an ensemble predictor (issue 16): κ 50 nats per unit of disagreement outweighs
# the 0.1-1 nat α log-probability differences of a short search's candidates; μ 5 nats per layer makes a
# training arch win over its neighbours unless the disagreement says otherwise.
DEFAULT_KAPPA = 50.0
DEFAULT_TRUST = 5.0
DEFAULT_ENSEMBLE_RADIUS = 2


def refine_settings(kappa: float | None, trust: float | None, radius: int | None, ensemble: bool,
                    known: bool) -> tuple[float, float, int]:
    """(κ, μ, radius) refine uses: the given ones, None resolved to the remedy for an ensemble predictor
    (μ only where the training archs are `known`) and to the thesis' pick otherwise (pure)."""
    k = kappa if kappa is not None else (DEFAULT_KAPPA if ensemble else 0.0)
    t = trust if trust is not None else (DEFAULT_TRUST if ensemble and known else 0.0)
    r = radius if radius is not None else (DEFAULT_ENSEMBLE_RADIUS if ensemble else 1)
    return float(k), float(t), int(r)


def lambda_step(lam: float, predicted: float, target: float, lr: float) -> float:
    """One gradient-ascent step of the multiplier (eq. 4.11): λ + η_λ·(LAT/T − 1) (pure)."""
    return lam + lr * (predicted / target - 1.0)


@register_search("lightnas")
class LightNAS(SupernetSearch):
    """LightNAS search object (scikit-learn style: parameters in __init__, `fit` validates and runs,
    learned state ends in `_`: `result_`, `alpha_`, `arch_`, `lambda_`, `supernet_`, `reach_`).

    `predictor`: a fitted differentiable predictor (mlp, gnn, gcn), a saved predictor folder, or a
    `hwsearch.CostModel`; `target` in ms (latency) or mJ (energy); `space`/`space_config` default to the
    predictor's. `batch_size` is per process under torchrun.
    """

    name: ClassVar[str] = "lightnas"
    engine: ClassVar[str] = "hwsearch.lightnas_engine"
    warmup_share: ClassVar[float] = 1 / 9
    summary: ClassVar[str] = "one-shot differentiable search to a latency or energy target"
    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **SEARCH_CONSTRAINTS,
        "epochs": int_at_least(1),
        "warmup_epochs": optional(int_at_least(0)),
        "batch_size": int_at_least(1),
        "w_lr": float_above(0.0),
        "w_momentum": float_above(0.0, inclusive=True),
        "w_weight_decay": float_above(0.0, inclusive=True),
        "alpha_lr": float_above(0.0),
        "alpha_weight_decay": float_above(0.0, inclusive=True),
        "lambda_lr": float_above(0.0),
        "lambda_init": (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)
                        and math.isfinite(v), "a finite number"),
        "lambda_path": one_of("argmax", "sample"),
        "lambda_damping": float_above(0.0, inclusive=True),
        "tau0": float_above(0.0),
        "tau_decay": (lambda v: isinstance(v, numbers.Real) and 0 < v <= 1, "a number in (0, 1]"),
        "tau_end": optional(float_above(0.0)),
        "literal_gumbel": ((lambda v: isinstance(v, bool)), "a bool"),
        "refine": ((lambda v: isinstance(v, bool)), "a bool"),
        "refine_tolerance": float_above(0.0),
        "refine_kappa": optional(float_above(0.0, inclusive=True)),
        "refine_trust": optional(float_above(0.0, inclusive=True)),
        "refine_radius": optional(((lambda v: isinstance(v, int) and not isinstance(v, bool) and v in (1, 2)),
                                   "1 or 2")),
        "reach_samples": int_at_least(1),
        "seed": int_at_least(0),
        "device": ((lambda v: isinstance(v, str) and (v == "cpu" or v.startswith("cuda"))),
                   "'cpu' or 'cuda' (optionally 'cuda:N')"),
        "progress": ((lambda v: isinstance(v, bool)), "a bool"),
        "data_resolution": optional(int_at_least(8)),
        "threads": optional(int_at_least(1)),
    }

    def __init__(self, predictor: Any = None, target: float | None = None, space: str | None = None,
                 space_config: dict[str, Any] | None = None, metric: str = "latency", epochs: int = 10,
                 warmup_epochs: int | None = None, batch_size: int = 64, w_lr: float = 0.1,
                 w_momentum: float = 0.9, w_weight_decay: float = 3e-5, alpha_lr: float = 1e-3,
                 alpha_weight_decay: float = 1e-3, lambda_lr: float = DEFAULT_LAMBDA_LR,
                 lambda_init: float = 0.0, lambda_path: str = "argmax",
                 lambda_damping: float = DEFAULT_LAMBDA_DAMPING, tau0: float = 5.0,
                 tau_decay: float = FBNET_DECAY, tau_end: float | None = None, literal_gumbel: bool = False,
                 refine: bool = True, refine_tolerance: float = 0.02, refine_kappa: float | None = None,
                 refine_radius: int | None = None, refine_trust: float | None = None, reach_samples: int = 20_000,
                 seed: int = 0, device: str = "cpu", progress: bool = False,
                 data_resolution: int | None = None, threads: int | None = 1) -> None:
        self.predictor = predictor
        self.target = target
        self.space = space
        self.space_config = space_config
        self.metric = metric
        self.epochs = epochs
        self.warmup_epochs = warmup_epochs
        self.batch_size = batch_size
        self.w_lr = w_lr
        self.w_momentum = w_momentum
        self.w_weight_decay = w_weight_decay
        self.alpha_lr = alpha_lr
        self.alpha_weight_decay = alpha_weight_decay
        self.lambda_lr = lambda_lr
        self.lambda_init = lambda_init
        self.lambda_path = lambda_path
        self.lambda_damping = lambda_damping
        self.tau0 = tau0
        self.tau_decay = tau_decay
        self.tau_end = tau_end
        self.literal_gumbel = literal_gumbel
        self.refine = refine
        self.refine_tolerance = refine_tolerance
        self.refine_kappa = refine_kappa
        self.refine_radius = refine_radius
        self.refine_trust = refine_trust
        self.reach_samples = reach_samples
        self.seed = seed
        self.device = device
        self.progress = progress
        self.data_resolution = data_resolution
        self.threads = threads

    # --- scikit-learn conventions (get_params, set_params, clone: predictors.base.Params); `search` and
    # `fit(train_data, val_data)`: SupernetSearch. w trains on `train_data` (the w-split), α on `val_data` (the
    # α-split); with `val_data` None, `train_data` may be a (w-split, α-split) pair (what digits_proxy returns)
    # or one dataset, split 80/20 with the seed. Under torchrun (WORLD_SIZE > 1) it joins the process group.

    def _validate(self) -> None:
        self._validate_params()
        for name in ("refine_kappa", "refine_trust"):
            if (getattr(self, name) or 0) > 0 and not self.refine:
                raise InvalidParameterError(f"{name}={getattr(self, name)!r} weighs refine's pick, but refine is "
                                            f"off; set refine=True or {name}=0")
        check_predictor_and_target("LightNAS", self.predictor, self.target, self.metric,
                                   "a fitted mlp/gnn/gcn predictor, a saved predictor folder or a hwsearch.CostModel")
        self._check_schedule_and_device()  # warm-up: the thesis' 10 of 90 epochs, scaled (warmup_share)

    # --- `edgeprof search lightnas` (the common options and verification are hwsearch.pipeline's) ---------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """LightNAS's own options: the data the supernet trains on and the search's length."""
        add_training_arguments(parser)
        parser.add_argument("--no-refine", action="store_true", help="keep the argmax architecture as it is")
        parser.add_argument("--refine-kappa", type=float, default=None,
                            help="refine's penalty on the ensemble's disagreement (std/mean of its members), "
                                 f"in nats per unit; needs an mlp-ensemble predictor (default {DEFAULT_KAPPA:g} for "
                                 "one, else 0: the most α-probable arch on target, the thesis' pick)")
        parser.add_argument("--refine-trust", type=float, default=None,
                            help="refine's trust region: nats per layer between a candidate and the nearest "
                                 f"arch the predictor was trained on (default {DEFAULT_TRUST:g} for an mlp-ensemble "
                                 "that knows them, else 0: off)")
        parser.add_argument("--refine-radius", type=int, default=None, choices=(1, 2),
                            help="refine's candidates: archs up to this many layers from the argmax (default "
                                 f"{DEFAULT_ENSEMBLE_RADIUS} for an mlp-ensemble, else 1)")

    @classmethod
    def run_from_args(cls, args: argparse.Namespace, setup: SearchSetup) -> LightNASResult:
        """The search the options describe, on `--data` or the digits proxy, run to its result."""
        if args.epochs < 2:
            raise UserInputError(f"--epochs must be at least 2 (α is updated after the warm-up epochs), "
                                 f"got {args.epochs}")
        search = cls(predictor=setup.predictor, target=setup.target, metric=setup.metric, epochs=args.epochs,
                     batch_size=args.batch_size, seed=args.seed, refine=not args.no_refine,
                     progress=setup.progress, data_resolution=args.resolution,
                     refine_kappa=args.refine_kappa, refine_radius=args.refine_radius,
                     refine_trust=args.refine_trust,
                     threads=args.threads if args.threads != 0 else None)
        search._validate()  # a bad option value is refused before the data loads (InvalidParameterError)
        return search.search(training_data(args, setup.space))
