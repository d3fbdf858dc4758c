"""A real OpenSSH server on a loopback port for tests and fault drills: throwaway host key, user key and config
in a temp folder, and `cut_connections` to drop every live link while the listener stays."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

FAST = """
[protocol]
warmup_min_runs = 3
warmup_min_s = 0.05
min_runs = 5
max_runs = 30
target_rel_ci = 0.05
"""


SSHD_PATHS = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def find_sshd() -> str | None:
    for p in SSHD_PATHS:
        if os.access(p, os.X_OK):
            return p
    return shutil.which("sshd")


class PortTaken(RuntimeError):
    """sshd could not bind its port: something else took it after `free_port` found it free."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "edgeprof-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path


class SshServer:
    """sshd -D on 127.0.0.1:<free port>, accepting `user_key` for the current user."""

    def __init__(self, folder: Path, user_key: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(folder / "host_ed25519")
        self.port = free_port()
        self.user = getpass.getuser()
        (folder / "authorized_keys").write_text(user_key.with_suffix(".pub").read_text())
        os.chmod(folder / "authorized_keys", 0o600)
        self.config = folder / "sshd_config"
        self.config.write_text(f"""
Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {folder / 'sshd.pid'}
AuthorizedKeysFile {folder / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
LogLevel ERROR
""")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, attempts: int = 3) -> SshServer:
        """Start sshd; when its port was taken between `free_port` and the bind (another test process picked
        the same one), try again on a new port."""
        for attempt in range(attempts):
            try:
                return self._start()
            except PortTaken:
                if attempt == attempts - 1:
                    raise
                self.port = free_port()
                self.config.write_text(re.sub(r"(?m)^Port \d+$", f"Port {self.port}", self.config.read_text()))
        raise AssertionError("unreachable")

    def _start(self) -> SshServer:
        sshd = find_sshd()
        if sshd is None:
            raise RuntimeError("sshd is not installed (Debian package openssh-server)")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)  # privilege separation folder
        self.log = open(self.folder / "sshd.log", "wb")  # noqa: SIM115  (open for the server's life)
        self.proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(self.config)], stdout=self.log, stderr=self.log)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                log = (self.folder / "sshd.log").read_text()[-500:]
                raise (PortTaken if "Address already in use" in log else RuntimeError)(f"sshd exited: {log}")
            if self._own_pidfile():  # written once it listens: a connection alone may reach another's server
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return self
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError("sshd did not listen within 10 s")

    def _own_pidfile(self) -> bool:
        try:
            return self.proc is not None and int((self.folder / "sshd.pid").read_text().split()[0]) == self.proc.pid
        except (OSError, ValueError, IndexError):
            return False

    def host_public_key(self) -> str:
        """'type base64' of the host key, for known_hosts lines."""
        return " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])

    def session_pids(self) -> list[int]:
        """Processes sshd forked for connections (killing them cuts the link; the listener stays)."""
        assert self.proc is not None
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.proc.pid:
                    out.append(int(d.name))
        return out

    def cut_connections(self) -> int:
        pids = self.session_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.cut_connections()
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if getattr(self, "log", None):
            self.log.close()


def write_board(tmp_path: Path, server: SshServer, name: str, key: Path, *, trusted: bool = True,
                extra: str = "", connection_extra: str = "", protocol: str = FAST) -> Path:
    """A device config for a loopback 'board'; its known_hosts holds the server's key when trusted."""
    known = tmp_path / f"known_hosts-{name}"
    known.write_text(f"[127.0.0.1]:{server.port} {server.host_public_key()}\n" if trusted else "")
    p = tmp_path / f"{name}.toml"
    p.write_text(f"""
name = "{name}"
kind = "cpu"
[connection]
transport = "ssh"
host = "127.0.0.1"
port = {server.port}
user = "{server.user}"
identity_file = "{key}"
known_hosts = "{known}"
workdir = "{tmp_path / ('remote-' + name)}"
python = "{sys.executable}"
reconnect_max_s = 60
{connection_extra}
[runtime]
backend = "onnxruntime"
intra_op_threads = 1
{extra}
{protocol}
""")
    return p
