"""Import NAS-Bench-201's test accuracy of every cell (`NB201-accuracy/<task>.csv`) into the store's accuracy table.

Format (shared/data/SOURCES.md §2): a header `index,arch,test_accuracy`, then one line per cell: the standard
NB201 index, the standard `|op~0|+...` arch string and the test accuracy in percent (hp='200', seed-averaged).
Every line is checked before anything is written (the header, the arch string, that the index is the arch's
benchmark index, a finite value in 0..100, no arch twice), and a file with one bad line is refused whole, naming
the file and the line: an accuracy table a search is judged against must not be half imported or shifted by a
line. The records go in as space nb201 with the CIFAR-100 network's config (num_classes 100), metric
test_accuracy, source nb201, and the file's name and sha256 as provenance. Importing again skips every row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import time
from pathlib import Path
from typing import Any

from profiler.accuracy import AccuracyRecord
from profiler.store import Store
from spaces import UserInputError, create_space

HEADER = ["index", "arch", "test_accuracy"]
METRIC = "test_accuracy"
SOURCE = "nb201"
BENCHMARK = "NAS-Bench-201 v1_1"
# The network each task's figures belong to (NB201 trains the same macro skeleton with the task's classes).
NUM_CLASSES = {"cifar10": 10, "cifar10-valid": 10, "cifar100": 100, "ImageNet16-120": 120}


def _line_record(fields: list[str], where: str, space: Any, task: str, config: dict[str, Any],
                 provenance: dict[str, Any]) -> tuple[int, AccuracyRecord]:
    """(index, record) of one data line, or a UserInputError starting with `where` (file and line)."""
    if len(fields) != len(HEADER):
        raise UserInputError(f"{where}: expected {len(HEADER)} comma-separated fields "
                             f"({','.join(HEADER)}), got {len(fields)}")
    index_text, arch_id, value_text = (f.strip() for f in fields)
    try:
        arch = space.parse(arch_id)
    except UserInputError as e:
        raise UserInputError(f"{where}: arch {arch_id!r} is not an NB201 arch string ({e})") from None
    if not index_text.isdigit() or int(index_text) != space.index(arch):
        raise UserInputError(f"{where}: index {index_text!r} is not the NB201 index of {arch_id} "
                             f"({space.index(arch)})")
    try:
        value = float(value_text)
    except ValueError:
        raise UserInputError(f"{where}: test_accuracy {value_text!r} is not a number") from None
    if not math.isfinite(value) or not 0.0 <= value <= 100.0:
        raise UserInputError(f"{where}: test_accuracy {value_text} is not a percentage in 0..100")
    return int(index_text), AccuracyRecord(space.name, space.arch_id(arch), task, METRIC, value, SOURCE,
                                           space_config=config, provenance=provenance)


def read_nb201_accuracy(path: str | Path, task: str | None = None) -> list[AccuracyRecord]:
    """The records of one NB201 accuracy CSV, every line checked; a UserInputError naming the line otherwise."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: no such file")
    data = path.read_bytes()
    task = task or path.stem
    if task not in NUM_CLASSES:
        raise UserInputError(f"{path}: task {task!r} (from {'--task' if task != path.stem else 'the file name'}) "
                             f"is not an NB201 task; known: {', '.join(NUM_CLASSES)}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserInputError(f"{path}: not UTF-8 text ({e})") from None
    space = create_space("nb201", num_classes=NUM_CLASSES[task])
    provenance = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "hp": "200",
                  "benchmark": BENCHMARK}
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise UserInputError(f"{path}: line 1: the file is empty; expected the header {','.join(HEADER)}")
    if [h.strip() for h in header] != HEADER:
        raise UserInputError(f"{path}: line 1: header {','.join(header)!r}, expected {','.join(HEADER)!r}")
    records: list[AccuracyRecord] = []
    seen: dict[int, int] = {}
    for fields in reader:
        line = reader.line_num
        where = f"{path}: line {line}"
        if not fields:
            raise UserInputError(f"{where}: empty line")
        index, record = _line_record(fields, where, space, task, space.config, provenance)
        if index in seen:
            raise UserInputError(f"{where}: index {index} again (first on line {seen[index]})")
        seen[index] = line
        records.append(record)
    if not records:
        raise UserInputError(f"{path}: line 2: no data lines after the header")
    return records


def import_nb201_accuracy(store: Store, path: str | Path, task: str | None = None) -> dict[str, Any]:
    """Import one NB201 accuracy CSV in one transaction; {added, skipped, replaced, rows, ...}. Idempotent."""
    t0 = time.perf_counter()
    records = read_nb201_accuracy(path, task)
    counts = store.add_accuracies(records)
    first = records[0]
    return {"source": "nb201-accuracy", "file": str(path), "space": first.space, "task": first.task,
            "metric": METRIC, "rows": len(records), **counts, "wall_s": round(time.perf_counter() - t0, 3)}
