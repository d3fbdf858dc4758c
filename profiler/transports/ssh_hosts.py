"""Who an SSH board is: where to connect and as whom, whether its host key is the one we trust, and
opening a verified session to it.

Device config first, then ~/.ssh/config, then defaults. Host keys are never accepted silently: an unknown
or changed key is refused (HostKeyError) with the fingerprint and the commands to check and record it, and
`edgeprof trust` records one only after it was shown. Each way a connect can fail has its own error
naming the cause (refused, unknown host name, identity file, host key, authentication), so a first
connect fails at once with the reason instead of waiting out the reconnect backoff.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from profiler.config import DeviceConfig
from profiler.transports.base import TransportError

CONNECT_TIMEOUT_S = 15.0
# An SFTP request with no reply for this long is a link gone silent (Wi-Fi dropped without a TCP reset): it
# raises a timeout, which the transport handles as a drop, instead of blocking until TCP gives up (~15 min).
# A 32 KiB write of a model upload is acknowledged in far less even on a poor link.
SFTP_TIMEOUT_S = 30.0
# How an OpenSSH public key line starts ("ssh-ed25519 AAAA...", "ecdsa-sha2-...", "sk-ssh-...").
PUBLIC_KEY_START = re.compile(rb"^\s*(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ AAAA")


class HostKeyError(TransportError):
    """The board's host key is unknown or has changed; never retried."""


class AuthError(TransportError):
    """The board refused every key offered; never retried."""


class Unreachable(TransportError):
    """The board could not be reached: fatal on a first connect, retried while reconnecting a link that worked."""


class ConnectionRefused(Unreachable):
    """Nothing listens on the board's SSH port."""


class UnknownHostName(Unreachable):
    """The host name does not resolve."""


class IdentityFileError(TransportError):
    """connection.identity_file is missing or is not a private key file; never retried."""


class LinkLost(TransportError):
    """The link dropped while an operation ran (no exit status, or no sane answer): reconnect and rerun."""


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


def open_socket(target: Target) -> socket.socket:
    """One TCP connection to the board within CONNECT_TIMEOUT_S, or an Unreachable that says why."""
    where = f"cannot reach {target.hostname}:{target.port}"
    try:
        return socket.create_connection((target.hostname, target.port), timeout=CONNECT_TIMEOUT_S)
    except socket.gaierror as e:
        via = f" (the HostName of {target.alias!r} in {ssh_config_path()})" if target.alias != target.hostname else ""
        raise UnknownHostName(f"{where}: unknown host name {target.hostname!r}{via}: {e.strerror or e}") from None
    except ConnectionRefusedError:
        raise ConnectionRefused(f"{where}: connection refused — is sshd running there?") from None
    except TimeoutError:
        raise Unreachable(f"{where}: no answer within {CONNECT_TIMEOUT_S:.0f} s — is the board on and on this "
                          f"network?") from None
    except OSError as e:
        raise Unreachable(f"{where}: {e.strerror or e}") from None


def check_identity_file(path: str) -> None:
    """A key file given in connection.identity_file must exist and be the private key, not the .pub."""
    p = Path(path)
    if not p.exists():
        raise IdentityFileError(f"connection.identity_file {path} does not exist")
    if not p.is_file():
        raise IdentityFileError(f"connection.identity_file {path} is not a file")
    try:
        with open(p, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise IdentityFileError(f"connection.identity_file {path} cannot be read: {e.strerror or e}") from None
    if PUBLIC_KEY_START.match(head) or (p.suffix == ".pub" and not head.lstrip().startswith(b"-----BEGIN")):
        private = str(p.with_suffix("")) if p.suffix == ".pub" else "(the one without .pub)"
        raise IdentityFileError(f"connection.identity_file {path} is a public key; give the private key file "
                                f"{private}")


def fetch_host_key(target: Target) -> paramiko.PKey:
    """The host key the board presents. Nothing is authenticated and nothing is trusted by this call."""
    sock = open_socket(target)
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


def quiet_paramiko() -> None:
    """Keep paramiko's own log lines ("Socket exception: Connection reset by peer (104)") off the user's
    stderr: with logging unconfigured Python prints them mid-run, while the transport retries the drop and
    its own errors say what happened. A paramiko logger someone configured is left alone."""
    log = logging.getLogger("paramiko")
    if not log.handlers:
        log.addHandler(logging.NullHandler())
        log.propagate = False


def open_session(target: Target, name: str, config: DeviceConfig, first: bool
                 ) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
    """A logged-in client and its SFTP channel, or the error that says why not (`name` prefixes it).

    `first`: no link to this board worked yet in this transport, so a refused SFTP channel is the board's
    setup, not a drop.
    """
    if config.connection.identity_file:
        try:
            for key in target.key_files:
                check_identity_file(key)
        except IdentityFileError as e:
            raise IdentityFileError(f"{name}: {e}") from None
    client = paramiko.SSHClient()
    if Path(target.known_hosts).exists():
        client.load_host_keys(target.known_hosts)
    client.set_missing_host_key_policy(RefuseUnknownHost())
    try:
        sock = open_socket(target)
    except Unreachable as e:
        raise type(e)(f"{name}: {e}") from None
    t = target
    try:
        client.connect(t.hostname, port=t.port, username=t.user, key_filename=list(t.key_files) or None,
                       allow_agent=True, look_for_keys=not t.key_files, sock=sock,
                       banner_timeout=CONNECT_TIMEOUT_S, auth_timeout=CONNECT_TIMEOUT_S)
    except UnknownHostKey as e:
        client.close()
        raise HostKeyError(
            f"{name}: the host key of {t.host_key_name} is not in {t.known_hosts} "
            f"({e.key.get_name()} {fingerprint(e.key)}). Check the fingerprint on the board "
            f"(ssh-keygen -lf /etc/ssh/ssh_host_{e.key.get_name().split('-')[-1]}_key.pub) and "
            f"record it with `edgeprof trust {config.name}`") from None
    except paramiko.BadHostKeyException as e:
        client.close()
        raise HostKeyError(
            f"{name}: the host key of {t.host_key_name} has CHANGED: the board offers "
            f"{fingerprint(e.key)}, {t.known_hosts} expects {fingerprint(e.expected_key)}. Someone may "
            f"be intercepting the connection, or the board was reinstalled. If you know why it changed, "
            f"remove the old key (ssh-keygen -R '{t.host_key_name}' -f {t.known_hosts}) and run "
            f"`edgeprof trust {config.name}`") from None
    except paramiko.AuthenticationException as e:
        client.close()
        tried = ", ".join(t.key_files) if t.key_files else "ssh-agent and the default keys in ~/.ssh"
        raise AuthError(
            f"{name}: authentication failed for {t} ({e}); tried {tried}. Set connection.identity_file "
            f"or load the key into ssh-agent, and put its public key in the board's "
            f"~/.ssh/authorized_keys") from None
    except (OSError, paramiko.SSHException, EOFError) as e:
        client.close()
        raise Unreachable(f"{name}: cannot reach {t}: the SSH handshake or login failed: "
                          f"{e or type(e).__name__}") from None
    transport = client.get_transport()
    try:
        if transport is None:
            raise paramiko.SSHException("no transport after login")
        transport.set_keepalive(5)
        # open_sftp()'s steps, with the channel's timeout set before the SFTP version exchange, so that a
        # link gone silent right after login does not block that either.
        chan = transport.open_session(timeout=CONNECT_TIMEOUT_S)
        chan.settimeout(SFTP_TIMEOUT_S)
        chan.invoke_subsystem("sftp")
        return client, paramiko.SFTPClient(chan)
    except (OSError, paramiko.SSHException, EOFError) as e:
        dropped = transport is not None and not transport.is_active()
        client.close()
        if dropped:  # the login worked and the link went: a drop to reconnect, not a board without SFTP
            raise LinkLost(f"{name}: the link to {t} dropped right after the login: {e or type(e).__name__}") from None
        if not first:
            raise  # most likely the link dropped again: the caller retries
        raise Unreachable(f"{name}: {t} accepted the login but not SFTP ({e or type(e).__name__}); the "
                          f"board's sshd_config needs a `Subsystem sftp` line") from None
