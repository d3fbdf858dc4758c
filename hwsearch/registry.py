"""Name -> search class registry, so that configs and CLIs pick a search by a string (as nn-Meter does).

The built-in searches register themselves when their module is imported; the registry imports them on
first use, so `create_search("lightnas")` works without importing `hwsearch.lightnas` first.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T", bound=type)

# Modules whose import registers the built-in searches.
BUILTIN_MODULES: tuple[str, ...] = ("hwsearch.lightnas",)

_REGISTRY: dict[str, type] = {}
_loaded = False


class UnknownSearchError(KeyError):
    """A search name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would print the message inside quotes
        return str(self.args[0]) if self.args else ""


def register_search(name: str) -> Callable[[T], T]:
    """Class decorator: register a search class under `name` (also set as `cls.name`)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_search: name must be a non-empty str, got {name!r}")

    def decorate(cls: T) -> T:
        if not isinstance(cls, type):
            raise TypeError(f"register_search({name!r}): {cls!r} is not a class")
        if _REGISTRY.get(name, cls) is not cls:
            raise ValueError(f"register_search: a search named {name!r} is already registered "
                             f"({_REGISTRY[name].__name__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def unregister_search(name: str) -> None:
    """Remove a search (lets tests register temporary searches without leaking them)."""
    _REGISTRY.pop(name, None)


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def list_searches() -> list[str]:
    """Registered search names, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def search_class(name: str) -> type:
    """The class registered as `name`, or UnknownSearchError naming the known names and a close match."""
    _load_builtins()
    cls = _REGISTRY.get(name)
    if cls is None:
        known = sorted(_REGISTRY)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownSearchError(f"unknown search {name!r} (known: {', '.join(known)}){hint}")
    return cls


def create_search(name: str, **params: Any) -> Any:
    """An unfitted search `name` with `params`; an unknown parameter is a ValueError listing the known."""
    cls = search_class(name)
    known = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = [k for k in params if k not in known]
    if unknown:
        raise ValueError(f"search {name!r} has no parameter(s) {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(known)})")
    return cls(**params)
