"""Where output goes: data on stdout (JSON with --json), people's text and progress bars on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
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


PHASE_LABELS = {"export": "exporting ONNX", "upload": "uploading models", "measure": "measuring"}


@contextmanager
def session_progress(quiet: bool = False) -> Iterator[SessionProgress]:
    """Rich progress bars driven by the profile session's callbacks."""
    from profiler.session import Progress as SessionProgress

    if quiet:
        yield SessionProgress()
        return
    bars = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=err, transient=False)
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
    bars = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[last]}"), TimeElapsedColumn(), console=err)

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
    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=err, transient=False)
    row = bars.add_task(label, total=None, loss="")

    def step(done: int, total: int, *loss: float) -> None:
        bars.update(row, completed=done, total=total, loss=f"loss {loss[0]:.4f}" if loss else "")

    with bars:
        yield step
