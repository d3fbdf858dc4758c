"""Training data for the predictors: (arch ids, latencies) of a device and space from the Store.

`load_devices` (and `load_xy` for one device) is the one place that decides which measurements count:
status ok, a median present, and one setting (backend, precision, batch, space config) per device. Mixing
settings would train one predictor on two different latency functions, so when the store holds several for
a device and the caller named none, it refuses and lists them; when the caller named one the device lacks
(a typo, another config), it lists the device's settings too. Repeated measurements of an arch collapse
to their median (robust to one bad run). All devices come from one query, and the medians are taken in
numpy, per arch group, not per arch in Python: meta-training reads four devices of 15,625 archs each.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from profiler.store import Store
from spaces.errors import UserInputError

Setting = tuple[str, str, str, int]  # (space config JSON, backend, precision, batch)
SETTING_KEYS = ("space_config", "backend", "precision", "batch")
FLAGS = {"space_config": "--space-config", "backend": "--backend", "precision": "--precision", "batch": "--batch"}


class AmbiguousSettingError(UserInputError):
    """A device measured under several settings, none picked; `settings` lists them, the message too."""

    def __init__(self, device: str, space: str, settings: Sequence[Setting]) -> None:
        self.device, self.space, self.settings = device, space, list(settings)
        varying = [k for i, k in enumerate(SETTING_KEYS) if len({st[i] for st in settings}) > 1]
        listed = "; ".join(describe_setting(st, with_config="space_config" in varying) for st in settings)
        super().__init__(f"{device} has {space} measurements under {len(settings)} settings: {listed}; pick one "
                         f"with {'/'.join(FLAGS[k] for k in varying)} (Python: "
                         f"{', '.join(f'{k}=' for k in varying)})")


class NoMatchingSettingError(UserInputError):
    """A device has data for the space, but under no setting that the given arguments pick (a typo such as
    `--backend tensorrrt`, or a config it was never measured with): the message lists its settings."""

    def __init__(self, device: str, space: str, quantity: str, picked: dict[str, Any],
                 settings: Sequence[Setting], note: str = "") -> None:
        self.device, self.space, self.quantity = device, space, quantity
        self.picked, self.settings = dict(picked), list(settings)
        varying = {k for i, k in enumerate(SETTING_KEYS) if len({st[i] for st in settings}) > 1}
        keys = [k for k in SETTING_KEYS if k in varying or picked.get(k) is not None]
        chosen = ", ".join(f"{k}={picked[k]!r}" for k in SETTING_KEYS if picked.get(k) is not None)
        what = "measurements" if quantity == "latency" else "energy measurements"
        listed = "; ".join(describe_setting(st, with_config="space_config" in keys) for st in settings)
        count = f"{len(settings)} setting{'s' if len(settings) > 1 else ''}"
        note = f" ({note})" if note else ""
        super().__init__(f"no ok {what} of space {space!r} on device {device!r} with {chosen}{note}; {device} has "
                         f"{space} {what} under {count}: {listed}; pick one with {'/'.join(FLAGS[k] for k in keys)} "
                         f"(Python: {', '.join(f'{k}=' for k in keys)})")


def describe_setting(setting: Setting, with_config: bool = False) -> str:
    """'backend=onnxruntime precision=fp32 batch=1' (and the space config JSON when asked)."""
    config, backend, precision, batch = setting
    text = f"backend={backend} precision={precision} batch={batch}"
    return f"{text} space_config={config}" if with_config else text


def load_xy(store: Store, device: str, space: str, backend: str | None = None, precision: str | None = None,
            batch: int | None = None, space_config: dict[str, Any] | None = None, quantity: str = "latency"
            ) -> tuple[list[str], np.ndarray]:
    """(arch ids, median latency in ms per arch) of the ok measurements of `space` on `device`;
    with quantity="energy", the energy per inference in mJ instead (measurements with an energy figure).

    Arch ids come in the order of their first measurement (for HELP imports: the NB201 index order).
    UserInputError (a ValueError) when nothing matches: NoMatchingSettingError, listing the device's
    settings, when it has data for the space under others; else naming the devices that do have data.
    AmbiguousSettingError (a UserInputError) when the matching rows span several settings and the arguments do
    not pick one.
    """
    return load_devices(store, [device], space, backend, precision, batch, space_config, quantity)[device]


def load_devices(store: Store, devices: Sequence[str], space: str, backend: str | None = None,
                 precision: str | None = None, batch: int | None = None,
                 space_config: dict[str, Any] | None = None, quantity: str = "latency",
                 only_where_ambiguous: bool = False) -> dict[str, tuple[list[str], np.ndarray]]:
    """`load_xy` for several devices with one query: {device: (arch ids, medians)}.

    Each device must be left with one setting, not necessarily the same as the others'. The setting
    arguments narrow every device's settings; with `only_where_ambiguous` they narrow only the devices
    measured under several, and a device measured under one setting uses it (meta-training mixes imported
    tables with a user's own board measured with two runtimes). `space_config` matches a stored config
    that has the given keys and values (the store keeps the full config).
    """
    got = load_with_settings(store, devices, space, backend, precision, batch, space_config, quantity,
                             only_where_ambiguous)
    return {d: (ids, y) for d, (ids, y, _) in got.items()}


def load_with_settings(store: Store, devices: Sequence[str], space: str, backend: str | None = None,
                       precision: str | None = None, batch: int | None = None,
                       space_config: dict[str, Any] | None = None, quantity: str = "latency",
                       only_where_ambiguous: bool = False
                       ) -> dict[str, tuple[list[str], np.ndarray, Setting]]:
    """`load_devices`, with the setting each device's data came from: {device: (arch ids, medians, setting)}.

    Training reads the full space config of the chosen setting from it, so the predictor's card names the
    config its data was measured under (and `evaluate`/`adapt` pick that config by default).
    """
    if quantity not in ("latency", "energy"):
        raise ValueError(f"quantity must be 'latency' or 'energy', got {quantity!r}")
    devices = list(dict.fromkeys(devices))
    if not devices:
        return {}
    column = "x.median_ms" if quantity == "latency" else "x.energy_mj"
    rows = store.db.execute(
        f"SELECT x.device, m.arch_id, m.space_config, x.backend, x.precision, x.batch, {column} "
        "FROM measurements x JOIN models m ON m.sha256 = x.model_sha256 "
        f"WHERE x.device IN ({', '.join('?' * len(devices))}) AND m.space = ? AND x.status = 'ok' "
        f"AND {column} IS NOT NULL ORDER BY x.id", [*devices, space]).fetchall()
    by_device: dict[str, dict[Setting, list[tuple]]] = {d: {} for d in devices}
    for r in rows:
        by_device[r[0]].setdefault((r[2], r[3], r[4], r[5]), []).append(r)
    picked = {"space_config": space_config, "backend": backend, "precision": precision, "batch": batch}
    out = {}
    for device, groups in by_device.items():
        settings = sorted(groups)
        if not (only_where_ambiguous and len(settings) == 1):
            settings = [st for st in settings if _matches(st, backend, precision, batch, space_config)]
        if not settings:
            if groups:
                raise NoMatchingSettingError(device, space, quantity, picked, sorted(groups))
            raise no_data_error(store, device, space, quantity, picked)
        if len(settings) > 1:
            raise AmbiguousSettingError(device, space, settings)
        got = groups[settings[0]]
        ids, y = grouped_median([r[1] for r in got], np.array([r[6] for r in got], dtype=np.float64))
        out[device] = (ids, y, settings[0])
    return out


def setting_config(setting: Setting) -> dict[str, Any]:
    """The full space config a setting's networks were built with (as the store keeps it)."""
    config = json.loads(setting[0]) if setting[0] else {}
    return config if isinstance(config, dict) else {}


def _matches(setting: Setting, backend: str | None, precision: str | None, batch: int | None,
             space_config: dict[str, Any] | None) -> bool:
    config, b, p, n = setting
    if (backend is not None and b != backend) or (precision is not None and p != precision) \
            or (batch is not None and n != batch):
        return False
    if space_config is None:
        return True
    stored = json.loads(config) if config else {}
    return isinstance(stored, dict) and all(k in stored and stored[k] == v for k, v in space_config.items())


class NoDeviceDataError(UserInputError):
    """A device without data for the space (or without energy figures): the message names the devices
    that have some, and the device's other spaces."""


def no_data_error(store: Store, device: str, space: str, quantity: str, picked: dict[str, Any]
                  ) -> NoDeviceDataError:
    """The error for a device without any rows of the space: what was asked, and where the data is."""
    have = [r[0] for r in store.db.execute(
        "SELECT DISTINCT x.device FROM measurements x JOIN models m ON m.sha256 = x.model_sha256 "
        "WHERE m.space = ? AND x.status = 'ok' ORDER BY x.device", (space,)).fetchall()]
    chosen = ", ".join(f"{k}={v!r}" for k, v in picked.items() if v is not None)
    other = [r[0] for r in store.db.execute(
        "SELECT DISTINCT m.space FROM measurements x JOIN models m ON m.sha256 = x.model_sha256 "
        "WHERE x.device = ? AND x.status = 'ok' AND m.space != ? ORDER BY m.space", (device, space)).fetchall()]
    what = "measurements" if quantity == "latency" else "energy measurements (a power meter on the device?)"
    return NoDeviceDataError(f"no ok {what} of space {space!r} on device {device!r}"
                             + (f" with {chosen}" if chosen else "")
                             + (f" ({device} has data for space {', '.join(other)} only: a space mismatch)"
                                if other else "")
                             + f"; devices with {space} data: {', '.join(have) if have else 'none'}")


def grouped_median(keys: Sequence[str], values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(distinct keys in order of first appearance, the median of each key's values), vectorised."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(keys))
    counts = np.bincount(codes, minlength=len(index))
    if np.all(counts == 1):
        med = np.empty(len(index))
        med[codes] = values
        return list(index), med
    ordered = values[np.lexsort((values, codes))]  # by key, then by value
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    med = (ordered[start + (counts - 1) // 2] + ordered[start + counts // 2]) / 2
    return list(index), med


def split(arch_ids: Sequence[str], y: np.ndarray, train_n: int, seed: int = 0
          ) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """(train ids, train y, test ids, test y): a seeded permutation, the first `train_n` for training.

    Deterministic for a given seed and input order, whatever the global numpy state.
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(arch_ids) != len(y):
        raise ValueError(f"got {len(arch_ids)} archs but {len(y)} latencies")
    if isinstance(train_n, bool) or not isinstance(train_n, int | np.integer) or not 0 < train_n < len(y):
        raise UserInputError(f"train_n must be an int in 1..{len(y) - 1} (leaving a test set), got {train_n!r}")
    order = np.random.default_rng(seed).permutation(len(y))
    tr, te = order[:train_n], order[train_n:]
    return [arch_ids[i] for i in tr], y[tr], [arch_ids[i] for i in te], y[te]


def data_fingerprint(arch_ids: Sequence[str], y_ms: np.ndarray) -> str:
    """sha256 over the sorted (arch id, latency) pairs: names the training data in a predictor card."""
    y = np.asarray(y_ms, dtype=np.float64).reshape(-1)
    if len(arch_ids) != len(y):
        raise ValueError(f"got {len(arch_ids)} archs but {len(y)} latencies")
    h = hashlib.sha256()
    for arch_id, ms in sorted(zip(arch_ids, y.tolist(), strict=True)):
        h.update(f"{arch_id}\t{ms!r}\n".encode())
    return h.hexdigest()


class NoAccuracyDataError(UserInputError):
    """No accuracy figures of a space/task/metric in the store: the message lists what the store has."""


def load_accuracy(store: Store, space: str, task: str, metric: str = "test_accuracy", source: str | None = None
                  ) -> tuple[list[str], np.ndarray]:
    """(sorted arch ids, accuracy per arch) of one space, task and metric from the store's accuracy table.

    The accuracy predictors (supervised kinds with --quantity accuracy, maml-acc) read their pairs here, so
    they train on what `edgeprof dataset import nb201-accuracy` (or a project's own training) stored, in the
    store's unit (percent for accuracies). NoAccuracyDataError naming the request and listing the store's
    (space, task, metric, source) groups when none match; several sources and no `source` is the store's
    own UserInputError naming them.
    """
    from profiler.accuracy import accuracies, accuracy_summary

    got = accuracies(store, space, task, metric, source)
    if not got:
        groups = accuracy_summary(store)
        have = "; ".join(f"space {g['space']} task {g['task']} metric {g['metric']} source {g['source']} "
                         f"({g['n']} archs)" for g in groups)
        tasks = sorted({g["task"] for g in groups if g["space"] == space})
        asked = f"space {space!r}, task {task!r}, metric {metric!r}" + (f", source {source!r}" if source else "")
        raise NoAccuracyDataError(
            f"no accuracy figures for {asked} in {store.path}; "
            + (f"tasks with {space} accuracy: {', '.join(tasks)}; " if tasks else f"no {space} accuracy; ")
            + (f"the store holds: {have}" if have else "the store holds no accuracy at all (import some with "
               "`edgeprof dataset import nb201-accuracy PATH`)"))
    ids = sorted(got)
    return ids, np.array([got[a] for a in ids], dtype=np.float64)
