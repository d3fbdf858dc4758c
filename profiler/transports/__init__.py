"""Transports by name: a new way to reach boards is one new module registered here."""

from __future__ import annotations

from agents.registry import Registry
from profiler.config import DeviceConfig
from profiler.transports.base import Transport, TransportError

TRANSPORTS = Registry("transport")
TRANSPORTS.add_lazy("local", "profiler.transports.local:LocalTransport")
TRANSPORTS.add_lazy("ssh", "profiler.transports.ssh:SSHTransport")


def open_transport(config: DeviceConfig) -> Transport:
    """The transport named by the device config's connection.transport."""
    name = config.connection.transport
    if name not in TRANSPORTS.names():
        raise TransportError(f"{config.path or config.name}: connection.transport: {name!r} is not available "
                             f"in this version (available: {', '.join(TRANSPORTS.names())})")
    return TRANSPORTS.get(name)(config)


__all__ = ["TRANSPORTS", "Transport", "TransportError", "open_transport"]
