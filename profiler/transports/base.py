"""The transport contract: how a job bundle reaches a board and how result lines come back.

Local and SSH transports take the same steps, so the profile session does not know which one it drives:
put the agent (content-hashed), put missing models (content-addressed), put the job, start the agent
detached, read new bytes of ``results.jsonl`` from an offset, stop.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import agents
from agents.plugins import BUNDLE_DIR
from spaces.errors import RuntimeFailure

if TYPE_CHECKING:  # typing.Self is 3.11+ and hosts run 3.10; annotations are never evaluated at run time
    from typing_extensions import Self

AGENT_ROOT = Path(agents.__file__).resolve().parent


class TransportError(RuntimeFailure):
    """The board cannot be reached or a transfer failed; the message says which and why."""


def agent_files(plugins: Sequence[Path] = ()) -> list[tuple[str, Path]]:
    """(relative path, file) of every file of the agent bundle, in a stable order.

    The agent package, plus the device's plugin files in BUNDLE_DIR (the agent imports them before its
    registries answer; see agents.plugins). Two plugins may not share a file name.
    """
    files = [(p.relative_to(AGENT_ROOT.parent).as_posix(), p)
             for p in AGENT_ROOT.rglob("*.py") if "__pycache__" not in p.parts]
    seen: dict[str, Path] = {}
    for plugin in plugins:
        path = Path(plugin)
        rel = f"{BUNDLE_DIR}/{path.name}"
        if rel in seen and seen[rel].resolve() != path.resolve():
            raise TransportError(f"plugins {seen[rel]} and {path} share the file name {path.name}; rename one")
        if rel not in seen:
            seen[rel] = path
            files.append((rel, path))
    return sorted(files)


def agent_hash(plugins: Sequence[Path] = ()) -> str:
    """Content hash of the agent bundle (plugins included): an unchanged agent is not sent again."""
    h = hashlib.sha256()
    for rel, p in agent_files(plugins):
        h.update(rel.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


class Transport(ABC):
    """One board. Paths given to these methods are relative to the board's work folder."""

    @abstractmethod
    def prepare(self) -> str:
        """Make sure the work folder and the current agent are there; return the agent's hash."""

    @abstractmethod
    def missing_models(self, filenames: list[str]) -> list[str]:
        """Which of these model files (`<sha256>.<ext>`) the board does not have yet."""

    @abstractmethod
    def put_model(self, local_path: Path) -> None:
        """Send a content-addressed model file (its name is `<sha256>.<ext>`)."""

    @abstractmethod
    def put_job(self, job_id: str, job_text: str) -> None: ...

    @abstractmethod
    def start(self, job_id: str) -> None:
        """Start the agent on the job, detached from this process."""

    @abstractmethod
    def read_results(self, job_id: str, offset: int) -> bytes:
        """Bytes of the job's results file from `offset` on (empty if none yet)."""

    def read_job(self, job_id: str) -> bytes:
        """The job's job.json as the host put it (b"" when there is none): whose dataset the job is."""
        return b""  # a transport that cannot tell: every job then counts as one of an older host (no owner)

    @abstractmethod
    def finished(self, job_id: str) -> int | None:
        """The agent's exit status once it has ended, else None."""

    @abstractmethod
    def log_tail(self, job_id: str, n_lines: int = 20) -> str: ...

    @abstractmethod
    def stop(self, job_id: str) -> None:
        """Stop the agent (what it finished stays in the results file)."""

    @abstractmethod
    def list_jobs(self) -> list[str]:
        """Ids of the jobs in the board's work folder (finished, running or abandoned)."""

    @abstractmethod
    def mark_ingested(self, job_id: str) -> None:
        """Note on the board that every line of this finished job is in the store."""

    @abstractmethod
    def is_ingested(self, job_id: str) -> bool: ...

    @abstractmethod
    def agent_info(self) -> dict[str, Any]:
        """What `python -m agents info --json` reports on the board (after prepare())."""

    poll_s: float = 0.2

    def close(self) -> None:  # noqa: B027 - an optional hook, not abstract: most transports hold nothing open
        """Release what the transport holds open (a connection); nothing by default."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


MODEL_FILE = re.compile(r"^[0-9a-f]{64}\.(onnx|zip|pt)$")


def model_relpath(filename: str) -> str:
    """Where a content-addressed model file lives in the work folder (its name is checked)."""
    if not MODEL_FILE.match(filename):
        raise TransportError(f"refusing model file name {filename!r}: expected <sha256>.onnx, .zip or .pt")
    return f"models/{filename}"


def job_dir(job_id: str) -> str:
    return f"jobs/{job_id}"


def parse_agent_info(board: str, text: str) -> dict[str, Any]:
    """The JSON `python -m agents info --json` printed on `board`; garbled output is a TransportError that
    names the board and shows the start of what came back (a login banner or a crash, usually)."""
    try:
        info = json.loads(text)
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise TransportError(f"{board}: `python -m agents info --json` printed no JSON object: {text.strip()[:300]!r}")
    return info
