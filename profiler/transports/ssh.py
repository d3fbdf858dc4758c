"""The SSH transport: boards on a network, reached with paramiko, verified against known_hosts.

It takes the same steps as the local transport. The agent runs detached on the board (setsid + nohup)
and keeps measuring when the link drops. Every operation tells a dropped link (no exit status and no
answer to a probe: LinkLost) from a command that ran and failed (an exit status), retries the first with
bounded backoff and then picks up where it was, because every step is idempotent and the results file on
the board is append-only. The backoff is only for a link that worked: a first connect gets one short try
and fails with the reason (refused, unknown host name, bad identity_file, host key, authentication).

Security rules kept here:
- Host keys are verified (the keys and opening a session are ssh_hosts' business). An unknown or changed
  key is refused, and the message says how to check it and trust it.
- Passwords are never used. Authentication is by key file, ssh-agent or the default keys.
- Every remote command is built from shlex-quoted words (a job's scripts are in ssh_scripts). Every
  remote path is the work folder joined with a checked relative path, so a job id or file name cannot
  leave it.
"""

from __future__ import annotations

import io
import posixpath
import re
import secrets
import stat
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paramiko

from profiler.config import DeviceConfig
from profiler.transports.base import (
    Transport,
    TransportError,
    agent_files,
    agent_hash,
    job_dir,
    model_relpath,
    parse_agent_info,
)
from profiler.transports.ssh_hosts import (
    CONNECT_TIMEOUT_S,
    AuthError,
    HostKeyError,
    IdentityFileError,
    LinkLost,
    Unreachable,
    open_session,
    quiet_paramiko,
    resolve_target,
)
from profiler.transports.ssh_scripts import probe_command, probe_verdict, quote_command, start_command, stop_command

__all__ = ["AuthError", "HostKeyError", "IdentityFileError", "LinkLost", "SSHTransport", "Unreachable"]

SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # job ids, listed from the board
PATH_PART = re.compile(r"^[A-Za-z0-9._-]+$")  # one component of a path inside the work folder
DEFAULT_WORKDIR = "edgeprof"
MIN_PYTHON = (3, 6)
ALIVE = "edgeprof-link-alive"  # what the link probe prints


def why(rc: int, err: str) -> str:
    """The reason a remote command failed: its stderr's end, else its exit status."""
    text = err.strip()[-500:]
    return text or ("killed by a signal" if rc == -1 else f"exit status {rc}")


def check_relpath(rel: str) -> str:
    """A path relative to the work folder whose parts are plain names: no '..', no absolute paths."""
    parts = rel.split("/")
    if not rel or not all(PATH_PART.match(p) and p not in (".", "..") for p in parts):
        raise TransportError(f"refusing remote path {rel!r}: it must stay inside the work folder")
    return rel


class SFTPFailure(Exception):
    """An SFTP request failed without an errno: paramiko's form of the server's SSH_FX_FAILURE (a full disk,
    a folder where a file goes) and also of a channel that closed under it. `_retry` tells them apart."""

    def __init__(self, path: str, error: OSError):
        super().__init__(f"{path}: {error}")
        self.path = path
        self.error = error


@contextmanager
def at(path: str) -> Iterator[None]:
    """SFTP calls on `path`: an error without an errno (not a timeout) becomes an SFTPFailure naming it."""
    try:
        yield
    except OSError as e:
        if e.errno is None and not isinstance(e, TimeoutError):
            raise SFTPFailure(path, e) from e
        raise


class SSHTransport(Transport):
    """One board over SSH. Thread-confined: the fleet gives every board its own transport."""

    poll_s = 0.5  # one exec + one SFTP read per poll; the last poll bounds the tail of every job

    def __init__(self, config: DeviceConfig):
        self.config = config
        self.name = str(config.path or config.name)
        self.target = resolve_target(config)
        self.python = config.connection.python or "python3"
        self.reconnect_max_s = config.connection.reconnect_max_s
        wd = config.connection.workdir or DEFAULT_WORKDIR
        self.workdir = wd.removeprefix("~/")
        self.client: paramiko.SSHClient | None = None
        self.sftp: paramiko.SFTPClient | None = None
        self.root: str | None = None  # absolute work folder on the board
        self.agent_dir: str | None = None
        self.reconnects = 0
        self.connected_once = False  # a link that worked is reconnected with backoff; a first connect is not
        self.agent_uploaded = False
        quiet_paramiko()

    # --- connection ----------------------------------------------------------------------------------

    def _connect(self) -> None:
        try:
            self.client, self.sftp = open_session(self.target, self.name, self.config,
                                                  first=not self.connected_once)
        except LinkLost:
            self.connected_once = True  # the login worked before the link went: reconnect with backoff
            raise
        self.connected_once = True

    def _drop(self) -> None:
        for c in (self.sftp, self.client):
            try:
                if c is not None:
                    c.close()
            except Exception:  # noqa: BLE001, S110  (already broken)
                pass
        self.sftp = self.client = None

    def _retry(self, what: str, fn: Any) -> Any:
        """Run fn(); on a dropped link reconnect with backoff (0.5 s doubling to 10 s) for reconnect_max_s.

        Only a link that worked is waited for: a first connect that fails raises at once. A missing file or
        a permission the board's SFTP server refused is an answer, not a drop, and is not retried; so is an
        SFTP failure (no errno) while the link still answers. A timeout (a link gone silent) is a drop.
        """
        deadline: float | None = None
        delay = 0.5
        while True:
            try:
                if self.client is None:
                    self._connect()
                return fn()
            except (HostKeyError, AuthError, IdentityFileError):
                raise
            except (FileNotFoundError, PermissionError) as e:
                raise TransportError(f"{self.name}: {what} on {self.target}: {e}") from None
            except (Unreachable, LinkLost, SFTPFailure, OSError, EOFError, paramiko.SSHException) as e:
                if isinstance(e, SFTPFailure) and self._sftp_answers():
                    raise TransportError(
                        f"{self.name}: {what} on {self.target}: the board's SFTP server failed on {e.path}: "
                        f"{e.error} (a full disk, or a folder where a file belongs?)") from None
                if not self.connected_once:
                    raise  # the first connect failed: its error says why, and waiting would not help
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self.reconnect_max_s
                if now >= deadline:
                    raise TransportError(f"{self.name}: connection to {self.target} lost while {what}, "
                                         f"and not back within {self.reconnect_max_s:.0f} s: {e}") from None
                self._drop()
                self.reconnects += 1
                time.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, 10.0)

    def _exec(self, command: str, timeout: float = 120.0) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of a command that ran; LinkLost when the link dropped under it.

        No exit status (-1) means the command died of a signal or the link dropped before the status came:
        a probe tells them apart. Only after the probe answered is -1 the command's own failure.
        """
        assert self.client is not None
        _, out, err = self.client.exec_command(command, timeout=timeout)
        o = out.read().decode(errors="replace")
        e = err.read().decode(errors="replace")
        # The status follows the output; on a link that went silent it never comes, so wait boundedly.
        out.channel.status_event.wait(CONNECT_TIMEOUT_S)
        status = out.channel.exit_status if out.channel.exit_status_ready() else -1
        if status == -1 and not self._link_answers():
            raise LinkLost("the link dropped before the command's exit status came back")
        return status, o, e

    def _link_answers(self) -> bool:
        """One round trip on a fresh channel: does the board still run commands for us?"""
        assert self.client is not None
        try:
            _, out, _ = self.client.exec_command(f"echo {ALIVE}", timeout=CONNECT_TIMEOUT_S)
            answer = out.read().decode(errors="replace").split()
            return out.channel.recv_exit_status() == 0 and answer[-1:] == [ALIVE]
        except (OSError, EOFError, paramiko.SSHException):
            return False

    def _sftp_answers(self) -> bool:
        """After an SFTP error without an errno: is the SFTP channel still open and the link answering? Then
        the error was the board's answer (SSH_FX_FAILURE), not a drop."""
        sftp = self.sftp
        if sftp is None or self.client is None or sftp.get_channel().closed:
            return False
        return self._link_answers()

    def run(self, argv: list[str], what: str, timeout: float = 120.0) -> tuple[int, str, str]:
        """Run a command of quoted words on the board (retrying a dropped link)."""
        return self._retry(what, lambda: self._exec(quote_command(argv), timeout))

    def _path(self, rel: str) -> str:
        assert self.root is not None, "prepare() first"
        return posixpath.join(self.root, check_relpath(rel))

    # --- the transport steps -------------------------------------------------------------------------

    def python_version(self) -> tuple[int, ...]:
        rc, out, err = self.run([self.python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                                "checking the board's Python")
        if rc != 0:
            raise TransportError(f"{self.name}: connection.python: {self.python!r} does not run on {self.target}: "
                                 f"{(err or out).strip()[-300:]}")
        m = re.search(r"(\d+)\.(\d+)\.(\d+)\s*$", out)
        if m is None:
            raise TransportError(f"{self.name}: {self.python} on {self.target} printed no version: "
                                 f"{out.strip()[-300:]!r}")
        return tuple(int(x) for x in m.groups())

    def prepare(self) -> str:
        def setup() -> None:
            folders = [posixpath.join(self.workdir, sub) for sub in ("agent", "models", "jobs")]
            rc, _, err = self._exec(quote_command(["mkdir", "-p", "--", *folders]))
            if rc != 0:
                raise TransportError(f"{self.name}: connection.workdir: cannot create {self.workdir!r} on "
                                     f"{self.target}: {why(rc, err)}")
            assert self.sftp is not None
            with at(self.workdir):
                self.root = self.sftp.normalize(self.workdir)

        self._retry("preparing the work folder", setup)
        version = self.python_version()
        if version[:2] < MIN_PYTHON:
            raise TransportError(f"{self.name}: the agent needs Python >= 3.6; {self.python} on {self.target} "
                                 f"is {'.'.join(map(str, version))} (set connection.python)")
        digest = agent_hash(self.config.agent.plugins)
        self.agent_dir = self._path(f"agent/{digest}")
        if not self.exists(f"agent/{digest}/.complete"):
            self._retry("uploading the agent", lambda: self._upload_agent(digest))
            self.agent_uploaded = True
        return digest

    def _upload_agent(self, digest: str) -> None:
        """One tar file, unpacked by the board's own Python: one round trip instead of one per file."""
        assert self.sftp is not None
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for rel, src in agent_files(self.config.agent.plugins):
                tar.add(str(src), arcname=rel)
            info = tarfile.TarInfo(".complete")
            info.size = len(digest)
            tar.addfile(info, io.BytesIO(digest.encode()))
        archive = self._path(f"agent/{digest}.tar.gz")
        with at(archive), self.sftp.open(archive, "wb") as f:
            f.write(buf.getvalue())
        tmp, final = self._path(f"agent/{digest}.part"), self._path(f"agent/{digest}")
        unpack = "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])"
        rc, _, err = self._exec(" && ".join([
            quote_command(["rm", "-rf", "--", tmp, final]),
            quote_command([self.python, "-c", unpack, archive, tmp]),
            quote_command(["mv", "--", tmp, final]),
            quote_command(["rm", "-f", "--", archive])]))
        if rc != 0:
            raise TransportError(f"{self.name}: cannot install the agent in {final}: {why(rc, err)}")

    def exists(self, rel: str) -> bool:
        def stat_() -> bool:
            assert self.sftp is not None
            try:
                with at(self._path(rel)):
                    self.sftp.stat(self._path(rel))
                return True
            except FileNotFoundError:
                return False
        return self._retry(f"checking {rel}", stat_)

    def agent_info(self) -> dict[str, Any]:
        assert self.agent_dir is not None
        rc, out, err = self.run(["env", f"PYTHONPATH={self.agent_dir}", self.python, "-m", "agents", "info",
                                 "--json"], "asking the agent what the board offers")
        if rc != 0:
            raise TransportError(f"{self.name}: `python -m agents info` failed on {self.target}: {why(rc, err)}")
        return parse_agent_info(f"{self.name} ({self.target})", out)

    def missing_models(self, filenames: list[str]) -> list[str]:
        def listing() -> set[str]:
            assert self.sftp is not None
            with at(self._path("models")):
                return set(self.sftp.listdir(self._path("models")))
        have = self._retry("listing models", listing)
        return [f for f in filenames if f not in have]

    def put_model(self, local_path: Path) -> None:
        final = self._path(model_relpath(Path(local_path).name))
        sha256 = Path(local_path).stem

        def put() -> None:
            assert self.sftp is not None
            part = final + ".part"
            with at(part):
                self.sftp.put(str(local_path), part)
            with at(final):
                self.sftp.posix_rename(part, final)
        self._retry(f"uploading model {sha256[:12]}", put)

    def put_job(self, job_id: str, job_text: str) -> None:
        d = self._path(job_dir(job_id))

        def put() -> None:
            assert self.sftp is not None
            rc, _, err = self._exec(quote_command(["mkdir", "-p", "--", d]))
            if rc != 0:
                raise TransportError(f"{self.name}: cannot create {d}: {why(rc, err)}")
            part, final = posixpath.join(d, "job.json.part"), posixpath.join(d, "job.json")
            with at(part), self.sftp.open(part, "w") as f:
                f.write(job_text)
            with at(final):
                self.sftp.posix_rename(part, final)
        self._retry(f"sending job {job_id}", put)

    def start(self, job_id: str) -> None:
        """Start the agent detached, at most once per job even when a dropped link makes us resend it.

        One token per call: every resend carries it. The runner records it in runner.json before any lock;
        a resend that finds it there only follows that runner, and a runner launched by a resend that came
        before the first one recorded it exits 3 untouched (its wrapper then writes no exit status).
        """
        if self.agent_dir is None:
            raise TransportError("prepare() must run before start()")
        command = start_command(self._path(job_dir(job_id)), self.agent_dir, self.python,
                                self._path("board.lock"), secrets.token_hex(8))
        rc, _, err = self._retry(f"starting job {job_id}", lambda: self._exec(command))
        if rc != 0:
            raise TransportError(f"{self.name}: cannot start the agent on {self.target}: {why(rc, err)}")

    def read_results(self, job_id: str, offset: int) -> bytes:
        path = self._path(f"{job_dir(job_id)}/results.jsonl")

        def read() -> bytes:
            assert self.sftp is not None
            try:
                with at(path), self.sftp.open(path, "rb") as f:
                    f.seek(offset)
                    return f.read()
            except FileNotFoundError:
                return b""
        return self._retry(f"reading results of {job_id}", read)

    def read_job(self, job_id: str) -> bytes:
        path = self._path(f"{job_dir(job_id)}/job.json")

        def read() -> bytes:
            assert self.sftp is not None
            try:
                with at(path), self.sftp.open(path, "rb") as f:
                    return f.read()
            except FileNotFoundError:
                return b""
        return self._retry(f"reading the job file of {job_id}", read)

    def finished(self, job_id: str) -> int | None:
        """None while the job runs, else its exit status; 255 when the board says it ended without a valid one
        (ssh_scripts.probe_command says how it tells)."""
        probe = probe_command(self._path(job_dir(job_id)))

        def poll() -> int | None:
            rc, out, err = self._exec(probe)
            if rc == -1:  # the probe answered that the link is fine: the command itself was killed; ask again
                raise LinkLost(f"the job probe was killed by a signal: {err.strip()[-200:]!r}")
            words = out.split()[-2:]  # the last two words: a login banner may come first
            if rc != 0 or len(words) != 2 or words[1] not in ("running", "gone"):
                raise TransportError(f"{self.name}: cannot tell whether job {job_id} on {self.target} ended: the "
                                     f"probe printed {out.strip()[-80:]!r} ({why(rc, err)})")
            return probe_verdict(*words)
        return self._retry(f"polling job {job_id}", poll)

    def log_tail(self, job_id: str, n_lines: int = 20) -> str:
        _, out, _ = self.run(["tail", "-n", str(n_lines), self._path(f"{job_dir(job_id)}/agent.log")],
                             f"reading the log of {job_id}")
        return out

    def stop(self, job_id: str) -> None:
        script = stop_command(self._path(job_dir(job_id)))
        self._retry(f"stopping job {job_id}", lambda: self._exec(script))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.finished(job_id) is None:
            time.sleep(0.5)

    def list_jobs(self) -> list[str]:
        def listing() -> list[str]:
            assert self.sftp is not None
            with at(self._path("jobs")):
                return sorted(a.filename for a in self.sftp.listdir_attr(self._path("jobs"))
                              if stat.S_ISDIR(a.st_mode or 0) and SAFE_PART.match(a.filename))
        return self._retry("listing jobs", listing)

    def mark_ingested(self, job_id: str) -> None:
        def mark() -> None:
            assert self.sftp is not None
            path = self._path(f"{job_dir(job_id)}/ingested")
            with at(path), self.sftp.open(path, "w") as f:
                f.write("1")
        self._retry(f"marking {job_id}", mark)

    def is_ingested(self, job_id: str) -> bool:
        return self.exists(f"{job_dir(job_id)}/ingested")

    def close(self) -> None:
        self._drop()
