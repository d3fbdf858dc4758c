"""Who an SSH board is: where to connect and as whom, and whether its host key is the one we trust.

Device config first, then ~/.ssh/config, then defaults. Host keys are never accepted silently: an unknown
or changed key is refused (HostKeyError) with the fingerprint and the commands to check and record it, and
`edgeprof trust` records one only after it was shown.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from profiler.config import DeviceConfig
from profiler.transports.base import TransportError

CONNECT_TIMEOUT_S = 15.0


class HostKeyError(TransportError):
    """The board's host key is unknown or has changed; never retried."""


class AuthError(TransportError):
    """The board refused every key offered; never retried."""


class Unreachable(TransportError):
    """The board could not be reached (retried while reconnecting)."""


@dataclass(frozen=True)
class Target:
    """Where and as whom to connect, after ~/.ssh/config has been applied."""

    alias: str
    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...]
    known_hosts: str

    @property
    def host_key_name(self) -> str:
        """The host's name as known_hosts writes it."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


def ssh_config_path() -> Path:
    return Path(os.environ.get("EDGEPROF_SSH_CONFIG", Path.home() / ".ssh" / "config"))


def resolve_target(config: DeviceConfig) -> Target:
    """Device config first, then ~/.ssh/config (host aliases, user, port, identity files), then defaults."""
    c = config.connection
    if not c.host:
        raise TransportError(f"{config.path or config.name}: connection.host: required for the ssh transport")
    found: dict[str, Any] = {}
    path = ssh_config_path()
    if path.exists():
        try:
            found = paramiko.SSHConfig.from_path(str(path)).lookup(c.host)
        except (OSError, paramiko.ssh_exception.ConfigParseError) as e:
            raise TransportError(f"{path}: cannot read SSH config: {e}") from None
    keys: list[str] = []
    if c.identity_file:
        keys = [c.identity_file]
    elif found.get("identityfile"):
        keys = [k for k in found["identityfile"] if Path(os.path.expanduser(k)).exists()]
    known = c.known_hosts or (found.get("userknownhostsfile") or "~/.ssh/known_hosts").split()[0]
    return Target(alias=c.host, hostname=found.get("hostname", c.host), port=int(c.port or found.get("port", 22)),
                  user=c.user or found.get("user") or getpass.getuser(),
                  key_files=tuple(os.path.expanduser(k) for k in keys), known_hosts=os.path.expanduser(known))


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint, as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """Refuse, keeping the key offered so the error can show its fingerprint."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise UnknownHostKey(hostname, key)


class UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey):
        super().__init__(hostname)
        self.hostname = hostname
        self.key = key


def fetch_host_key(target: Target) -> paramiko.PKey:
    """The host key the board presents. Nothing is authenticated and nothing is trusted by this call."""
    try:
        sock = socket.create_connection((target.hostname, target.port), timeout=CONNECT_TIMEOUT_S)
    except OSError as e:
        raise Unreachable(f"cannot reach {target.hostname}:{target.port}: {e.strerror or e}") from None
    t = paramiko.Transport(sock)
    try:
        t.start_client(timeout=CONNECT_TIMEOUT_S)
        return t.get_remote_server_key()
    except paramiko.SSHException as e:
        raise Unreachable(f"{target.hostname}:{target.port} did not complete an SSH handshake: {e}") from None
    finally:
        t.close()


def known_host_key(target: Target) -> paramiko.PKey | None:
    """The key known_hosts holds for the target, if any (hashed entries included)."""
    if not Path(target.known_hosts).exists():
        return None
    keys = paramiko.HostKeys(target.known_hosts)
    entry = keys.lookup(target.host_key_name)
    return next(iter(entry.values())) if entry else None


def trust_host_key(target: Target, key: paramiko.PKey) -> None:
    """Append the key to the target's known_hosts (created 0600 when missing)."""
    path = Path(target.known_hosts)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = f"{target.host_key_name} {key.get_name()} {key.get_base64()}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(line)
