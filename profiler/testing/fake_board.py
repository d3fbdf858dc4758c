"""A stand-in for `hwsearch.pipeline.measure_rounds` that stores rows as a board would, without measuring.

Verification tests (`search domino --verify`) need to know which networks were measured and that each round is
a row of the dataset; they monkeypatch `measure_rounds` with `fake_measure_rounds(calls, latency)`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any


def fake_measure_rounds(calls: list[str], latency: Callable[[tuple[int, ...]], float]) -> Callable[..., list[float]]:
    """`measure_rounds` on a board whose latency of `arch` is `latency(arch)`: each call's arch id appended to
    `calls`, the device, the model and one ok row per round added to the store, the round values returned."""
    from profiler.store import RESULT_SCHEMA, ModelRecord

    def measure(config: Any, space: Any, arch: Any, metric: str, rounds: int, store: Any, log: Any = None,
                progress: Any = None, protocol: Any = None) -> list[float]:
        arch_id = space.arch_id(arch)
        calls.append(arch_id)
        sha = hashlib.sha256(arch_id.encode()).hexdigest()
        store.add_device(config.name, "cpu", {})
        store.add_models([ModelRecord(sha, space.name, space.config, arch_id)])
        value = float(latency(tuple(arch)))
        store.add_results([{"schema": RESULT_SCHEMA, "job_id": f"{arch_id}-{len(calls)}-{i}", "task_id": "t",
                            "device": config.name, "model_sha256": sha, "status": "ok", "batch": 1,
                            **config.setting(), "latency_ms": {"median": value}} for i in range(rounds)])
        return [value] * rounds

    return measure
