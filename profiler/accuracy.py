"""Accuracy in the dataset: one value per (space, arch, task, metric, source), beside the latency measurements.

Searches are judged on accuracy as well as cost, so the true accuracy of a space (an imported benchmark such as
NAS-Bench-201) and the accuracy the project measures itself (a network trained on a proxy task) are stored the
same way. A record is keyed by (space, arch_id, task, metric, source): writing the same value again is skipped,
a new value replaces the old one (a re-run or a corrected table), so every import is idempotent. Values are
percent for accuracy metrics (NB201's test accuracy is 0-100). The table came with schema 3; a read-only open of
an older file that cannot be migrated simply has no accuracy (`accuracies` gives {}).
"""

from __future__ import annotations

import json
import math
import numbers
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from spaces.errors import UserInputError

if TYPE_CHECKING:
    from profiler.store import Store

ACCURACIES_DDL = """
CREATE TABLE IF NOT EXISTS accuracies (
    space TEXT NOT NULL,
    space_config TEXT NOT NULL,
    arch_id TEXT NOT NULL,
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    source TEXT NOT NULL,
    provenance TEXT,
    added_at TEXT NOT NULL,
    UNIQUE (space, arch_id, task, metric, source)
);
"""
KEY_FIELDS = ("space", "arch_id", "task", "metric", "source")


@dataclass(frozen=True)
class AccuracyRecord:
    """One accuracy figure of one network; `value` is a finite float (percent for accuracies)."""

    space: str
    arch_id: str
    task: str
    metric: str
    value: float
    source: str
    space_config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in KEY_FIELDS:
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{self.describe()}: {name} must be a non-empty str, got {getattr(self, name)!r}")
        v = self.value
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise ValueError(f"{self.describe()}: value must be a finite number, got {v!r}")
        object.__setattr__(self, "value", float(v))
        if not isinstance(self.space_config, dict):
            raise ValueError(f"{self.describe()}: space_config must be a dict, got {self.space_config!r}")
        if self.provenance is not None and not isinstance(self.provenance, dict):
            raise ValueError(f"{self.describe()}: provenance must be a dict or None, got {self.provenance!r}")

    def describe(self) -> str:
        return f"accuracy record {self.space}/{self.arch_id}/{self.task}/{self.metric} from {self.source}"

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.space, self.arch_id, self.task, self.metric, self.source)


def has_table(store: Store) -> bool:
    """False on a file of schema < 3 read where it could not be migrated."""
    return store.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='accuracies'").fetchone() \
        is not None


def add_accuracies(store: Store, records: Iterable[AccuracyRecord]) -> dict[str, int]:
    """Write the records in one transaction: {"added", "skipped" (same value), "replaced" (new value)}.

    All or nothing: a record that is not an AccuracyRecord is a TypeError and nothing of the batch is written.
    Within one batch a later record of the same key wins, and is counted against the one before it."""
    records = list(records)
    for r in records:
        if not isinstance(r, AccuracyRecord):
            raise TypeError(f"add_accuracies takes AccuracyRecord objects, got {type(r).__name__}")
    counts = {"added": 0, "skipped": 0, "replaced": 0}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with store._tx() as db:
        db.execute("BEGIN IMMEDIATE")  # read and write under one lock: another writer cannot skew the counts
        known: dict[tuple[str, ...], float] = {}
        for group in {(r.space, r.task, r.metric, r.source) for r in records}:
            for arch_id, value in db.execute(
                    "SELECT arch_id, value FROM accuracies WHERE space=? AND task=? AND metric=? AND source=?", group):
                known[(group[0], arch_id, group[1], group[2], group[3])] = value
        rows = []
        for r in records:
            old = known.get(r.key)
            if old is not None and old == r.value:
                counts["skipped"] += 1
                continue
            counts["added" if old is None else "replaced"] += 1
            known[r.key] = r.value
            rows.append((r.space, json.dumps(r.space_config, sort_keys=True), r.arch_id, r.task, r.metric, r.value,
                         r.source, None if r.provenance is None else json.dumps(r.provenance, sort_keys=True), now))
        db.executemany(
            "INSERT INTO accuracies (space, space_config, arch_id, task, metric, value, source, provenance, added_at) "
            "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (space, arch_id, task, metric, source) DO UPDATE SET "
            "value=excluded.value, space_config=excluded.space_config, provenance=excluded.provenance, "
            "added_at=excluded.added_at", rows)
    return counts


def accuracies(store: Store, space: str, task: str, metric: str = "test_accuracy",
               source: str | None = None) -> dict[str, float]:
    """{arch_id: value} of one space, task and metric; {} when the dataset holds none.

    Without `source`, the figures of the one source that has them; two sources of the same figures (an imported
    benchmark and the project's own training, say) are not mixed silently: that is a UserInputError naming them."""
    if not has_table(store):
        return {}
    if source is None:
        sources = [r[0] for r in store.db.execute(
            "SELECT DISTINCT source FROM accuracies WHERE space=? AND task=? AND metric=? ORDER BY source",
            (space, task, metric))]
        if len(sources) > 1:
            raise UserInputError(f"{store.path}: {metric} of {space} on {task} comes from several sources "
                                 f"({', '.join(sources)}); name one")
        if not sources:
            return {}
        source = sources[0]
    return {a: float(v) for a, v in store.db.execute(
        "SELECT arch_id, value FROM accuracies WHERE space=? AND task=? AND metric=? AND source=?",
        (space, task, metric, source))}


def accuracy_summary(store: Store) -> list[dict[str, Any]]:
    """One row per (space, task, metric, source): n, min, median, max; [] when the dataset holds none."""
    if not has_table(store):
        return []
    groups: dict[tuple[str, str, str, str], list[float]] = {}
    for space, task, metric, source, value in store.db.execute(
            "SELECT space, task, metric, source, value FROM accuracies ORDER BY space, task, metric, source"):
        groups.setdefault((space, task, metric, source), []).append(value)
    return [{"space": k[0], "task": k[1], "metric": k[2], "source": k[3], "n": len(v), "min": float(min(v)),
             "median": float(np.median(v)), "max": float(max(v))} for k, v in groups.items()]


def accuracy_rows(store: Store) -> list[dict[str, Any]]:
    """Every accuracy record as a flat row (the export view), in key order."""
    if not has_table(store):
        return []
    return [dict(r) for r in store.db.execute(
        "SELECT space, arch_id, task, metric, value, source, space_config, provenance, added_at FROM accuracies "
        "ORDER BY space, task, metric, source, arch_id")]
