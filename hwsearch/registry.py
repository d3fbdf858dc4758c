"""Name -> search class registry, so that configs and CLIs pick a search by a string (as nn-Meter does).

The built-in searches register themselves when their module is imported; the registry imports them on
first use, so `create_search("lightnas")` works without importing `hwsearch.lightnas` first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from spaces.errors import UnknownNameError
from spaces.names import ClassRegistry

T = TypeVar("T", bound=type)

# Modules whose import registers the built-in searches.
BUILTIN_MODULES: tuple[str, ...] = ("hwsearch.domino", "hwsearch.lightnas", "hwsearch.random_search",
                                     "hwsearch.surgenas", "hwsearch.zeroshot", "hwsearch.ftso",
                                     "hwsearch.lightnas_channels")


class UnknownSearchError(UnknownNameError):
    """A search name that is not registered; the message lists the known names."""


_REGISTRY: ClassRegistry[type] = ClassRegistry("search", "name", "register_search", UnknownSearchError,
                                               BUILTIN_MODULES)


def register_search(name: str) -> Callable[[T], T]:
    """Class decorator: register a search class under `name` (also set as `cls.name`)."""
    return _REGISTRY.register(name)


def unregister_search(name: str) -> None:
    """Remove a search (lets tests register temporary searches without leaking them)."""
    _REGISTRY.unregister(name)


def list_searches() -> list[str]:
    """Registered search names, sorted."""
    return _REGISTRY.names()


def search_class(name: str) -> type:
    """The class registered as `name`, or UnknownSearchError naming the known names and a close match."""
    return _REGISTRY.get(name)


def create_search(name: str, **params: Any) -> Any:
    """An unfitted search `name` with `params`; an unknown parameter is a ValueError listing the known."""
    return _REGISTRY.create(name, **params)
