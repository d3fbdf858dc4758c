"""The exit code of an error that escapes a command: every registry's unknown name is bad input (exit 2), a
registered runtime or plugin this installation cannot import is a failure (exit 1); neither is a traceback."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from agents.backends import BACKENDS
from agents.registry import Registry
from edgeprof import cli
from spaces import create_space


def broken_lazy_entry() -> object:
    reg = Registry("transport")
    reg.add_lazy("carrier-pigeon", "edgeprof_tests_no_such_module:Pigeon")
    return reg.get("carrier-pigeon")


@pytest.mark.parametrize(("raising", "code", "words"), [
    (lambda: BACKENDS.get("no-such-backend"), 2, ("unknown backend 'no-such-backend'", "onnxruntime")),
    (lambda: create_space("nb-201"), 2, ("unknown search space 'nb-201'", "did you mean 'nb201'?")),
    (broken_lazy_entry, 1, ("transport 'carrier-pigeon'", "edgeprof_tests_no_such_module")),
], ids=["board-registry-unknown", "host-registry-unknown", "lazy-entry-not-importable"])
def test_registry_errors_map_to_exit_codes(raising: Callable[[], object], code: int, words: tuple[str, ...],
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    monkeypatch.delenv("EDGEPROF_PLUGINS", raising=False)
    parser = argparse.ArgumentParser(prog="edgeprof")
    parser.set_defaults(_run=lambda args: raising())
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    try:
        got = cli.main([])
    except Exception as e:  # noqa: BLE001 - the point: main() turns these into exit codes
        pytest.fail(f"{type(e).__name__} escaped main() (a traceback): {e}")
    err = capsys.readouterr().err
    assert got == code, err
    assert all(w in err for w in words), err


def test_known_runtime_failures_exit_1_and_other_runtime_errors_are_bugs() -> None:
    """Exit 1 for the failures the code knows (store, transport, board, search result, file system); a bare
    RuntimeError (torch's, NotImplementedError) is a bug and must keep its traceback (exit_code None)."""
    from hwsearch.result import SearchContractError
    from profiler.session import AgentFailed, CorruptResults
    from profiler.store import StoreError
    from profiler.transports.base import TransportError

    for known in (StoreError("x"), TransportError("x"), AgentFailed("x"), CorruptResults("x"),
                  SearchContractError("x"), FileNotFoundError("x")):
        assert cli.exit_code(known) == 1, known
    for bug in (RuntimeError("CUDA error"), NotImplementedError("x"), RecursionError("x"), KeyError("x")):
        assert cli.exit_code(bug) is None, bug
