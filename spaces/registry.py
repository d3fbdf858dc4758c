"""Name -> factory registry for search spaces, so that a space is picked by a string in configs and CLIs.

A space is registered as a factory taking its config as keyword arguments (`nb201(C=16, N=5)`); the
built-in spaces register themselves when their modules are imported, which the registry does on first use.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from spaces.base import SearchSpace
from spaces.errors import UnknownNameError, UserInputError
from spaces.names import ClassRegistry

Factory = Callable[..., SearchSpace]
F = TypeVar("F", bound=Factory)

# Modules whose import registers the built-in spaces.
BUILTIN_MODULES: tuple[str, ...] = ("spaces.nb201", "spaces.mbconv", "spaces.fbnet", "spaces.conv_probe",
                                    "spaces.mobilenetv2", "spaces.resnet50", "spaces.mbconv_channels")


class UnknownSpaceError(UnknownNameError):
    """A space name that is not registered; the message lists the known names."""


_REGISTRY: ClassRegistry[Factory] = ClassRegistry("search space", None, "register_space", UnknownSpaceError,
                                                  BUILTIN_MODULES, factories=True)


def register_space(name: str) -> Callable[[F], F]:
    """Decorator registering a factory (or class) that takes the space's config as keyword arguments."""
    return _REGISTRY.register(name)  # type: ignore[return-value]


def unregister_space(name: str) -> None:
    """Remove a registered space (lets tests register temporary spaces without leaking them)."""
    _REGISTRY.unregister(name)


def list_spaces() -> list[str]:
    """Registered space names, sorted."""
    return _REGISTRY.names()


def create_space(name: str, **config: Any) -> SearchSpace:
    """Build the space registered as `name`; config keys set to None are dropped so defaults apply.

    An unknown name is an UnknownSpaceError, an unknown config key a UserInputError listing the known keys."""
    factory = _REGISTRY.get(name)
    config = {key: value for key, value in config.items() if value is not None}
    params = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(config) - set(params))
        if unknown:
            raise UserInputError(f"search space {name!r} has no config key(s) {', '.join(unknown)}"
                                 f" (known: {', '.join(params)})")
    return factory(**config)
