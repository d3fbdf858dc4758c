"""The loopback sshd of the tests under pytest-xdist: a port another process took between `free_port` and the
bind is not mistaken for ours (a connection alone would reach the other's server), and the start moves on."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from sshd import SshServer, find_sshd, keygen

pytestmark = pytest.mark.ssh


@pytest.mark.skipif(find_sshd() is None, reason="sshd is not installed (openssh-server)")
def test_a_taken_port_is_left_for_a_free_one(tmp_path: Path) -> None:
    with socket.socket() as other:  # another worker's listener on the port our server was given
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        server = SshServer(tmp_path / "srv", keygen(tmp_path / "user"))
        server.port = taken
        server.config.write_text(re.sub(r"(?m)^Port \d+$", f"Port {taken}", server.config.read_text()))
        server.start()
        try:
            assert server.port != taken
            assert f"Port {server.port}" in server.config.read_text()
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as c:
                assert c.recv(64).startswith(b"SSH-2.0-")
        finally:
            server.stop()
