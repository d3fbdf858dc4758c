"""Name -> factory registry for search spaces, so that a space is picked by a string in configs and CLIs."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from spaces.base import SearchSpace
from spaces.names import unknown_name_message

Factory = Callable[..., SearchSpace]
F = TypeVar("F", bound=Factory)

_REGISTRY: dict[str, Factory] = {}


class UnknownSpaceError(KeyError):
    """Raised for a space name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would print the message inside quotes
        return str(self.args[0]) if self.args else ""


def register_space(name: str) -> Callable[[F], F]:
    """Decorator registering a factory (or class) that takes the space's config as keyword arguments."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_space: name must be a non-empty str, got {name!r}")

    def decorate(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"register_space: a space named {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorate


def unregister_space(name: str) -> None:
    """Remove a registered space (lets tests register temporary spaces without leaking them)."""
    _REGISTRY.pop(name, None)


def list_spaces() -> list[str]:
    """Registered space names, sorted."""
    return sorted(_REGISTRY)


def create_space(name: str, **config: Any) -> SearchSpace:
    """Build the space registered as `name`; config keys set to None are dropped so defaults apply."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise UnknownSpaceError(unknown_name_message("search space", name, list_spaces()))
    config = {key: value for key, value in config.items() if value is not None}
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(config) - set(params))
        if unknown:
            raise ValueError(
                f"search space {name!r} has no config key(s) {', '.join(unknown)}"
                f" (known: {', '.join(params)})"
            )
    return factory(**config)
