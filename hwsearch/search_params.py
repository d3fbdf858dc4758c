"""The parameter checks every search makes the same way (scikit-learn style constraints): the space it
explores (the predictor's unless given), the metric, a predictor and a positive target. No torch here: the
CLI builds its parser from the search classes, which import this.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

from hwsearch.result import UNITS
from predictors.base import Constraint, InvalidParameterError
from predictors.common import one_of

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
