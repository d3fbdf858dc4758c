"""Transports by name: a new way to reach boards is one new module registered here, or a host plugin
(EDGEPROF_PLUGINS) that calls TRANSPORTS.register. Kept apart from the package's __init__ so that the
device-config validation can ask it without importing any transport."""

from __future__ import annotations

from agents.registry import Registry

TRANSPORTS = Registry("transport")
TRANSPORTS.add_lazy("local", "profiler.transports.local:LocalTransport")
TRANSPORTS.add_lazy("ssh", "profiler.transports.ssh:SSHTransport")
