"""Kind -> predictor class registry, so that configs, CLIs and saved cards name a predictor by a string.

The built-in kinds live in their own modules, which register themselves on import; the registry imports
them on first use, so `create_predictor("gnn")` works without importing `predictors.gnn` first and a
module that only reads cards does not pay for torch models it never builds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from predictors.base import InvalidParameterError, LatencyPredictor
from spaces.errors import UnknownNameError
from spaces.names import ClassRegistry

P = TypeVar("P", bound=type[LatencyPredictor])

# Modules whose import registers the built-in kinds.
BUILTIN_MODULES: tuple[str, ...] = ("predictors.mlp", "predictors.gnn", "predictors.baselines", "predictors.help",
                                     "predictors.help_ensemble", "predictors.meta_accuracy", "predictors.gnn_att",
                                     "predictors.ensemble")


class UnknownPredictorError(UnknownNameError):
    """A predictor kind that is not registered; the message lists the known kinds."""


_REGISTRY: ClassRegistry[type[LatencyPredictor]] = ClassRegistry(
    "predictor kind", "kind", "register_predictor", UnknownPredictorError, BUILTIN_MODULES, base=LatencyPredictor)


def register_predictor(kind: str) -> Callable[[P], P]:
    """Class decorator: register a LatencyPredictor subclass under `kind` (also set as `cls.kind`)."""
    return _REGISTRY.register(kind)


def unregister_predictor(kind: str) -> None:
    """Remove a kind (lets tests register temporary predictors without leaking them)."""
    _REGISTRY.unregister(kind)


def list_predictors(supervised: bool | None = None) -> list[str]:
    """Registered kinds, sorted; `supervised=True` only those trained by fit(archs, ms) on one device,
    False only the few-shot (meta-trained) ones."""
    if supervised is None:
        return _REGISTRY.names()
    from predictors.common import SupervisedPredictor

    return sorted(k for k, c in _REGISTRY.classes().items() if issubclass(c, SupervisedPredictor) == supervised)


def predictor_class(kind: str) -> type[LatencyPredictor]:
    """The class registered as `kind`, or UnknownPredictorError naming the known kinds."""
    return _REGISTRY.get(kind)


def create_predictor(kind: str, **hp: Any) -> LatencyPredictor:
    """An unfitted predictor of `kind` with hyper-parameters `hp` (unknown names: InvalidParameterError)."""
    cls = predictor_class(kind)
    names = cls._param_names()
    unknown = [k for k in hp if k not in names]
    if unknown:
        raise InvalidParameterError(f"{cls.__name__} ({kind!r}) has no parameter(s) {', '.join(map(repr, unknown))} "
                                    f"(known: {', '.join(names)})")
    return cls(**hp)
