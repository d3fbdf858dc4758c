"""The predictor contract, scikit-learn style, with the space as a hyper-parameter.

- `__init__` stores keyword hyper-parameters only (same names, defaults, no logic). The space is one of
  them, by name and config, so a fitted predictor knows how to encode what it is asked about.
- `fit(arch_ids, y_ms)` validates parameters (`_parameter_constraints`), forgets any earlier fit,
  returns self. Learned state ends in `_`.
- `predict(arch_ids) -> ms` calls `check_is_fitted` first.
- `state()` / `from_state()` give plain arrays plus JSON: persistence (predictors/io.py) never pickles.
- Differentiable predictors (MLP, GNN) also offer `torch_model()`: a module taking the space's one-hot
  encoding [B, L*K] (or graph) and returning ms, which the searches use with gradients.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from spaces import SearchSpace, UserInputError, create_space

if TYPE_CHECKING:  # typing.Self is 3.11+ and hosts run 3.10; annotations are never evaluated at run time
    from typing_extensions import Self


class NotFittedError(RuntimeError):
    """predict() before fit()."""


class InvalidParameterError(UserInputError):
    """A hyper-parameter outside its constraint; the message names the parameter, the class and the value.
    A UserInputError: hyper-parameters come from the caller (the CLI's options, a script's arguments)."""


Constraint = tuple[Callable[[Any], bool], str]


class Params:
    """scikit-learn's parameter conventions for any estimator-like object (predictors, searches): the
    parameters are `__init__`'s keyword arguments, stored under the same names and checked against
    `_parameter_constraints` by `_validate_params`."""

    _parameter_constraints: ClassVar[dict[str, Constraint]] = {}

    @classmethod
    def _param_names(cls) -> list[str]:
        names: list[str] = []
        for klass in cls.__mro__:
            if "__init__" in klass.__dict__:
                sig = inspect.signature(klass.__dict__["__init__"])
                names += [p for p in sig.parameters if p != "self" and p not in names
                          and sig.parameters[p].kind not in (inspect.Parameter.VAR_KEYWORD,
                                                             inspect.Parameter.VAR_POSITIONAL)]
        return names

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise InvalidParameterError(f"{type(self).__name__} has no parameter {k!r} (known: {', '.join(valid)})")
            setattr(self, k, v)
        return self

    def clone(self) -> Self:
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def _validate_params(self) -> None:
        for name, (ok, what) in self._parameter_constraints.items():
            value = getattr(self, name)
            if not ok(value):
                raise InvalidParameterError(f"The {name!r} parameter of {type(self).__name__} must be {what}. "
                                            f"Got {value!r} instead.")


class LatencyPredictor(Params):
    """Base class: a latency predictor for one search space."""

    kind: ClassVar[str] = "base"

    def __init__(self, space: str = "nb201", space_config: dict[str, Any] | None = None, seed: int = 0):
        self.space = space
        self.space_config = space_config
        self.seed = seed

    def check_is_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit() first.")

    # --- the space ---------------------------------------------------------------------------------------

    def space_obj(self) -> SearchSpace:
        return create_space(self.space, **(self.space_config or {}))

    def encode(self, arch_ids: Sequence[str]) -> np.ndarray:
        """One-hot features [N, L*K] of the archs (validated by the space)."""
        sp = self.space_obj()
        return np.stack([sp.to_onehot(sp.parse(a)) for a in arch_ids]).astype(np.float32)

    # --- to implement --------------------------------------------------------------------------------------

    def fit(self, arch_ids: Sequence[str], y_ms: np.ndarray) -> LatencyPredictor:
        raise NotImplementedError

    def predict(self, arch_ids: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, JSON-able extras) that rebuild the fitted predictor with from_state."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], extra: dict[str, Any]
                   ) -> LatencyPredictor:
        raise NotImplementedError


def check_targets(arch_ids: Sequence[str], y_ms: np.ndarray, allow_zero: bool = False) -> np.ndarray:
    """y as float64 [N], finite and positive, one per arch: the shared input check of every fit().
    `allow_zero`: targets regressed as they are (an accuracy of 0% is a real figure; a log target is not)."""
    y = np.asarray(y_ms, dtype=np.float64).reshape(-1)
    if len(arch_ids) != len(y):
        raise ValueError(f"got {len(arch_ids)} archs but {len(y)} latencies")
    if len(y) == 0:
        raise ValueError("no training data (0 archs)")
    if allow_zero and (not np.all(np.isfinite(y)) or np.any(y < 0)):
        raise ValueError("targets must be finite and >= 0")
    if not allow_zero and (not np.all(np.isfinite(y)) or np.any(y <= 0)):
        raise ValueError("latencies must be finite and positive (ms)")
    return y
