"""SurgeNAS (thesis ch. 3): one-level differentiable search with ordered sampling, the latency predictor in
the loss at a fixed trade-off β, and identity-mapping regularisation against skip-connect collapse.

Per iteration, |O| single-path sub-networks are drawn without replacement (`hwsearch.gumbel.ordered_samples`,
Algorithm 1), so every (layer, op) is trained exactly once; each runs forward and backward on the same batch
(peak memory of one path), the gradients add up, and one step is taken for w (SGD, clip 5, cosine) and, after
the warm-up, for α (Adam) on the same data (one-level, eq. 3.4-3.5). Loss = Σᵢ CE(sub-network i) + β·LAT(P̄ᵢ)
(eq. 3.16), LAT from the frozen predictor of the board (any differentiable kind: gnn, gnn-att, mlp, gcn).
Every searchable layer adds φ·Xₗ (eq. 3.6). The final architecture is argmax α per layer. β = 0 needs no
predictor (the NAS-Bench-201 mode of Table 3.3).

Choices the thesis leaves open, decided here (and recorded in every result under `choices`):
- Identity term in shape-changing layers: none (MBConv: the first layer of each stage, stride 2 or a new width;
  a projection there would be weights the final network does not have). NB201: on every edge, `none`
  included, all six edges running while φ > 0, as (O(X) + φ·X)/(1 + φ): plain φ·X summed at the cells' nodes
  grew the activations ~10^19 and left α without gradient (`hwsearch.supernet`).
- φ: 2 during the warm-up, then linear from 2 to 0 over the α-steps (the last step has φ = 0), which fits
  the thesis' "first half of the search φ ∈ [1, 2]".
- Temperature: 1 during the warm-up (α is frozen and uniform, so τ only shuffles the order), then geometric
  per α-step from 1 to `tau_end` (0.05): near-hard samples at the end, as "decayed to be close to 0".
- The α optimiser: Adam with the thesis' weight decay 1e-3 and DARTS' betas (0.5, 0.999). Its learning rate
  defaults to 3e-3 instead of 7.5e-4: the thesis' rate is for 50 epochs of ImageNet-100 (~27k α-steps); a CPU
  search of a few hundred steps at 7.5e-4 moves α by ~0.1, under the Gumbel noise, and the argmax is luck.
- Warm-up: round(epochs/3) epochs (the thesis' 25 of 75).
- β is per unit of the predictor (1/ms for latency): LAT enters the loss in ms, as the thesis' additive form.
- `target`: β is found by bisection rather than by a dual update inside one search (which would turn SurgeNAS
  into LightNAS, whose λ is exactly that update). A search at fixed β is what the thesis defines, and with a
  fixed seed it is deterministic, so each trial is a complete short search with the same data order and
  noise: first β = 0, then β = 1/T (β·LAT ≈ 1, the CE's scale) when it was too slow, or β = −1/T when it was
  too fast (a reward for latency, as LightNAS's λ goes below 0: the target is where the user wants the
  network, and on a proxy task β = 0 may settle on cheap parameter-free cells far below it), then ×4 away from
  0 until the target is bracketed, then geometric midpoints (0 standing for ±1e-4/T: in short searches the
  latency jumps at β·T ~1e-3, where halving from 1/T takes ten trials), at most `max_trials` searches,
  stopping when one lands within `target_tolerance`. The trial predicted nearest the target by ratio
  (|log(pred/T)|: 2x over and 2x under are as far) is returned (of two as near, the cheaper), with every trial
  recorded. LAT is not exactly monotone in β (CE noise flips near-tied layers), so the bracket is on what was
  seen, not assumed.

This module holds the parameters, their checks and the `edgeprof search surgenas` options, and imports no
torch; the training loop is `hwsearch.surgenas_engine`.
"""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any, ClassVar

from hwsearch.registry import register_search
from hwsearch.search_params import (
    SEARCH_CONSTRAINTS,
    add_training_arguments,
    optional,
    parse_numbers,
    positive_number,
    training_data,
)
from hwsearch.supernet_search import SupernetSearch
from predictors.base import Constraint, InvalidParameterError
from predictors.common import float_above, int_at_least
from spaces.errors import UserInputError

if TYPE_CHECKING:
    from hwsearch.pipeline import SearchSetup
    from hwsearch.result import SearchResult
    from hwsearch.surgenas_result import SurgeNASResult

THESIS_ALPHA_LR = 7.5e-4
DEFAULT_ALPHA_LR = 3e-3


def _flag(v: Any) -> bool:
    return isinstance(v, bool)


@register_search("surgenas")
class SurgeNAS(SupernetSearch):
    """SurgeNAS search object (scikit-learn style: parameters in __init__, `fit` validates and runs, learned
    state ends in `_`: `result_`, `alpha_`, `arch_`, `beta_`, `supernet_`, `trials_`).

    `predictor`: a fitted differentiable predictor, a saved predictor folder or a `hwsearch.CostModel`;
    optional with β = 0 (then `space` names the space). `beta`: the trade-off per predictor unit; `target`
    (ms or mJ) instead finds β by bisection. `batch_size` is per process under torchrun.
    """

    name: ClassVar[str] = "surgenas"
    engine: ClassVar[str] = "hwsearch.surgenas_engine"
    warmup_share: ClassVar[float] = 1 / 3
    summary: ClassVar[str] = "one-level differentiable search, ordered sampling, β·latency in the loss"
    needs_predictor: ClassVar[bool] = False  # β = 0 searches accuracy only
    needs_target: ClassVar[bool] = False  # a fixed β needs none
    _parameter_constraints: ClassVar[dict[str, Constraint]] = {
        **SEARCH_CONSTRAINTS,
        "beta": float_above(0.0, inclusive=True),
        "target": optional((positive_number, "a positive number")),
        "epochs": int_at_least(2),
        "warmup_epochs": optional(int_at_least(0)),
        "batch_size": int_at_least(1),
        "w_lr": float_above(0.0),
        "w_momentum": float_above(0.0, inclusive=True),
        "w_weight_decay": float_above(0.0, inclusive=True),
        "grad_clip": optional(float_above(0.0)),
        "alpha_lr": float_above(0.0),
        "alpha_weight_decay": float_above(0.0, inclusive=True),
        "tau0": float_above(0.0),
        "tau_end": float_above(0.0),
        "phi0": float_above(0.0, inclusive=True),
        "identity": (_flag, "a bool"),
        "max_trials": int_at_least(2),
        "target_tolerance": float_above(0.0),
        "seed": int_at_least(0),
        "device": ((lambda v: isinstance(v, str) and (v == "cpu" or v.startswith("cuda"))),
                   "'cpu' or 'cuda' (optionally 'cuda:N')"),
        "progress": (_flag, "a bool"),
        "data_resolution": optional(int_at_least(8)),
        "threads": optional(int_at_least(1)),
    }

    def __init__(self, predictor: Any = None, beta: float = 0.0, target: float | None = None,
                 space: str | None = None, space_config: dict[str, Any] | None = None, metric: str = "latency",
                 epochs: int = 10, warmup_epochs: int | None = None, batch_size: int = 64, w_lr: float = 0.1,
                 w_momentum: float = 0.9, w_weight_decay: float = 3e-5, grad_clip: float | None = 5.0,
                 alpha_lr: float = DEFAULT_ALPHA_LR, alpha_weight_decay: float = 1e-3, tau0: float = 1.0,
                 tau_end: float = 0.05, phi0: float = 2.0, identity: bool = True, max_trials: int = 6,
                 target_tolerance: float = 0.02, seed: int = 0, device: str = "cpu", progress: bool = False,
                 data_resolution: int | None = None, threads: int | None = 1) -> None:
        self.predictor = predictor
        self.beta = beta
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
        self.grad_clip = grad_clip
        self.alpha_lr = alpha_lr
        self.alpha_weight_decay = alpha_weight_decay
        self.tau0 = tau0
        self.tau_end = tau_end
        self.phi0 = phi0
        self.identity = identity
        self.max_trials = max_trials
        self.target_tolerance = target_tolerance
        self.seed = seed
        self.device = device
        self.progress = progress
        self.data_resolution = data_resolution
        self.threads = threads

    def _validate(self) -> None:
        self._validate_params()
        if self.predictor is None:
            if self.beta or self.target is not None:
                raise InvalidParameterError("SurgeNAS with beta > 0 or a target needs a predictor (the LAT term); "
                                            "beta = 0 searches for accuracy alone")
            if self.space is None:
                raise InvalidParameterError("SurgeNAS without a predictor needs the space to search (space=...)")
        if self.target is not None and self.beta:
            raise InvalidParameterError("SurgeNAS takes beta or a target, not both: the target sets beta by "
                                        "bisection")
        if self.tau_end > self.tau0:
            raise InvalidParameterError(f"tau_end ({self.tau_end}) must be <= tau0 ({self.tau0})")
        self._check_schedule_and_device()  # warm-up: the thesis' 25 of 75 epochs, scaled (warmup_share)

    # `search`/`fit(train_data, val_data)` (SupernetSearch): w and α on the same batches of `train_data`;
    # `val_data` (optional) is held out, the found network's accuracy on it through the supernet is reported; a
    # (train, held-out) pair, as digits_proxy returns, may be passed as `train_data`. Under torchrun
    # (WORLD_SIZE > 1) it joins the process group.

    # --- `edgeprof search surgenas` -------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """SurgeNAS's own options: the trade-off, the space without a predictor, the data and the length."""
        parser.add_argument("--beta", type=float, default=None,
                            help="latency trade-off per predictor unit (1/ms): loss = CE + beta*LAT (default 0: "
                                 "accuracy alone, no predictor needed); --target-ms finds beta by bisection")
        parser.add_argument("--space", default=None,
                            help="the space to search when no --predictor is given (mbconv, mbconv-small, nb201)")
        parser.add_argument("--no-identity", action="store_true",
                            help="switch the identity-mapping regularisation off (an ablation: skip-connect "
                                 "tends to take over without it)")
        parser.add_argument("--max-trials", type=int, default=6,
                            help="with a target: searches the bisection on beta may run (default 6)")
        parser.add_argument("--scale", nargs="?", const="", default=None, metavar="DEV,DEV",
                            help="then widen the found network within each board's Comfort Zone: a width sweep, "
                                 "the widest network as fast as the found one, verified in --rounds jobs (thesis "
                                 "§5.4); on the listed devices, or on --device when no list is given")
        parser.add_argument("--scale-tolerance", type=float, default=0.10,
                            help="with --scale: latency rise that still counts as free (default 0.10)")
        parser.add_argument("--scale-phis", default=None, metavar="1,1.25,...",
                            help="with --scale: the width steps (default 1 to 3 by 0.25)")
        add_training_arguments(parser)

    @classmethod
    def scale_devices(cls, args: argparse.Namespace) -> list[str]:
        """The devices `--scale` names (the search's --device when it names none); [] without --scale."""
        if getattr(args, "scale", None) is None:
            return []
        devices = [d for d in args.scale.split(",") if d] or ([args.device] if args.device else [])
        if not devices:
            raise UserInputError("--scale without a device list widens on --device: add --device DEV or "
                                 "--scale DEV,DEV")
        return devices

    @classmethod
    def scale_phis(cls, args: argparse.Namespace) -> list[float] | None:
        if getattr(args, "scale_phis", None) is None:
            return None
        return parse_numbers(args.scale_phis, float, "--scale-phis")

    @classmethod
    def after_search(cls, result: SearchResult, args: argparse.Namespace, log: Any,
                     progress: Any) -> dict[str, Any]:
        """`--scale`: the found network widened within each listed board's Comfort Zone
        (`hwsearch.comfort_zone_run.scale_on_devices`), pictures and scaled networks beside --out."""
        devices = cls.scale_devices(args)
        if not devices:
            return {}
        from pathlib import Path

        from hwsearch.comfort_zone_run import scale_on_devices

        out = Path(args.out)
        scaled = scale_on_devices(result, devices, args.db, out.parent / f"{out.stem}.scale",
                                  tolerance=args.scale_tolerance, rounds=args.rounds, phis=cls.scale_phis(args),
                                  progress=progress, log=log)
        return {"scale": scaled}

    @classmethod
    def run_from_args(cls, args: argparse.Namespace, setup: SearchSetup) -> SurgeNASResult:
        """The search the options describe, on `--data` or the digits proxy, run to its result."""
        from spaces import create_space

        if args.beta is not None and setup.target is not None:
            raise UserInputError("--beta and a target: give one (the target sets beta by bisection)")
        if args.beta is not None and not (math.isfinite(args.beta) and args.beta >= 0):
            raise UserInputError(f"--beta must be a number >= 0, got {args.beta}")
        if args.beta and setup.predictor is None:
            raise UserInputError("--beta > 0 puts the predicted latency in the loss: add --predictor (and --device)")
        if setup.predictor is not None and args.space is not None:
            raise UserInputError("--space: the search runs over the predictor's space; leave --space out")
        if setup.predictor is None and args.space is None:
            raise UserInputError("without --predictor, name the space to search: --space nb201 (or mbconv, "
                                 "mbconv-small)")
        if cls.scale_devices(args):  # a --scale with no device, or an unknown one, is refused before the search
            from profiler.config import resolve_device

            for device in cls.scale_devices(args):
                resolve_device(device)
        phis = cls.scale_phis(args)
        if phis is not None:
            from hwsearch.comfort_zone_run import check_steps

            check_steps(phis, "--scale-phis")
        if args.scale is not None and not 0 < args.scale_tolerance <= 1:
            raise UserInputError(f"--scale-tolerance must be a fraction in (0, 1], got {args.scale_tolerance}")
        if args.epochs < 2:
            raise UserInputError(f"--epochs must be at least 2 (α is updated after the warm-up), got {args.epochs}")
        space = setup.space if setup.predictor is not None else create_space(args.space)  # unknown: exit 2
        search = cls(predictor=setup.predictor, beta=args.beta or 0.0, target=setup.target,
                     space=None if setup.predictor is not None else space.name, metric=setup.metric,
                     epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, identity=not args.no_identity,
                     max_trials=args.max_trials, progress=setup.progress, data_resolution=args.resolution,
                     threads=args.threads if args.threads != 0 else None)
        search._validate()  # a bad option value is refused before the data loads (InvalidParameterError)
        return search.search(training_data(args, space))
