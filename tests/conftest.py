"""Shared fixtures: every test gets its own cache and config folders, never the user's."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler.testing.sshd import FAST

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
HELP_DIR = SHARED / "data" / "HELP" / "data"

FAST_PROTOCOL = FAST  # the short measurement protocol of every test board (one copy: profiler.testing.sshd)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))


@pytest.fixture
def fast_cpu_config(tmp_path: Path) -> Path:
    """A local-cpu device config with a short protocol and its work folder under tmp_path."""
    p = tmp_path / "fast-cpu.toml"
    p.write_text(f"""
name = "fast-cpu"
kind = "cpu"
[connection]
transport = "local"
workdir = "{tmp_path / 'work'}"
[runtime]
backend = "onnxruntime"
intra_op_threads = 1
{FAST_PROTOCOL}
""")
    return p
