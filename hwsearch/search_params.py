"""The parameter checks every search makes the same way (scikit-learn style constraints): the space it
explores (the predictor's unless given), the metric, a predictor and a positive target. No torch here: the
CLI builds its parser from the search classes, which import this.
"""

from __future__ import annotations

import argparse
import math
import numbers
from typing import TYPE_CHECKING, Any

from hwsearch.result import UNITS
from predictors.base import Constraint, InvalidParameterError
from predictors.common import one_of
from spaces.errors import UserInputError

if TYPE_CHECKING:
    from spaces import SearchSpace


def optional(c: Constraint) -> Constraint:
    """The constraint `c`, or None."""
    ok, what = c
    return (lambda v: v is None or ok(v)), f"None or {what}"


def positive_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0


# The constraints of the parameters every search has (space, space_config, metric).
SEARCH_CONSTRAINTS: dict[str, Constraint] = {
    "space": optional((lambda v: isinstance(v, str) and bool(v), "a registered space name")),
    "space_config": ((lambda v: v is None or isinstance(v, dict)), "None or a dict"),
    "metric": one_of(*UNITS),
}


def check_predictor_and_target(owner: str, predictor: Any, target: Any, metric: str, kinds: str) -> None:
    """InvalidParameterError when `owner` has no predictor (`kinds` says which it takes) or its target is not a
    positive number of the metric's unit."""
    if predictor is None:
        raise InvalidParameterError(f"{owner} needs a predictor ({kinds})")
    if not positive_number(target):
        raise InvalidParameterError(f"The 'target' parameter of {owner} must be a positive number "
                                    f"({UNITS.get(metric, 'ms')}). Got {target!r} instead.")


def search_space(owner: str, cost: Any, space: str | None, space_config: dict[str, Any] | None) -> SearchSpace:
    """The space a search explores: `space`/`space_config`, or the cost model's; refused unless the cost model
    was fitted for it (hwsearch.cost.check_space)."""
    from hwsearch.cost import check_space
    from spaces import create_space

    name = space or cost.space
    config = space_config if space is not None else (cost.space_config or {})
    try:
        built = create_space(name, **(config or {}))
    except (KeyError, ValueError, TypeError) as e:
        raise InvalidParameterError(f"{owner}: space {name!r} with config {config} does not build: {e}") from None
    check_space(cost, built)
    return built


def add_training_arguments(parser: argparse.ArgumentParser, epochs: int = 10) -> None:
    """The options of a search that trains a supernet: its data (an image folder or the digits proxy), its
    length, the image side, the batch, the seed and torch's threads (shared by LightNAS and SurgeNAS)."""
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--data", help="ImageFolder-style directory (one sub-folder of images per class)")
    data.add_argument("--proxy", choices=["digits"], help="built-in proxy task (default: digits)")
    parser.add_argument("--proxy-n", type=int, default=None, metavar="N",
                        help="use the first N images of the proxy only (a quick try; default: all 1,797 digits)")
    parser.add_argument("--epochs", type=int, default=epochs, help=f"supernet epochs (default {epochs})")
    parser.add_argument("--resolution", type=int, default=None,
                        help="train the supernet on images of this side (a lower-resolution proxy; default: "
                             "the space's). The predictor still judges the space's own networks.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads on the CPU (default 1: a proxy search's layers are too small to "
                             "split, and threads waiting for each other on a busy machine slow it many-fold; "
                             "0 keeps torch's default)")


def training_data(args: argparse.Namespace, space: SearchSpace) -> Any:
    """The data `add_training_arguments`' options name: `--data` at the search's resolution, or the digits
    proxy as a (w-split, held-out split) pair."""
    from hwsearch.data import ImageFolderDataset, digits_proxy
    from spaces.errors import UserInputError

    resolution = args.resolution or space.input_shape()[-1]
    n = getattr(args, "proxy_n", None)
    if n is not None and args.data:
        raise UserInputError("--proxy-n takes part of the proxy task; with --data, give a smaller folder")
    if n is not None and n < 10:
        raise UserInputError(f"--proxy-n must be at least 10 (some images of every digit), got {n}")
    return (ImageFolderDataset(args.data, resolution) if args.data
            else digits_proxy(resolution=resolution, seed=args.seed, n=n))


def parse_numbers(text: str, kind: type, option: str) -> list[Any]:
    """A comma-separated list of `kind` (int, float) given to `option`; UserInputError naming it otherwise."""
    what = "integers" if kind is int else "numbers"
    try:
        values = [kind(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise UserInputError(f"{option} takes comma-separated {what}, got {text!r}")
    return values
