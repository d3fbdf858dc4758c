"""Import a LatBench latency table (BRP-NAS, SamsungLabs/eagle) into the Store.

Format (eagle's README): a pickled dict {arch_vector: latency in SECONDS}, where arch_vector is a 6-tuple
of NB201 op ids in arch-string order, edges 0->1, 0->2, 1->2, 0->3, 1->3, 2->3, with ids none=0,
skip_connect=1, nor_conv_1x1=2, nor_conv_3x3=3, avg_pool_3x3=4. Those are our nb201 space's edge order
(node 1 <- 0, node 2 <- 0, 1, node 3 <- 0, 1, 2); ops are mapped by name, not by position, so the
mapping stays right even if our op order changed. Latencies are stored in ms.

Files are named `<domain>-<kind>-<device>-<precision>.pickle` (`embedded-gpu-jetson-nono-fp16.pickle`):
by default the device is the name without the precision suffix, so the fp16 and fp32 tables of one board
land on one device with two precisions. job_id `import-latbench-<device>-<precision>`, task_id the NB201
index. Pickles are read with a restricted unpickler (no code from the file runs).
"""

from __future__ import annotations

import numbers
import re
import time
from pathlib import Path
from typing import Any

from profiler.importing import imported_model, imported_result, positive_number, register_devices
from profiler.store import Store
from spaces import UserInputError, create_space
from spaces.fbnet import load_plain_pickle
from spaces.nb201 import OPS

SOURCE = "import:latbench"
LATBENCH_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
UNITS = {"s": 1000.0, "ms": 1.0}
_PRECISION_RE = re.compile(r"(.+)-(fp32|fp16|int8)")


def latbench_device(stem: str) -> tuple[str, str, str]:
    """(device, precision, store kind) guessed from a LatBench file name without its suffix.

    Kind: "jetson" for Jetson boards, "gpu" for other GPUs, else "cpu" (CPUs, DSPs and the Edge TPU: the
    store has no better kind, see profiler.config.KINDS).
    """
    match = _PRECISION_RE.fullmatch(stem)
    device, precision = (match.group(1), match.group(2)) if match else (stem, "unknown")
    lowered = device.lower()
    kind = "jetson" if "jetson" in lowered else "gpu" if "-gpu-" in f"-{lowered}-" else "cpu"
    return device, precision, kind


def _arch(key: Any, index: int, path: Path) -> tuple[int, ...]:
    """Our nb201 arch from a LatBench key, or a ValueError naming the entry."""
    ok = (isinstance(key, tuple | list) and len(key) == len(LATBENCH_OPS) + 1
          and all(isinstance(op, numbers.Integral) and not isinstance(op, bool) and 0 <= op < len(LATBENCH_OPS)
                  for op in key))
    if not ok:
        raise UserInputError(f"{path}: entry {index}: key {key!r} is not a 6-tuple of NB201 op ids 0..4 "
                         f"({', '.join(f'{i}={name}' for i, name in enumerate(LATBENCH_OPS))})")
    return tuple(OPS.index(LATBENCH_OPS[int(op)]) for op in key)


def import_latbench(store: Store, path: str | Path, device: str | None = None, precision: str | None = None,
                    kind: str | None = None, backend: str = "unknown", batch: int = 1,
                    unit: str = "s") -> dict[str, Any]:
    """Import one LatBench pickle; device/precision/kind default to what the file name says. Idempotent."""
    t0 = time.perf_counter()
    path = Path(path)
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an int >= 1, got {batch!r}")
    if not path.is_file():
        raise UserInputError(f"{path}: no such file")
    table = load_plain_pickle(path.read_bytes(), str(path))
    if not isinstance(table, dict) or not table:
        raise UserInputError(f"{path}: expected a non-empty dict {{6-tuple of op ids: latency in s}}, "
                         f"got {type(table).__name__}{' (empty)' if isinstance(table, dict) else ''}")
    guessed_device, guessed_precision, guessed_kind = latbench_device(path.stem)
    device = device or guessed_device
    precision = precision or guessed_precision
    kind = kind or guessed_kind
    space = create_space("nb201")
    job_id = f"import-latbench-{device}-{precision}"
    env = {"source": "LatBench", "file": path.name, "upstream": "github.com/SamsungLabs/eagle",
           "unit_in_file": unit}
    models, results, invalid = [], [], 0
    for i, (key, value) in enumerate(table.items()):
        arch = _arch(key, i, path)
        seconds = positive_number(value)
        if seconds is None:
            invalid += 1
            continue
        model = imported_model(space, arch)
        models.append(model)
        results.append(imported_result(job_id=job_id, task_id=str(space.index(arch)), model_sha256=model.sha256,
                                       device=device, median_ms=seconds * UNITS[unit], backend=backend,
                                       precision=precision, batch=batch, environment=env))
    existing = register_devices(store, {device: (kind, {"source": "LatBench", "imported": True,
                                                        "file": path.name})})
    models_added = store.add_models(models)
    added = store.add_results(results, source=SOURCE)
    return {"source": "latbench", "file": str(path), "devices": [device], "precision": precision,
            "rows": len(table), "added": added, "duplicates": len(results) - added, "invalid": invalid,
            "skipped": len(results) - added + invalid, "models_added": models_added,
            "devices_existing": existing, "wall_s": round(time.perf_counter() - t0, 3)}
