"""Fixtures for the `ssh` tests: real sshd instances and device configs that point at them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sshd import SshServer, keygen


@pytest.fixture(autouse=True)
def _no_user_ssh(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the user's ~/.ssh/config or talk to their ssh-agent."""
    monkeypatch.setenv("EDGEPROF_SSH_CONFIG", str(tmp_path / "no-ssh-config"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture
def user_key(tmp_path: Path) -> Path:
    return keygen(tmp_path / "id_ed25519")


@pytest.fixture
def sshd_factory(tmp_path: Path, user_key: Path) -> Iterator[Callable[[str], SshServer]]:
    servers: list[SshServer] = []

    def make(name: str = "board") -> SshServer:
        try:
            s = SshServer(tmp_path / f"sshd-{name}", user_key).start()
        except (RuntimeError, OSError) as e:
            pytest.skip(f"cannot start sshd here: {e}")
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def sshd(sshd_factory: Callable[[str], SshServer]) -> SshServer:
    return sshd_factory("board")
