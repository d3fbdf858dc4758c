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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with `slow` tests first, each file's own order kept: under pytest-xdist a file goes to one
    worker, and a long file handed out last (the README walks sort late) keeps the other worker idle."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    # the README walks first (the longest files), then the other files with slow tests, then the rest;
    # stable, so every file keeps its own order (the walks of one file build on each other)
    items.sort(key=lambda item: (not item.path.name.startswith("test_readme_walk"), item.path not in slow_files))
