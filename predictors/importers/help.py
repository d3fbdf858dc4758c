"""Import HELP's latency tables (NeurIPS'21; NB201 and FBNet spaces, 26-27 devices) into the Store.

Layout (see the shared data notes): `data/nasbench201/latency/<device>.pt` is a list of 15,625 ms values
indexed by the NB201 benchmark index; `data/fbnet/latency/<device>.pt` a list of 5,000 ms values, row i
belonging to row i of `data/fbnet/arch.pt`. Files are read without torch and without running code from
them (`spaces.fbnet.load_plain_torch_file`). The store representation is `profiler.importing`'s; here:
job_id `import-help-<space>-<device>`, task_id the row index, backend and precision "unknown".

Devices: HELP's name is kept as the device name (`titan_rtx_256`, `raspi4`), so results join with
HELP's own device splits. The GPU names end in the batch size (`_1`, `_32`, `_64`, `_256`), which becomes
the measurement's batch; every other HELP device ran batch 1 (`gold_6226` ends in a model number, not a
batch). The store's device kinds are jetson/cpu/gpu (profiler.config.KINDS): desktop GPUs are "gpu";
Xeons, phones, the Raspberry Pi, the FPGA and the Eyeriss ASIC are "cpu", for want of a better kind, with
the real class ("server-cpu", "phone", "sbc", "fpga", "asic") in the device config.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from profiler.importing import (
    ImportProgress,
    imported_model,
    imported_result,
    no_progress,
    positive_number,
    register_devices,
)
from profiler.store import Store
from spaces import UserInputError, create_space
from spaces.fbnet import find_help_data, help_fbnet_archs, load_plain_torch_file

SOURCE = "import:help"
SPACE_DIRS = {"nb201": "nasbench201", "fbnet": "fbnet"}
LICENSE = "MIT (HELP/LICENSE)"

_GPU_RE = re.compile(r"(1080ti|2080ti|titanxp|titanx|titan_rtx)_(\d+)")
_GPU_NAMES = {"1080ti": "NVIDIA GTX 1080 Ti", "2080ti": "NVIDIA RTX 2080 Ti", "titanxp": "NVIDIA Titan Xp",
              "titanx": "NVIDIA Titan X", "titan_rtx": "NVIDIA Titan RTX"}
# name -> (class, description); all batch 1, kind "cpu" (see the module docstring)
_OTHER_DEVICES = {
    "gold_6226": ("server-cpu", "Intel Xeon Gold 6226"),
    "gold_6240": ("server-cpu", "Intel Xeon Gold 6240"),
    "silver_4114": ("server-cpu", "Intel Xeon Silver 4114"),
    "silver_4210r": ("server-cpu", "Intel Xeon Silver 4210R"),
    "pixel2": ("phone", "Google Pixel 2"),
    "pixel3": ("phone", "Google Pixel 3"),
    "essential_ph_1": ("phone", "Essential PH-1"),
    "samsung_a50": ("phone", "Samsung Galaxy A50"),
    "samsung_s7": ("phone", "Samsung Galaxy S7"),
    "raspi4": ("sbc", "Raspberry Pi 4"),
    "fpga": ("fpga", "FPGA (HW-NAS-Bench values)"),
    "eyeriss": ("asic", "Eyeriss ASIC (HW-NAS-Bench values)"),
}


def help_device(name: str) -> tuple[str, int, dict[str, Any]]:
    """(store kind, batch, device config) of a HELP device name.

    Names HELP does not use get kind "cpu", class "unknown", and a batch from a `_<N>` suffix only when N
    is a power of two up to 1024 (a model number such as `_6226` is not a batch).
    """
    config: dict[str, Any] = {"source": "HELP", "upstream": "github.com/HayeonLee/HELP", "imported": True}
    gpu = _GPU_RE.fullmatch(name)
    if gpu:
        batch = int(gpu.group(2))
        return "gpu", batch, {**config, "class": "desktop-gpu", "description": _GPU_NAMES[gpu.group(1)],
                              "batch": batch}
    if name in _OTHER_DEVICES:
        cls, description = _OTHER_DEVICES[name]
        return "cpu", 1, {**config, "class": cls, "description": description, "batch": 1}
    suffix = re.fullmatch(r".*_(\d+)", name)
    n = int(suffix.group(1)) if suffix else 1
    batch = n if 1 <= n <= 1024 and n & (n - 1) == 0 else 1
    return "cpu", batch, {**config, "class": "unknown", "description": name, "batch": batch}


def help_devices(help_dir: str | Path, space: str = "nb201") -> list[str]:
    """Device names with a latency table for `space` in a HELP folder, sorted."""
    folder = _latency_dir(find_help_data(help_dir), space)
    return sorted(p.stem for p in folder.glob("*.pt"))


def _latency_dir(data: Path, space: str) -> Path:
    if space not in SPACE_DIRS:
        raise UserInputError(f"HELP has no space {space!r}; known: {', '.join(SPACE_DIRS)}")
    folder = data / SPACE_DIRS[space] / "latency"
    if not folder.is_dir():
        raise UserInputError(f"{data}: no {space} latency tables (expected {folder})")
    return folder


def read_table(path: Path, n_rows: int) -> list[Any]:
    """A HELP latency table: a list of `n_rows` numbers (ms); ValueError naming the file otherwise."""
    values = load_plain_torch_file(path)
    if not isinstance(values, list | tuple) or len(values) != n_rows:
        got = f"{len(values)} values" if isinstance(values, list | tuple) else f"a {type(values).__name__}"
        raise UserInputError(f"{path}: expected a list of {n_rows} latencies (one per arch), got {got}")
    return list(values)


def import_help(store: Store, help_dir: str | Path, spaces: Sequence[str] = ("nb201", "fbnet"),
                devices: Iterable[str] | None = None, progress: ImportProgress = no_progress) -> dict[str, Any]:
    """Import HELP's tables for `spaces` (all devices, or those named) into `store`; idempotent.

    `help_dir` is the shared folder, HELP's folder or its `data` folder. Returns a summary: devices,
    rows added, rows skipped (already present, or a cell that is not a positive number), per table.
    `progress(done, total, note)` is called as each table is read (total 0: reading is the quick part) and
    as each is written, counting rows (writing is ~90% of the time).
    """
    t0 = time.perf_counter()
    if isinstance(spaces, str):
        spaces = (spaces,)
    data = find_help_data(help_dir)
    tables = {space: help_devices(data, space) for space in dict.fromkeys(spaces)}
    wanted = None if devices is None else list(dict.fromkeys([devices] if isinstance(devices, str) else devices))
    if wanted is not None:
        unknown = [d for d in wanted if not any(d in names for names in tables.values())]
        if unknown:
            known = sorted({d for names in tables.values() for d in names})
            raise UserInputError(f"no HELP table for device(s) {', '.join(unknown)} in {', '.join(tables)}; "
                             f"known: {', '.join(known)}")
    # Read and check every table before writing anything, so a bad file leaves the store untouched.
    plan = []
    missing: dict[str, list[str]] = {}
    chosen_by_space = {space_name: names if wanted is None else [d for d in wanted if d in names]
                       for space_name, names in tables.items()}
    n_tables, read = sum(len(chosen) for chosen in chosen_by_space.values()), 0
    for space_name, names in tables.items():
        chosen = chosen_by_space[space_name]
        missing[space_name] = [] if wanted is None else [d for d in wanted if d not in names]
        if not chosen:
            continue
        space = create_space(space_name)
        archs = ([space.from_index(i) for i in range(space.size)] if space_name == "nb201"
                 else help_fbnet_archs(data))
        folder = _latency_dir(data, space_name)
        values_by_device = {}
        for name in chosen:
            read += 1
            progress(0, 0, f"reading {space_name}/{name} ({read}/{n_tables} tables)")
            values_by_device[name] = read_table(folder / f"{name}.pt", len(archs))
        plan.append((space, archs, values_by_device))
    summary: dict[str, Any] = {"source": "help", "root": str(data), "spaces": list(tables), "devices": [],
                               "tables": [], "added": 0, "skipped": 0, "duplicates": 0, "invalid": 0,
                               "models_added": 0, "devices_existing": [], "missing": missing}
    total = sum(len(archs) * (1 + len(values_by_device)) for _, archs, values_by_device in plan)  # models, rows
    done = 0
    for space, archs, values_by_device in plan:
        kinds = {name: help_device(name) for name in values_by_device}
        summary["devices_existing"] += register_devices(store, {n: (k, c) for n, (k, _, c) in kinds.items()})
        progress(done, total, f"writing {space.name} models")
        models = [imported_model(space, arch) for arch in archs]
        summary["models_added"] += store.add_models(models)
        done += len(models)
        for name, values in values_by_device.items():
            progress(done, total, f"writing {space.name}/{name}")
            file = (_latency_dir(data, space.name) / f"{name}.pt").relative_to(data.parent).as_posix()
            env: dict[str, Any] = {"source": "HELP", "file": file, "license": LICENSE}
            if all(isinstance(v, int) for v in values):
                env["integer_ms"] = True  # the phone tables hold whole milliseconds
            job_id = f"import-help-{space.name}-{name}"
            results, invalid = [], 0
            for i, value in enumerate(values):
                ms = positive_number(value)
                if ms is None:
                    invalid += 1
                    continue
                results.append(imported_result(job_id=job_id, task_id=str(i), model_sha256=models[i].sha256,
                                               device=name, median_ms=ms, batch=kinds[name][1],
                                               environment=env))
            added = store.add_results(results, source=SOURCE)
            summary["tables"].append({"space": space.name, "device": name, "file": file, "rows": len(values),
                                      "added": added, "duplicates": len(results) - added, "invalid": invalid})
            summary["added"] += added
            summary["duplicates"] += len(results) - added
            summary["invalid"] += invalid
            done += len(values)
        summary["devices"] = sorted(set(summary["devices"]) | set(values_by_device))
    progress(done, total, "done")
    summary["skipped"] = summary["duplicates"] + summary["invalid"]
    summary["devices_existing"] = sorted(set(summary["devices_existing"]))
    summary["wall_s"] = round(time.perf_counter() - t0, 3)
    return summary
