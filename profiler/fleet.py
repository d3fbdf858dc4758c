"""Several boards at once: one worker thread per board, each with its own transport, queue and store
connection, so one board failing or hanging never stops the others."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiler.config import DeviceConfig
from profiler.session import ProfileReport, Progress, profile
from profiler.store import Store
from spaces import UserInputError, create_space


@dataclass
class BoardOutcome:
    device: str
    report: ProfileReport | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        d: dict[str, Any] = {"device": self.device, "status": "failed" if self.error else
                             ("interrupted" if r and r.interrupted else "ok"), "error": self.error}
        if r is not None:
            d.update(r.to_dict())
        return d


def run_fleet(configs: list[DeviceConfig], space_name: str, n: int, seed: int, batch: int, db: str | Path,
              progress_for: Callable[[str], Progress], stop: threading.Event | None = None,
              protocol_overrides: dict[str, Any] | None = None) -> list[BoardOutcome]:
    """Profile the same sample on every board in parallel; outcomes in the order of `configs`."""
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise UserInputError(f"a device is listed twice: {', '.join(names)}")
    stop = stop or threading.Event()

    def one(config: DeviceConfig) -> BoardOutcome:
        try:
            with Store(db) as store:
                rep = profile(config, create_space(space_name), n=n, seed=seed, batch=batch, store=store,
                              progress=progress_for(config.name), should_stop=stop.is_set,
                              protocol_overrides=protocol_overrides)
            return BoardOutcome(config.name, rep)
        except Exception as e:  # noqa: BLE001  (a failing board is reported, the others go on)
            return BoardOutcome(config.name, None, f"{type(e).__name__}: {e}")

    with ThreadPoolExecutor(max_workers=len(configs), thread_name_prefix="board") as pool:
        futures = [pool.submit(one, c) for c in configs]
        try:
            return [f.result() for f in futures]
        except KeyboardInterrupt:
            stop.set()  # every board stops its job; finished results are already stored
            return [f.result() for f in futures]
