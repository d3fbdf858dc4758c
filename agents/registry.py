"""Name -> implementation registries for backends and meters (and the host's transports).

Heavy runtimes (TensorRT, ONNX Runtime, torch) are registered lazily as "module:Attr" strings so that a
board without one of them can still list, report and use the others.

There are two registry classes: this one is copied to boards, runs on Python 3.6 and holds lazy "module:Attr"
entries; the host's spaces.names.ClassRegistry holds classes or factories whose built-in modules it imports
lazily. They share the error (UnknownEntryError, the base of the host's UnknownNameError) and its message
(unknown_name_message).
"""

import difflib
import importlib


def unknown_name_message(what, name, known):
    """'unknown WHAT 'x' (known: a, b); did you mean 'a'?' (the hint only when one is close)."""
    known = sorted(known)
    msg = "unknown {} {!r} (known: {})".format(what, name, ", ".join(known) or "none")
    close = difflib.get_close_matches(str(name), known, n=1)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    return msg


class RegistryError(Exception):
    """Base class of registry errors."""


class UnknownEntryError(RegistryError, KeyError):
    """A name nobody registered (Registry.get here; on the host, every UnknownNameError); the message lists
    the known names. A KeyError, so `except KeyError` around a lookup keeps working."""

    def __str__(self):
        # KeyError.__str__ would repr() the message, adding quotes
        return str(self.args[0]) if self.args else ""


class DuplicateEntryError(RegistryError, ValueError):
    """Two entries with one name: the second would silently shadow the first."""


class EntryImportError(RegistryError, ImportError):
    """A lazy entry whose module or attribute cannot be imported."""


class Registry:
    """A small registry of named implementations of one kind ("backend", "meter").

    loader: called once, before the registry is first asked about its entries (names, get, membership),
    to let plugins register theirs; it returns {plugin: None or why it failed}, reported with unknown
    names. The agent's registries load the plugins shipped with it this way (agents.plugins).
    """

    def __init__(self, kind, loader=None):
        self.kind = kind
        self._entries = {}  # name -> object, or "module:Attr" string for lazy entries
        self._loader = loader
        self.plugin_errors = {}

    def _load_plugins(self):
        loader, self._loader = self._loader, None  # first: plugins register through this registry
        if loader is not None:
            self.plugin_errors = {k: v for k, v in (loader() or {}).items() if v}

    def _check_new(self, name):
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise DuplicateEntryError(f"{self.kind} {name!r} is already registered")

    def register(self, name):
        """Decorator registering a class (or any object) under name."""

        def decorator(obj):
            self._check_new(name)
            self._entries[name] = obj
            return obj

        return decorator

    def add_lazy(self, name, target):
        """Register "package.module:Attr", imported only when the entry is asked for."""
        self._check_new(name)
        if not isinstance(target, str) or target.count(":") != 1:
            raise ValueError(f"lazy {self.kind} target must look like 'module:Attr', got {target!r}")
        self._entries[name] = target

    def names(self):
        """Registered names, sorted."""
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name):
        self._load_plugins()
        return name in self._entries

    def __len__(self):
        self._load_plugins()
        return len(self._entries)

    def unknown_message(self, name):
        """The message of UnknownEntryError for name (also used by job validation)."""
        msg = unknown_name_message(self.kind, name, self.names())
        if self.plugin_errors:
            msg += "; plugins that failed to import: " + "; ".join(
                f"{k}: {v}" for k, v in sorted(self.plugin_errors.items())
            )
        return msg

    def get(self, name):
        """The implementation registered under name, importing a lazy entry on first use."""
        self._load_plugins()
        if name not in self._entries:
            raise UnknownEntryError(self.unknown_message(name))
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._resolve(name, entry)
            self._entries[name] = entry
        return entry

    def _resolve(self, name, target):
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # an ImportError, or any error raised while importing
            raise EntryImportError(
                f"{self.kind} {name!r}: cannot import {module_name}: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            return getattr(module, attr)
        except AttributeError:
            raise EntryImportError(f"{self.kind} {name!r}: module {module_name} has no attribute {attr!r}") from None

    def available(self):
        """{name: None if usable here, else the reason why not} for every entry.

        Each implementation answers through its own available() (None or a reason string); an import
        failure or an error inside available() is reported as the reason, never raised.
        """
        out = {}
        for name in self.names():
            try:
                obj = self.get(name)
            except RegistryError as exc:
                out[name] = str(exc)
                continue
            probe = getattr(obj, "available", None)
            if probe is None:
                out[name] = None
                continue
            try:
                reason = probe()
            except Exception as exc:  # noqa: BLE001
                reason = f"available() failed: {type(exc).__name__}: {exc}"
            out[name] = None if reason is None else str(reason)
        return out
