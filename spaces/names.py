"""A name -> class registry with lazily imported built-ins, shared by the predictor and search registries.

The built-in classes register themselves when their modules are imported; the registry imports those
modules on first lookup, so `create_predictor("gnn")` works without importing `predictors.gnn` first and a
module that only reads names does not pay for torch models it never builds. Unknown names raise a
KeyError subclass whose message lists the known names and the closest one.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T", bound=type)


def unknown_name_message(what: str, name: object, known: list[str]) -> str:
    """'unknown WHAT 'x' (known: a, b); did you mean 'a'?' (the hint only when one is close)."""
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r} (known: {', '.join(known)}){hint}"


class ClassRegistry(Generic[T]):
    """Classes by name. `what` names an entry in messages ("predictor kind"), `attr` is the class
    attribute set to the name ("kind"), `base` the class every entry must derive from (None: any class)."""

    def __init__(self, what: str, attr: str, decorator: str, error: type[KeyError], builtin_modules: tuple[str, ...],
                 base: type | None = None) -> None:
        self.what, self.attr, self.decorator, self.error = what, attr, decorator, error
        self.builtin_modules, self.base = builtin_modules, base
        self._classes: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: register the class under `name` and set `cls.<attr> = name`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.decorator}: {self.attr} must be a non-empty str, got {name!r}")

        def decorate(cls: T) -> T:
            base = self.base or object
            if not (isinstance(cls, type) and issubclass(cls, base)):
                kind = f"a {base.__name__} subclass" if self.base else "a class"
                raise TypeError(f"{self.decorator}({name!r}): {cls!r} is not {kind}")
            if self._classes.get(name, cls) is not cls:
                raise ValueError(f"{self.decorator}: {self.what} {name!r} is already registered "
                                 f"({self._classes[name].__name__})")
            setattr(cls, self.attr, name)
            self._classes[name] = cls
            return cls

        return decorate

    def unregister(self, name: str) -> None:
        """Remove an entry (lets tests register temporary classes without leaking them)."""
        self._classes.pop(name, None)

    def _load_builtins(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self.builtin_modules:
                importlib.import_module(module)

    def classes(self) -> dict[str, T]:
        """Every registered class by name (built-ins imported)."""
        self._load_builtins()
        return dict(self._classes)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self.classes())

    def get(self, name: str) -> T:
        """The class registered as `name`, or the registry's error naming the known names."""
        self._load_builtins()
        cls = self._classes.get(name)
        if cls is None:
            raise self.error(unknown_name_message(self.what, name, sorted(self._classes)))
        return cls
