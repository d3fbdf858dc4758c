"""A batch sweep of a space's networks: the same sampled architectures measured at each batch size.

Each batch is one profile() run (sync, upload what is missing, measure, ingest, resume), all over one transport.
The sweep's figure per batch is the median over the architectures of each one's median latency at that batch,
with its per-image latency and images/s derived from that one median (profiler.report.throughput); the
per-architecture rows come with it, so a script can see the spread. A median over architectures rather than a
mean: one slow outlier network (a cold run, a thermal dip) should not move the sweep's headline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from profiler.config import DeviceConfig
from profiler.report import ProfileReport, Progress, batch_row
from profiler.session import profile
from profiler.store import Store
from profiler.transports import Transport, open_transport
from spaces import SearchSpace

SUMMED = ("requested", "already_measured", "collected", "measured_ok", "measured_error", "remaining")


@dataclass
class SpaceSweep:
    """One profile() report per batch done, and one row per batch asked."""

    device: str
    space: str
    n: int
    seed: int
    reports: list[tuple[int, ProfileReport]] = field(default_factory=list)  # (batch, its run)
    batches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        return any(r.interrupted for _, r in self.reports)

    def to_dict(self) -> dict[str, Any]:
        reps = [r.to_dict() for _, r in self.reports]
        totals = {k: sum(r.get(k) or 0 for r in reps) for k in SUMMED}
        return {"device": self.device, "space": self.space, "n": self.n, "seed": self.seed, **totals,
                "errors": [e for r in reps for e in r["errors"]], "interrupted": self.interrupted,
                "wall_s": round(sum(r["wall_s"] for r in reps), 3),
                "collected_jobs": [j for r in reps for j in r["collected_jobs"]],
                "batches": self.batches,
                "runs": [{"batch": b, **r} for (b, _), r in zip(self.reports, reps, strict=True)]}


def arch_rows(store: Store, config: DeviceConfig, space: SearchSpace, arch_ids: Sequence[str],
              batch: int) -> dict[str, Any]:
    """The sweep's row for one batch: the median over these archs' medians, and one row per arch measured."""
    medians = store.arch_costs(config.name, space.name, space.config, config.runtime.backend,
                               config.runtime.precision, batch)
    archs = [{"arch_id": a, **batch_row(batch, medians[a])} for a in arch_ids if a in medians]
    archs = [{k: v for k, v in a.items() if k != "batch"} for a in archs]
    headline = float(np.median([a["median_ms"] for a in archs])) if archs else None
    return batch_row(batch, headline, n=len(archs), archs=archs)


def profile_batches(config: DeviceConfig, space: SearchSpace, n: int, seed: int, batches: Sequence[int],
                    store: Store, progress: Progress | None = None, transport: Transport | None = None,
                    protocol_overrides: dict[str, Any] | None = None,
                    should_stop: Callable[[], bool] = lambda: False) -> SpaceSweep:
    """Sample `n` archs once (from `seed`, as profile() would) and measure them at every batch size; batches
    and archs already measured are skipped. An interrupt ends the sweep after the batch it stopped."""
    archs = space.sample_unique(n, np.random.default_rng(seed)) if n >= 1 else []
    sweep = SpaceSweep(config.name, space.name, n, seed)
    own = transport is None
    transport = transport or open_transport(config)
    try:
        for b in batches:
            rep = profile(config, space, n=n, seed=seed, batch=b, store=store, progress=progress,
                          transport=transport, protocol_overrides=protocol_overrides, should_stop=should_stop,
                          archs=archs)
            sweep.reports.append((b, rep))
            if rep.interrupted or should_stop():
                break
    finally:
        if own:
            transport.close()
    ids = [space.arch_id(a) for a in archs]
    sweep.batches = [arch_rows(store, config, space, ids, b) for b in batches]
    return sweep
