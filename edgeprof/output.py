"""Where output goes: data on stdout (JSON with --json), people's text and progress bars on stderr.

Progress: rich bars when stderr is a terminal; otherwise (a log file, a pipe, CI) rich would draw nothing until
the end, so `PlainProgress` prints one plain line per task every few seconds and a last one when it is done.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:  # the session loads the exporters (torch, onnx): only commands that profile need it
    from profiler.session import Progress as SessionProgress

# Messages are never wrapped when stderr is a log or a pipe: a path or an error must stay on one line.
err = Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())
# Tables on stdout keep their width when piped to a file (rich would fall back to 80 columns).
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


# A plain progress line at most this often per task (stderr not a terminal).
PLAIN_INTERVAL_S = 5.0


class PlainProgress:
    """The part of rich's Progress the helpers below use (add_task, update, advance, a context manager), as
    plain lines such as `meta-training on 3 devices: 120/400 (30%), 40 s elapsed, ~93 s left`: one per task
    every `interval` seconds while it moves, and a last one when the block ends."""

    def __init__(self, console: Console, interval: float = PLAIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.console, self.interval, self.clock = console, interval, clock
        self.tasks: list[dict[str, Any]] = []

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        for task in self.tasks:
            if task["printed"] != (task["completed"], task["total"]):
                self._print(task)

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        now = self.clock()
        self.tasks.append({"description": description, "total": total, "completed": 0, "fields": fields,
                           "start": now, "last": now, "printed": None})
        return len(self.tasks) - 1

    def update(self, task_id: int, *, completed: float | None = None, total: float | None = None,
               advance: float | None = None, description: str | None = None, **fields: Any) -> None:
        task = self.tasks[task_id]
        if total is not None:
            task["total"] = total
        if completed is not None:
            task["completed"] = completed
        if advance:
            task["completed"] += advance
        if description is not None:
            task["description"] = description
        task["fields"].update(fields)
        if self.clock() - task["last"] >= self.interval:
            self._print(task)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def line(self, task: dict[str, Any]) -> str:
        """`description: done/total (pct%), N s elapsed, ~M s left` plus the task's fields (loss, last result)."""
        done, total = task["completed"], task["total"]
        elapsed = self.clock() - task["start"]
        text = f"{escape(task['description'])}: {done:g}"
        if total:
            text += f"/{total:g} ({100 * done / total:.0f}%)"
        text += f", {elapsed:.0f} s elapsed"
        if total and 0 < done < total:
            text += f", ~{elapsed * (total - done) / done:.0f} s left"
        extra = " ".join(str(v) for v in task["fields"].values() if v not in (None, ""))
        return text + (f", {extra}" if extra else "")

    def _print(self, task: dict[str, Any]) -> None:
        self.console.print(self.line(task))
        task["last"] = self.clock()
        task["printed"] = (task["completed"], task["total"])


def progress_bars(*columns: Any, **kwargs: Any) -> Progress | PlainProgress:
    """rich's Progress on a terminal, PlainProgress lines elsewhere (see the module docstring)."""
    if err.is_terminal:
        return Progress(*columns, console=err, **kwargs)
    return PlainProgress(err)


@contextmanager
def count_progress(label: str, quiet: bool = False) -> Iterator[Callable[[int, int, str], None]]:
    """A progress bar for work counted in steps; yields `step(done, total, note)` (an importer's callback;
    total 0 while the amount of work is not known yet)."""
    if quiet:
        yield lambda *a: None
        return
    bars = progress_bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TextColumn("eta"),
                         TimeRemainingColumn(), transient=False)
    row = bars.add_task(label, total=None, note="")

    def step(done: int, total: int, note: str = "") -> None:
        bars.update(row, completed=done, total=total or None, note=note)

    with bars:
        yield step


PHASE_LABELS = {"export": "exporting ONNX", "upload": "uploading models", "measure": "measuring"}


@contextmanager
def session_progress(quiet: bool = False) -> Iterator[SessionProgress]:
    """Rich progress bars driven by the profile session's callbacks."""
    from profiler.session import Progress as SessionProgress

    if quiet:
        yield SessionProgress()
        return
    bars = progress_bars(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                         TextColumn("{task.fields[last]}"), TimeElapsedColumn(), transient=False)
    ids: dict[str, Any] = {}

    def on_phase(phase: str, total: int) -> None:
        ids[phase] = bars.add_task(PHASE_LABELS.get(phase, phase), total=total or None, last="")

    def on_step(phase: str) -> None:
        bars.advance(ids[phase])

    def on_result(r: dict[str, Any]) -> None:
        if r["status"] == "ok":
            last = f"{r['latency_ms']['median']:.3f} ms"
        else:
            last = f"[red]{(r.get('error') or {}).get('type', 'error')}[/]"
        if "measure" not in ids:  # lines collected from an earlier job on the board
            ids["measure"] = bars.add_task("collecting", total=None, last="")
        bars.update(ids["measure"], advance=1, last=last)

    with bars:
        yield SessionProgress(on_phase=on_phase, on_step=on_step, on_result=on_result)


@contextmanager
def fleet_progress(quiet: bool = False) -> Iterator[Any]:
    """One progress row per board; returns a factory board name -> session callbacks."""
    from profiler.session import Progress as SessionProgress

    if quiet:
        yield lambda name: SessionProgress()
        return
    bars = progress_bars(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                         TextColumn("{task.fields[last]}"), TimeElapsedColumn())

    def factory(name: str) -> SessionProgress:
        row = bars.add_task(f"{name}: connecting", total=None, last="")

        def on_phase(phase: str, total: int) -> None:
            bars.update(row, description=f"{name}: {PHASE_LABELS.get(phase, phase)}", total=total or None,
                        completed=0)

        def on_result(r: dict[str, Any]) -> None:
            last = f"{r['latency_ms']['median']:.3f} ms" if r["status"] == "ok" else "[red]error[/]"
            bars.update(row, advance=1, last=last)

        return SessionProgress(on_phase=on_phase, on_step=lambda phase: bars.advance(row), on_result=on_result)

    with bars:
        yield factory


@contextmanager
def training_progress(label: str, quiet: bool = False) -> Iterator[Any]:
    """A progress bar for fitting; yields the callback `step(done, total, *loss)` predictors call.

    Elapsed and remaining time are shown: a default meta-training runs for minutes."""
    if quiet:
        yield lambda *a: None
        return
    bars = progress_bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TextColumn("eta"),
                         TimeRemainingColumn(), transient=False)
    row = bars.add_task(label, total=None, loss="")

    def step(done: int, total: int, *loss: float) -> None:
        bars.update(row, completed=done, total=total, loss=f"loss {loss[0]:.4f}" if loss else "")

    with bars:
        yield step
