"""What a profiling run tells its caller: the report (every figure a command prints) and progress callbacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spaces.errors import UserInputError


@dataclass
class ProfileReport:
    """One run on one board.

    `collected` rows came from jobs an earlier run left on the board (a host killed or cut off mid-job);
    `ok` and `errors` are what this run's own jobs measured; `already_measured` counts requested networks the
    store had before the run. Jobs of another dataset (or of a copy of this dataset's file) on the board are
    listed in `foreign_jobs` and left there, and so are jobs whose job.json is missing or unreadable
    (`unreadable_jobs`: being written by another host, or damaged).
    """

    device: str
    space: str
    requested: int
    already_measured: int
    job_id: str | None = None
    ok: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    interrupted: bool = False
    resumed_jobs: list[str] = field(default_factory=list)
    reconnects: int = 0
    collected: int = 0
    collected_jobs: dict[str, int] = field(default_factory=dict)  # job id -> rows new to the store
    foreign_jobs: list[dict[str, Any]] = field(default_factory=list)
    unreadable_jobs: list[dict[str, str]] = field(default_factory=list)  # {"job_id", "why"}
    waited_s: float = 0.0  # for a running job of another dataset to free the board
    board_busy: int = 0  # jobs the board refused because another started meanwhile (each started again)
    models_resent: int = 0  # damaged on the board (sha256 mismatch), sent again and measured in a follow-up job
    retry_job_id: str | None = None
    cache_repaired: int = 0  # host cache files whose bytes no longer matched their name, exported again
    agent_restarts: int = 0  # follow-up jobs after the agent was killed mid-job (its tasks without a result)
    restart_job_ids: list[str] = field(default_factory=list)
    remaining: int | None = None  # networks of this run still without an ok measurement

    def to_dict(self) -> dict[str, Any]:
        measured = self.ok + len(self.errors)
        return {"device": self.device, "space": self.space, "requested": self.requested,
                "already_measured": self.already_measured, "collected": self.collected,
                "collected_jobs": [{"job_id": j, "rows": n} for j, n in self.collected_jobs.items()],
                "measured_ok": self.ok, "measured_error": len(self.errors), "errors": self.errors,
                "remaining": self.remaining, "job_id": self.job_id, "retry_job_id": self.retry_job_id,
                "models_resent": self.models_resent, "cache_repaired": self.cache_repaired,
                "foreign_jobs": self.foreign_jobs, "unreadable_jobs": self.unreadable_jobs,
                "waited_s": round(self.waited_s, 3),
                "board_busy": self.board_busy, "agent_restarts": self.agent_restarts,
                "restart_job_ids": self.restart_job_ids,
                "wall_s": round(self.wall_s, 3), "interrupted": self.interrupted,
                "resumed_jobs": self.resumed_jobs, "reconnects": self.reconnects,
                "models_per_hour": round(3600 * measured / self.wall_s, 1) if self.wall_s > 0 else None}


@dataclass
class Progress:
    """Callbacks the CLI turns into progress bars; all optional."""

    on_phase: Callable[[str, int], None] = lambda phase, total: None
    on_step: Callable[[str], None] = lambda phase: None
    on_result: Callable[[dict[str, Any]], None] = lambda result: None


def throughput(batch: int, median_ms: float) -> dict[str, float]:
    """Per-batch latency as stored, and what follows from it: per-image latency and images per second.

    The store keeps latency per batch (DESIGN.md); these two are derived here and only here, never stored."""
    if batch < 1 or median_ms <= 0:
        raise ValueError(f"throughput: batch {batch} and median {median_ms} ms must be positive")
    return {"median_ms": median_ms, "per_image_ms": median_ms / batch, "images_per_s": batch * 1000.0 / median_ms}


def batch_row(batch: int, median_ms: float | None, **extra: Any) -> dict[str, Any]:
    """One row of a batch sweep: {"batch", "median_ms", "per_image_ms", "images_per_s", **extra}; the three
    figures are None for a batch without an ok measurement (failed or interrupted)."""
    figures = throughput(batch, median_ms) if median_ms is not None else dict.fromkeys(
        ("median_ms", "per_image_ms", "images_per_s"))
    return {"batch": batch, **figures, **extra}


def parse_batches(text: str) -> list[int]:
    """`--batch 1,8,32`: positive batch sizes, in the order given, without repeats."""
    values = [v.strip() for v in str(text).split(",")]
    out: list[int] = []
    for v in values:
        if not v.isdigit() or int(v) < 1:
            raise UserInputError(f"--batch {text!r}: {v!r} is not a positive batch size; give one or several, "
                                 "comma-separated, such as 1 or 1,8,32")
        if int(v) not in out:
            out.append(int(v))
    return out
