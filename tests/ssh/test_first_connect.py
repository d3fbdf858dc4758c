"""A first connect that never worked fails at once and says why; a bad host is refused by the config (marker `ssh`).

The reconnect backoff (reconnect_max_s, 60 s in these configs) is for links that worked: each case here
must answer with its reason long before it. In-process the issue's target holds (under 10 s; these take
milliseconds); a CLI run also pays for starting Python and importing torch, so its bound is looser.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sshd import free_port, write_board

from profiler.config import ConfigError, load_config, parse_config
from profiler.transports.ssh import SSHTransport
from profiler.transports.ssh_hosts import ConnectionRefused, IdentityFileError, UnknownHostName

pytestmark = pytest.mark.ssh
REPO = Path(__file__).resolve().parents[2]
BOUND_S = 10.0  # the target for a first connect that cannot work
CLI_BOUND_S = 60.0  # process start-up and imports on a loaded machine, far below the 60 s backoff + retries


def board_toml(tmp_path: Path, host: str, port: int, key: Path, name: str = "first") -> Path:
    """A device config for a board nobody may be serving; reconnect_max_s is long on purpose."""
    p = tmp_path / f"{name}.toml"
    p.write_text(f"""
name = "{name}"
kind = "cpu"
[connection]
transport = "ssh"
host = "{host}"
port = {port}
identity_file = "{key}"
known_hosts = "{tmp_path / 'known_hosts'}"
workdir = "{tmp_path / 'remote'}"
python = "{sys.executable}"
reconnect_max_s = 60
[runtime]
backend = "onnxruntime"
""")
    return p


def assert_fails_fast(config: Path, error: type[Exception], match: str) -> None:
    t = SSHTransport(load_config(config))
    t0 = time.monotonic()
    with pytest.raises(error, match=match), t:
        t.prepare()
    elapsed = time.monotonic() - t0
    assert elapsed < BOUND_S, f"took {elapsed:.1f} s: the first connect must not wait out the backoff"
    assert t.reconnects == 0 and not t.connected_once


def edgeprof(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, timeout=300,
                       cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    return r, time.monotonic() - t0


def test_refused_port(user_key, tmp_path):
    port = free_port()  # bound and released: nobody listens there
    assert_fails_fast(board_toml(tmp_path, "127.0.0.1", port, user_key), ConnectionRefused,
                      rf"cannot reach 127\.0\.0\.1:{port}: connection refused — is sshd running there\?")


def test_unknown_host_name(user_key, tmp_path):
    # .invalid is reserved (RFC 2606): it never resolves
    assert_fails_fast(board_toml(tmp_path, "bord.invalid", 22, user_key), UnknownHostName,
                      r"unknown host name 'bord\.invalid'")


def test_missing_identity_file(sshd, user_key, tmp_path):
    missing = tmp_path / "no-such-key"
    board = write_board(tmp_path, sshd, "nokey", missing)
    assert_fails_fast(board, IdentityFileError, rf"connection\.identity_file {missing} does not exist")


def test_identity_file_is_the_public_key(sshd, user_key, tmp_path):
    pub = user_key.with_suffix(".pub")
    board = write_board(tmp_path, sshd, "pubkey", pub)
    assert_fails_fast(board, IdentityFileError,
                      rf"connection\.identity_file {pub} is a public key; give the private key file {user_key}$")
    # the same key under a name without .pub is recognised by its contents
    renamed = tmp_path / "board-key"
    renamed.write_text(pub.read_text())
    assert_fails_fast(write_board(tmp_path, sshd, "pubkey2", renamed), IdentityFileError, "is a public key")


def test_cli_profile_refused_exits_1_with_the_reason(user_key, tmp_path):
    port = free_port()
    board = board_toml(tmp_path, "127.0.0.1", port, user_key)
    r, elapsed = edgeprof("profile", str(board), "--space", "nb201", "--n", "1", "--db", str(tmp_path / "x.db"),
                          cwd=tmp_path)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "connection refused" in r.stderr and f"127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr and "lost" not in r.stderr
    assert elapsed < CLI_BOUND_S


def test_cli_public_key_and_trust_refused_exit_1(sshd, user_key, tmp_path):
    board = write_board(tmp_path, sshd, "pubcli", user_key.with_suffix(".pub"))
    r, _ = edgeprof("deploy", str(board), cwd=tmp_path)
    assert r.returncode == 1 and "is a public key" in r.stderr and "Traceback" not in r.stderr
    closed = board_toml(tmp_path, "127.0.0.1", free_port(), user_key, name="closed")
    r, elapsed = edgeprof("trust", str(closed), cwd=tmp_path)
    assert r.returncode == 1 and "connection refused" in r.stderr and "Traceback" not in r.stderr
    assert elapsed < CLI_BOUND_S


@pytest.mark.parametrize("host", ["bo ard", "board;touch x", "$(id)", "board`id`", "root@board", "-oProxyCommand=x",
                                  "board|x", "board&", "", "board\\n", "board\\nProxyCommand x", "\\nboard"])
def test_host_with_shell_characters_is_a_config_error(user_key, tmp_path, host):
    board = board_toml(tmp_path, host, 22, user_key)  # "\\n" in the TOML string is a newline in the host
    allowed = (r"connection\.host: .* \(letters, digits and \. _ : % - only, not starting with -; the user goes in "
               r"connection\.user\)")
    with pytest.raises(ConfigError, match=allowed if host else r"connection\.host: required"):
        load_config(board)


def test_host_check_is_the_whole_string():
    """`$` would match before a trailing newline; the check must see the host exactly as given."""
    with pytest.raises(ConfigError, match=r"'board\\n' is not a host name"):
        parse_config({"name": "b", "kind": "cpu", "connection": {"transport": "ssh", "host": "board\n"}})
    assert parse_config({"name": "b", "kind": "cpu",
                         "connection": {"transport": "ssh", "host": "board"}}).connection.host == "board"


@pytest.mark.parametrize("host", ["xavier.local", "192.168.1.20", "fe80::1%eth0", "lab_board-2"])
def test_plain_hosts_are_accepted(user_key, tmp_path, host):
    assert load_config(board_toml(tmp_path, host, 22, user_key)).connection.host == host


def test_cli_host_with_a_space_exits_2(user_key, tmp_path):
    board = board_toml(tmp_path, "my board", 22, user_key)
    r, _ = edgeprof("profile", str(board), "--space", "nb201", "--n", "1", "--db", str(tmp_path / "x.db"),
                    cwd=tmp_path)
    assert r.returncode == 2 and "connection.host" in r.stderr and "'my board'" in r.stderr
    assert "Traceback" not in r.stderr
