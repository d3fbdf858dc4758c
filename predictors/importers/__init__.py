"""Importers of published latency (and accuracy) tables into the Store, by name: `IMPORTERS["help"](store, path, ...)`.

Each takes the store and a path first, returns a summary dict (devices, rows added, rows skipped, ...)
and is idempotent: importing the same table again adds nothing. The store representation of imported
data (synthetic model keys, one-value latency records) is described in `profiler/importing.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from predictors.importers.help import import_help
from predictors.importers.hwnasbench360 import import_hwnasbench360
from predictors.importers.latbench import import_latbench
from predictors.importers.nb201_accuracy import import_nb201_accuracy

Importer = Callable[..., dict[str, Any]]

IMPORTERS: dict[str, Importer] = {
    "help": import_help,
    "latbench": import_latbench,
    "hwnasbench360": import_hwnasbench360,
    "nb201-accuracy": import_nb201_accuracy,
}

__all__ = ["IMPORTERS", "Importer", "import_help", "import_hwnasbench360", "import_latbench", "import_nb201_accuracy"]
