"""What the CLI tests share: `edgeprof ARGV` run in the test's own process."""

from __future__ import annotations

import pytest


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `edgeprof ARGV` run in this process (fast: no interpreter or torch start)."""
    from edgeprof.cli import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
