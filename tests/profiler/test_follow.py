"""follow(): an interrupt that lands between reading result lines and storing them loses nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_store import result  # the same result dict the store tests ingest

from profiler.session import ProfileReport, Progress, follow
from profiler.store import ModelRecord, Store


class BoardFiles:
    """A transport reduced to what follow() reads: a results file that grows, and a job that runs on."""

    poll_s = 0.0

    def __init__(self, lines: list[bytes]):
        self.lines = lines
        self.reads = 0
        self.stopped = False

    def read_results(self, job_id: str, offset: int) -> bytes:
        self.reads += 1
        data = b"".join(self.lines[: min(self.reads, len(self.lines))])  # one more line per read
        return data[offset:]

    def finished(self, job_id: str) -> int | None:
        return 0 if self.reads > 2 * len(self.lines) else None  # a bound, should the interrupt never come

    def stop(self, job_id: str) -> None:
        self.stopped = True


class InterruptedOnce(Store):
    """A store whose second ingest is hit by Ctrl-C before it commits (the rows roll back)."""

    calls = 0

    def add_new_results(self, results: Any, source: str = "agent") -> list[dict[str, Any]]:
        InterruptedOnce.calls += 1
        if InterruptedOnce.calls == 2:
            raise KeyboardInterrupt
        return super().add_new_results(results, source)


def test_interrupt_inside_ingest_reingests_the_whole_file(tmp_path: Path) -> None:
    shas = [c * 64 for c in "abc"]
    with InterruptedOnce(tmp_path / "d.db") as store:
        store.add_device("dev", "cpu", {})
        store.add_models([ModelRecord(s, "nb201", {}, f"arch-{s[0]}", [1, 3, 32, 32], 10, 5, 20, 0.5, 100)
                          for s in shas])
        lines = [(json.dumps(result(f"t{i}", s)) + "\n").encode() for i, s in enumerate(shas)]
        board = BoardFiles(lines)
        report = ProfileReport(device="dev", space="nb201", requested=3, already_measured=0)
        with pytest.raises(KeyboardInterrupt):
            follow(board, "j1", "dev", store, Progress(), report)  # type: ignore[arg-type]
        assert board.stopped
        # line 1 stored by the first read; line 2 was read, then its store was interrupted: the read position
        # had not moved past it, so the drain after stopping the agent stores it (and line 3), counted once
        assert store.counts()["measurements"] == 3
        assert report.ok == 3


def test_garbled_agent_info_names_the_board() -> None:
    from profiler.transports.base import TransportError, parse_agent_info

    assert parse_agent_info("nano", '{"python": {}}') == {"python": {}}
    for text in ("Welcome to Ubuntu\n{", "[1, 2]", ""):
        with pytest.raises(TransportError, match="nano: `python -m agents info --json` printed no JSON object"):
            parse_agent_info("nano", text)
