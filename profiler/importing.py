"""Writing published latency tables (HELP, LatBench, HW-NAS-Bench-360) into the Store.

Representation of an imported measurement (the importers in `predictors/importers` all use it):
- Model: the store keys models by the sha256 of their ONNX bytes, but a table has no ONNX. An imported
  model is keyed by `sha256("import:<space>:<arch id>")` (`import_model_key`), with the space's config
  appended as `":" + JSON` when it is not the registered default (NB201 with 100 classes is another
  network than with 10), and a `ModelRecord` with the space, config and arch id, no byte size and no costs.
  The key can never equal an ONNX hash in practice, and the same arch from two tables is one model row.
- Measurement: an `edgeprof.result/1` dict (docs/contracts.md) ingested by `Store.add_results`, so the
  store's idempotence applies: `job_id = "import-<source>-..."` and `task_id = <row id in the table>`
  give one key per table cell, and re-importing adds nothing. A table gives one value per cell, so
  `latency_ms` has median = mean = that value, n = 1 (one tabulated value, not a run count) and the other
  statistics null; there are no samples; `environment` names the source file and licence. (The store
  writes `converged` as 0, not NULL, for these rows: `Store._insert_result` casts a missing flag to False.)
- Device: a devices row is added if the name is new; an existing device (say a real board of that name)
  is left as it is, and the summary says so.

Speed: rows go through `Store.add_results` (one transaction per table). On the 2-core dev machine all
27 HELP NB201 tables (421,875 rows) import in about 13 s, the 27 FBNet tables in about 6 s, and a full
re-import that adds nothing in about 12 s; the store's own insert is ~60% of that, so no separate bulk
path is needed. Size: about 630 bytes per imported row (all of HELP: ~350 MB).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from agents.protocol import RESULT_SCHEMA
from profiler.store import ModelRecord, Store
from spaces import SearchSpace, create_space

# An importer's progress callback: (steps done, steps in all, what it is doing now), e.g. a table read or
# written; the CLI draws it as a bar (edgeprof.output.count_progress). Importing all of HELP takes ~45 s.
ImportProgress = Callable[[int, int, str], None]


def no_progress(done: int, total: int, note: str = "") -> None:
    """The ImportProgress of a caller that shows none."""


NULL_STATS = ("std", "min", "max", "p10", "p90", "p99", "iqr_mean", "cv", "ci_halfwidth", "ci_rel",
              "confidence", "converged")


@cache
def _default_config(name: str) -> str:
    return json.dumps(create_space(name).config, sort_keys=True)


def import_model_key(space: SearchSpace, arch_id: str) -> str:
    """Synthetic, deterministic model key of an imported arch (see the module docstring)."""
    text = f"import:{space.name}:{arch_id}"
    config = json.dumps(space.config, sort_keys=True)
    if config != _default_config(space.name):
        text += ":" + config
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def imported_model(space: SearchSpace, arch: Sequence[int]) -> ModelRecord:
    """The models row of an imported arch: no ONNX bytes, no cost counts."""
    arch_id = space.arch_id(arch)
    return ModelRecord(sha256=import_model_key(space, arch_id), space=space.name,
                       space_config=space.config, arch_id=arch_id, input_shape=list(space.input_shape_of(arch, 1)))


def positive_number(value: Any) -> float | None:
    """`value` as a float if it is a finite positive real number, else None (a table cell to skip)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


def imported_result(*, job_id: str, task_id: str, model_sha256: str, device: str, median_ms: float,
                    environment: dict[str, Any], backend: str = "unknown", precision: str = "unknown",
                    batch: int = 1, std_ms: float | None = None,
                    energy: dict[str, Any] | None = None) -> dict[str, Any]:
    """An `edgeprof.result/1` dict for one table cell (median = mean = the value, n = 1)."""
    latency: dict[str, Any] = {"median": median_ms, "mean": median_ms, "n": 1}
    latency.update(dict.fromkeys(NULL_STATS))
    latency["std"] = std_ms
    return {
        "schema": RESULT_SCHEMA, "job_id": job_id, "task_id": task_id, "model_sha256": model_sha256,
        "device": device, "backend": backend, "precision": precision, "batch": int(batch),
        "status": "ok", "error": None, "latency_ms": latency,
        "samples_ms": None, "warmup_ms": None, "energy": energy, "environment": environment,
        "protocol": None, "backend_info": None, "warnings": [],
        "started_at": None, "finished_at": None, "wall_s": None,
    }


def register_devices(store: Store, devices: Mapping[str, tuple[str, dict[str, Any]]]) -> list[str]:
    """Add the devices ({name: (kind, config)}) that are not in the store yet; return those that were.

    Unlike `Store.add_device`, an existing row is never overwritten, so importing a table never changes
    the kind or config of a real board that happens to share a name.
    """
    existing = {row[0] for row in store.db.execute("SELECT name FROM devices").fetchall()}
    rows = [(name, kind, json.dumps(config, sort_keys=True)) for name, (kind, config) in devices.items()
            if name not in existing]
    with store.db:
        store.db.executemany(
            "INSERT OR IGNORE INTO devices (name, kind, config, added_at) "
            "VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))", rows)
    return sorted(set(devices) & existing)

