"""Import HW-NAS-Bench-360 Parquet tables (NB201 on Pi 5, Jetson Nano, Pixel 6a) into the Store.

Columns (the project's README and `utils/build_dataset.py`): `arch_idx` (NB201 index), `device`
(`pi5`/`jetson`/`pixel`), `framework` (`litert`/`onnx`/`torchmobile`), `task`, the median latency in ms as
`lat_ms` (the published dataset) or `lat_ms_median` (the per-device CSVs), and optionally `lat_ms_var`,
`energy_mj` (per inference; NaN where not measured) and `status`. Each row becomes one measurement on
device `<device>` with backend `<framework>`, batch 1, std = sqrt(lat_ms_var), and the energy in its
energy record: as `net_mj` for the Jetson (the dataset takes the Jetson's idle-subtracted column) and as
`gross_mj` elsewhere (not documented as idle-subtracted).

Tasks: arch_idx is always an NB201 index (`space`, default "nb201", must have `from_index`). A task maps
to a space config: `cifar100` -> 100 classes at 32x32, `cifar10` -> the default. `ninapro` (1x52x16
input) and `darcy` (1x88x88, dense output) are networks our nb201 space cannot build, so their rows are
skipped and counted per task; pass `task_configs` to map further tasks. job_id
`import-hwnasbench360-<task>-<device>-<framework>`, task_id the arch index: idempotent.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from profiler.importing import imported_model, imported_result, positive_number, register_devices
from profiler.store import Store
from spaces import UserInputError, create_space

SOURCE = "import:hwnasbench360"
TASK_CONFIGS: dict[str, dict[str, Any]] = {"cifar100": {"num_classes": 100, "resolution": 32},
                                           "cifar10": {}}
NOT_BUILDABLE = {"ninapro": "1x52x16 single-channel input", "darcy": "1x88x88 input with a dense output"}
REQUIRED = ("arch_idx", "device", "framework", "task")
LATENCY_COLUMNS = ("lat_ms_median", "lat_ms")
OPTIONAL = ("lat_ms_var", "energy_mj", "status")


def _read(path: Path) -> dict[str, list[Any]]:
    """The needed columns as Python lists; ValueError naming the file and what is missing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise UserInputError(f"{path}: no such file")
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as e:
        raise UserInputError(f"{path}: not a Parquet file: {e}") from None
    missing = [c for c in REQUIRED if c not in names]
    latency = next((c for c in LATENCY_COLUMNS if c in names), None)
    if missing or latency is None:
        needs = missing + ([] if latency else [" or ".join(LATENCY_COLUMNS)])
        raise UserInputError(f"{path}: missing column(s) {', '.join(needs)}; has {', '.join(names)}")
    columns = [*REQUIRED, latency, *(c for c in OPTIONAL if c in names)]
    table = pq.read_table(path, columns=columns)
    out = {c: table.column(c).to_pylist() for c in columns}
    out["latency"] = out.pop(latency)
    return out


def _energy(device: str, value: Any) -> dict[str, Any] | None:
    mj = positive_number(value)
    if mj is None:
        return None
    # Only the known key is written: the store reads net_mj first and would take a None net_mj as the value.
    key = "net_mj" if "jetson" in device.lower() else "gross_mj"
    return {key: mj, "per": "inference", "column": "energy_mj"}


def _std(var: Any) -> float | None:
    if isinstance(var, int | float) and not isinstance(var, bool) and math.isfinite(var) and var >= 0:
        return math.sqrt(var)
    return None


def import_hwnasbench360(store: Store, path: str | Path, space: str = "nb201",
                         tasks: Iterable[str] | None = None, devices: Iterable[str] | None = None,
                         task_configs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Import the rows of a HW-NAS-Bench-360 Parquet file whose task maps to a buildable space.

    `tasks` / `devices` restrict the import; `task_configs` adds or overrides task -> space config.
    Returns a summary: devices, rows added, skipped (already present, bad cells, unmapped tasks).
    """
    t0 = time.perf_counter()
    path = Path(path)
    configs = {**TASK_CONFIGS, **{k: dict(v) for k, v in (task_configs or {}).items()}}
    probe = create_space(space)
    if not hasattr(probe, "from_index"):
        raise UserInputError(f"space {space!r} has no benchmark index (from_index); HW-NAS-Bench-360 rows are "
                         "NB201 indices")
    cols = _read(path)
    want_tasks = None if tasks is None else set([tasks] if isinstance(tasks, str) else tasks)
    want_devices = None if devices is None else set([devices] if isinstance(devices, str) else devices)
    spaces: dict[str, Any] = {}
    models: dict[str, Any] = {}
    results: list[dict[str, Any]] = []
    kinds: dict[str, tuple[str, dict[str, Any]]] = {}
    unmapped: Counter[str] = Counter()
    filtered = invalid = not_ok = 0
    n_rows = len(cols["arch_idx"])
    for i in range(n_rows):
        task, device, framework = cols["task"][i], cols["device"][i], cols["framework"][i]
        for label, value in (("task", task), ("device", device), ("framework", framework)):
            if not isinstance(value, str) or not value:
                raise UserInputError(f"{path}: row {i}: {label} must be a non-empty string, got {value!r}")
        if (want_tasks is not None and task not in want_tasks) or \
                (want_devices is not None and device not in want_devices):
            filtered += 1
            continue
        if task not in configs:
            unmapped[task] += 1
            continue
        if "status" in cols and cols["status"][i] not in (None, "ok"):
            not_ok += 1
            continue
        if task not in spaces:
            spaces[task] = create_space(space, **configs[task])
        sp = spaces[task]
        index = cols["arch_idx"][i]
        if index is None or (isinstance(index, float) and math.isnan(index)):
            invalid += 1
            continue
        if isinstance(index, float) and index.is_integer():
            index = int(index)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < sp.size:
            raise UserInputError(f"{path}: row {i}: arch_idx {index!r} is not a {space} index 0..{sp.size - 1}")
        ms = positive_number(cols["latency"][i])
        if ms is None:
            invalid += 1
            continue
        model = imported_model(sp, sp.from_index(index))
        models[model.sha256] = model
        kinds.setdefault(device, ("jetson" if "jetson" in device.lower() else "cpu",
                                  {"source": "HW-NAS-Bench-360", "imported": True}))
        env = {"source": "HW-NAS-Bench-360", "file": path.name, "task": task,
               "upstream": "github.com/roldebijvank/HW-NAS-Bench-360"}
        results.append(imported_result(
            job_id=f"import-hwnasbench360-{task}-{device}-{framework}", task_id=str(index),
            model_sha256=model.sha256, device=device, median_ms=ms, backend=framework,
            std_ms=_std(cols["lat_ms_var"][i]) if "lat_ms_var" in cols else None,
            energy=_energy(device, cols["energy_mj"][i]) if "energy_mj" in cols else None, environment=env))
    existing = register_devices(store, kinds)
    models_added = store.add_models(models.values())
    added = store.add_results(results, source=SOURCE)
    duplicates = len(results) - added
    skipped_tasks = {task: f"{n} rows: {NOT_BUILDABLE.get(task, 'no space config for this task')}"
                     for task, n in sorted(unmapped.items())}
    return {"source": "hwnasbench360", "file": str(path), "space": space, "devices": sorted(kinds),
            "rows": n_rows, "added": added, "duplicates": duplicates, "invalid": invalid, "not_ok": not_ok,
            "filtered": filtered, "skipped_tasks": skipped_tasks,
            "skipped": duplicates + invalid + not_ok + sum(unmapped.values()),
            "models_added": models_added, "devices_existing": existing,
            "wall_s": round(time.perf_counter() - t0, 3)}
