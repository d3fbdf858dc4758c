"""What the CLI tests share: `edgeprof ARGV` run in the test's own process."""

from __future__ import annotations

import contextlib
import io
import subprocess

import pytest


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `edgeprof ARGV` run in this process (fast: no interpreter or torch start)."""
    from edgeprof.cli import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_here(*argv: object) -> subprocess.CompletedProcess[str]:
    """`edgeprof ARGV` in this process as a CompletedProcess (returncode, stdout, stderr), for tests written
    against a subprocess: the same exit codes and text, without an interpreter and torch start per command."""
    from edgeprof.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return subprocess.CompletedProcess([str(a) for a in argv], code, out.getvalue(), err.getvalue())
