"""Transports: the contract (base) and the registry of implementations by name (registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from profiler.transports.base import Transport, TransportError
from profiler.transports.registry import TRANSPORTS

if TYPE_CHECKING:  # config.py asks TRANSPORTS while it validates, so it cannot be imported from here first
    from profiler.config import DeviceConfig


def open_transport(config: DeviceConfig) -> Transport:
    """The transport named by the device config's connection.transport."""
    name = config.connection.transport
    if name not in TRANSPORTS.names():
        raise TransportError(f"{config.path or config.name}: connection.transport: {name!r} is not available "
                             f"in this version (available: {', '.join(TRANSPORTS.names())})")
    return TRANSPORTS.get(name)(config)


__all__ = ["TRANSPORTS", "Transport", "TransportError", "open_transport"]
