"""Kind -> predictor class registry, so that configs, CLIs and saved cards name a predictor by a string.

The built-in kinds live in their own modules, which register themselves on import; the registry imports
them on first use, so `create_predictor("gnn")` works without importing `predictors.gnn` first and a
module that only reads cards does not pay for torch models it never builds.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from predictors.base import InvalidParameterError, LatencyPredictor

P = TypeVar("P", bound=type[LatencyPredictor])

# Modules whose import registers the built-in kinds.
BUILTIN_MODULES: tuple[str, ...] = ("predictors.mlp", "predictors.gnn", "predictors.baselines", "predictors.meta")

_REGISTRY: dict[str, type[LatencyPredictor]] = {}
_loaded = False


class UnknownPredictorError(KeyError):
    """A predictor kind that is not registered; the message lists the known kinds."""

    def __str__(self) -> str:  # KeyError would print the message inside quotes
        return str(self.args[0]) if self.args else ""


def register_predictor(kind: str) -> Callable[[P], P]:
    """Class decorator: register a LatencyPredictor subclass under `kind` (also set as `cls.kind`)."""
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"register_predictor: kind must be a non-empty str, got {kind!r}")

    def decorate(cls: P) -> P:
        if not (isinstance(cls, type) and issubclass(cls, LatencyPredictor)):
            raise TypeError(f"register_predictor({kind!r}): {cls!r} is not a LatencyPredictor subclass")
        if _REGISTRY.get(kind, cls) is not cls:
            raise ValueError(f"register_predictor: kind {kind!r} is already registered "
                             f"({_REGISTRY[kind].__name__})")
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return decorate


def unregister_predictor(kind: str) -> None:
    """Remove a kind (lets tests register temporary predictors without leaking them)."""
    _REGISTRY.pop(kind, None)


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def list_predictors(supervised: bool | None = None) -> list[str]:
    """Registered kinds, sorted; `supervised=True` only those trained by fit(archs, ms) on one device,
    False only the few-shot (meta-trained) ones."""
    _load_builtins()
    if supervised is None:
        return sorted(_REGISTRY)
    from predictors.common import SupervisedPredictor

    return sorted(k for k, c in _REGISTRY.items() if issubclass(c, SupervisedPredictor) == supervised)


def predictor_class(kind: str) -> type[LatencyPredictor]:
    """The class registered as `kind`, or UnknownPredictorError naming the known kinds."""
    _load_builtins()
    cls = _REGISTRY.get(kind)
    if cls is None:
        known = sorted(_REGISTRY)
        close = difflib.get_close_matches(str(kind), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownPredictorError(f"unknown predictor kind {kind!r} (known: {', '.join(known)}){hint}")
    return cls


def create_predictor(kind: str, **hp: Any) -> LatencyPredictor:
    """An unfitted predictor of `kind` with hyper-parameters `hp` (unknown names: InvalidParameterError)."""
    cls = predictor_class(kind)
    names = cls._param_names()
    unknown = [k for k in hp if k not in names]
    if unknown:
        raise InvalidParameterError(f"{cls.__name__} ({kind!r}) has no parameter(s) {', '.join(map(repr, unknown))} "
                                    f"(known: {', '.join(names)})")
    return cls(**hp)
