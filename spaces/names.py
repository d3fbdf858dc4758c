"""One name -> entry registry with lazily imported built-ins, for spaces, predictors and searches.

There are two registry classes: agents.registry.Registry is copied to boards, runs on Python 3.6 and holds
lazy "module:Attr" entries; this one holds classes or factories whose built-in modules it imports lazily.
They share the error (UnknownNameError derives from agents.registry.UnknownEntryError) and its message.

The built-in entries register themselves when their modules are imported; the registry imports those
modules on first lookup, so `create_predictor("gnn")` works without importing `predictors.gnn` first and a
module that only reads names does not pay for torch models it never builds. An unknown name raises the
registry's UnknownNameError subclass, whose message lists the known names and the closest one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from agents.registry import unknown_name_message
from spaces.errors import UnknownNameError

T = TypeVar("T", bound=Callable[..., Any])


class ClassRegistry(Generic[T]):
    """Entries by name: classes, or factories where `factories` is set (a space is a function of its config).

    `what` names an entry in messages ("predictor kind"), `attr` is the class attribute set to the name
    ("kind"; None: none is set), `decorator` the public decorator's name (for messages), `error` the
    UnknownNameError subclass raised for an unknown name, `builtin_modules` the modules whose import
    registers the built-ins, `base` the class every entry must derive from (None: any class).
    """

    def __init__(self, what: str, attr: str | None, decorator: str, error: type[UnknownNameError],
                 builtin_modules: tuple[str, ...] = (), base: type | None = None, factories: bool = False) -> None:
        if not (isinstance(error, type) and issubclass(error, UnknownNameError)):
            raise TypeError(f"ClassRegistry({what!r}): error must be an UnknownNameError subclass, got {error!r}")
        self.what, self.attr, self.decorator, self.error = what, attr, decorator, error
        self.builtin_modules, self.base, self.factories = builtin_modules, base, factories
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the entry under `name` (and set `entry.<attr> = name` when attr is given).

        Registering the same object again is a no-op; another object under a taken name is refused."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.decorator}: {self.attr or 'name'} must be a non-empty str, got {name!r}")

        def decorate(entry: T) -> T:
            self._check(name, entry)
            if self._entries.get(name, entry) is not entry:
                raise ValueError(f"{self.decorator}: {self.what} {name!r} is already registered "
                                 f"({getattr(self._entries[name], '__name__', self._entries[name])})")
            if self.attr is not None:
                setattr(entry, self.attr, name)
            self._entries[name] = entry
            return entry

        return decorate

    def _check(self, name: str, entry: object) -> None:
        if self.factories and self.base is None:
            if not callable(entry):
                raise TypeError(f"{self.decorator}({name!r}): {entry!r} is not callable")
            return
        base = self.base or object
        if not (isinstance(entry, type) and issubclass(entry, base)):
            kind = f"a {base.__name__} subclass" if self.base else "a class"
            raise TypeError(f"{self.decorator}({name!r}): {entry!r} is not {kind}")

    def unregister(self, name: str) -> None:
        """Remove an entry (lets tests register temporary ones without leaking them)."""
        self._entries.pop(name, None)

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.builtin_modules:
                importlib.import_module(module)

    def classes(self) -> dict[str, T]:
        """Every registered entry by name (built-ins imported)."""
        self._load_builtins()
        return dict(self._entries)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self.classes())

    def create(self, name: str, **params: Any) -> Any:
        """An instance of the class registered as `name` with `params`; a parameter its __init__ does not take
        is a ValueError listing the ones it does (scikit-learn style: caught before anything runs)."""
        import inspect

        cls = self.get(name)
        known = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        unknown = [k for k in params if k not in known]
        if unknown:
            raise ValueError(f"{self.what} {name!r} has no parameter(s) {', '.join(map(repr, unknown))} "
                             f"(known: {', '.join(known) or 'none'})")
        return cls(**params)

    def get(self, name: str) -> T:
        """The entry registered as `name`, or the registry's error naming the known names."""
        self._load_builtins()
        entry = self._entries.get(name) if isinstance(name, str) else None
        if entry is None:
            raise self.error(unknown_name_message(self.what, name, self._entries))
        return entry


__all__ = ["ClassRegistry", "UnknownNameError", "unknown_name_message"]
