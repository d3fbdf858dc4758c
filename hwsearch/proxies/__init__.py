"""Zero-shot accuracy proxies, one module each, registered by name (`create_proxy("synflow")`).

Every proxy has one interface (`hwsearch.proxies.base.Proxy`): `score(model, batch) -> float`, a `data_free`
flag, `needs_labels`, `higher_is_better`. The registry is the only list of them; a plugin adds one with
`register_proxy`. The built-ins are the modules of this package (all but `base` and `_private` ones), imported
on first lookup; their torch imports stay inside the functions, so listing names needs no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hwsearch.proxies.base import (
    BATCH_KINDS,
    Proxy,
    ProxyBatch,
    ProxyFailure,
    build_for_proxy,
    make_batch,
    score_arch,
    score_archs,
)
from spaces.errors import UnknownNameError
from spaces.names import ClassRegistry

T = TypeVar("T", bound=type)



def _builtin_modules() -> tuple[str, ...]:
    """Every module of this package but `base` and the private ones: adding a proxy is adding one file."""
    import pkgutil

    return tuple(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__)
                 if m.name != "base" and not m.name.startswith("_"))


BUILTIN_MODULES: tuple[str, ...] = _builtin_modules()


class UnknownProxyError(UnknownNameError):
    """A proxy name that is not registered; the message lists the known names."""


_REGISTRY: ClassRegistry[type] = ClassRegistry("proxy", "name", "register_proxy", UnknownProxyError,
                                               BUILTIN_MODULES, base=Proxy)


def register_proxy(name: str) -> Callable[[T], T]:
    """Class decorator: register a Proxy subclass under `name` (also set as `cls.name`)."""
    return _REGISTRY.register(name)


def unregister_proxy(name: str) -> None:
    """Remove a proxy (lets tests register temporary ones without leaking them)."""
    _REGISTRY.unregister(name)


def list_proxies() -> list[str]:
    """Registered proxy names, sorted."""
    return _REGISTRY.names()


def proxy_class(name: str) -> type:
    """The class registered as `name`, or UnknownProxyError naming the known names and a close match."""
    return _REGISTRY.get(name)


def create_proxy(name: str, **params: Any) -> Proxy:
    """A proxy `name` with `params`; an unknown parameter is a ValueError listing the known."""
    return _REGISTRY.create(name, **params)


__all__ = ["BATCH_KINDS", "Proxy", "ProxyBatch", "ProxyFailure", "UnknownProxyError", "build_for_proxy",
           "create_proxy", "list_proxies", "make_batch", "proxy_class", "register_proxy", "score_arch",
           "score_archs", "unregister_proxy"]
